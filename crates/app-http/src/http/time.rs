//! How instants are written in responses.

use std::fmt::Write;

use jiff::Timestamp;
use jiff::tz::Offset;

/// RFC 3339 UTC with milliseconds (`2026-11-23T13:59:58.120Z`): the form of
/// `createdAt`/`updatedAt`, identical to the event envelope's.
pub fn utc_millis(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// RFC 3339 with a numeric offset (`2026-11-23T15:00:00+01:00`, `+00:00` for
/// UTC), written by hand: availability answers write hundreds of these.
pub fn with_offset(t: Timestamp, offset: Offset, out: &mut String) {
    let dt = offset.to_datetime(t);
    let secs = offset.seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        sign,
        abs / 3600,
        (abs % 3600) / 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_offsets_like_rfc3339() {
        let t: Timestamp = "2026-11-23T14:00:00Z".parse().unwrap();
        let mut s = String::new();
        with_offset(t, Offset::from_seconds(3600).unwrap(), &mut s);
        assert_eq!(s, "2026-11-23T15:00:00+01:00");
        s.clear();
        with_offset(t, Offset::UTC, &mut s);
        assert_eq!(s, "2026-11-23T14:00:00+00:00");
        s.clear();
        with_offset(
            t,
            Offset::from_seconds(-(5 * 3600 + 45 * 60)).unwrap(),
            &mut s,
        );
        assert_eq!(s, "2026-11-23T08:15:00-05:45");
        assert_eq!(
            utc_millis("2026-11-23T13:59:58.12Z".parse().unwrap()),
            "2026-11-23T13:59:58.120Z"
        );
    }
}
