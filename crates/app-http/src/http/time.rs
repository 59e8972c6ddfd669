//! How dates and instants are read from requests and written in responses.

use std::fmt::Write;

use cita_core::slots::LAST_DATE;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;

/// Why an instant was refused (the field's message).
pub const INSTANT_EXPECTED: &str =
    "must be an RFC 3339 instant with an offset, such as 2026-11-23T14:00:00Z";

/// Why an instant's offset was refused (the field's message).
pub const OFFSET_OUT_OF_RANGE: &str = "must have an RFC 3339 offset: whole minutes, at most ±23:59";

/// Why a date was refused (the field's message).
pub const DATE_EXPECTED: &str = "must be a date YYYY-MM-DD";

/// A request's instant: RFC 3339 with an offset. jiff also reads offsets
/// up to ±25:59:59 and with seconds, which RFC 3339 does not have
/// (`time-numoffset` is `±HH:MM`, hours 00–23): those are refused.
///
/// # Errors
/// The message for the field.
pub fn parse_instant(s: &str) -> Result<Timestamp, &'static str> {
    let t = s.parse::<Timestamp>().map_err(|_| INSTANT_EXPECTED)?;
    let offset = Pieces::parse(s)
        .ok()
        .and_then(|p| p.offset())
        .map(|o| o.to_numeric_offset())
        .ok_or(INSTANT_EXPECTED)?;
    let secs = offset.seconds().unsigned_abs();
    if secs >= 24 * 3600 || secs % 60 != 0 {
        return Err(OFFSET_OUT_OF_RANGE);
    }
    Ok(t)
}

/// A request's date: exactly `YYYY-MM-DD`, no later than
/// [`LAST_DATE`] (past it, a day's instants are not all representable).
///
/// # Errors
/// The message for the field.
pub fn parse_date(s: &str) -> Result<Date, String> {
    match s.parse::<Date>() {
        Ok(d) if s.len() == 10 && d <= LAST_DATE => Ok(d),
        Ok(d) if s.len() == 10 && d > LAST_DATE => {
            Err(format!("must be a date no later than {LAST_DATE}"))
        }
        _ => Err(DATE_EXPECTED.to_owned()),
    }
}

/// RFC 3339 UTC with milliseconds (`2026-11-23T13:59:58.120Z`): the form of
/// `createdAt`/`updatedAt`, identical to the event envelope's.
pub fn utc_millis(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// RFC 3339 with a numeric offset (`2026-11-23T15:00:00+01:00`, `+00:00` for
/// UTC), written by hand: availability answers write hundreds of these, and
/// `core::fmt` machinery (padding, sign handling per field) was a quarter of
/// a 7-day answer's CPU. The digits go into a fixed buffer instead; the rare
/// year outside 0000–9999 takes the general path.
pub fn with_offset(t: Timestamp, offset: Offset, out: &mut String) {
    let dt = offset.to_datetime(t);
    let secs = offset.seconds();
    let abs = secs.unsigned_abs();
    let (Ok(year), Ok(month), Ok(day), Ok(hour), Ok(minute), Ok(second)) = (
        u16::try_from(dt.year()),
        u8::try_from(dt.month()),
        u8::try_from(dt.day()),
        u8::try_from(dt.hour()),
        u8::try_from(dt.minute()),
        u8::try_from(dt.second()),
    ) else {
        return with_offset_general(dt, secs, out);
    };
    if year > 9999 {
        return with_offset_general(dt, secs, out);
    }
    let mut buf = *b"0000-00-00T00:00:00+00:00";
    let two = |buf: &mut [u8; 25], at: usize, n: u32| {
        // Every field written here is below 100.
        buf[at] = b'0' + (n / 10 % 10) as u8;
        buf[at + 1] = b'0' + (n % 10) as u8;
    };
    two(&mut buf, 0, u32::from(year / 100));
    two(&mut buf, 2, u32::from(year % 100));
    two(&mut buf, 5, u32::from(month));
    two(&mut buf, 8, u32::from(day));
    two(&mut buf, 11, u32::from(hour));
    two(&mut buf, 14, u32::from(minute));
    two(&mut buf, 17, u32::from(second));
    if secs < 0 {
        buf[19] = b'-';
    }
    two(&mut buf, 20, (abs / 3600).min(99));
    two(&mut buf, 23, (abs % 3600) / 60);
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

fn with_offset_general(dt: jiff::civil::DateTime, secs: i32, out: &mut String) {
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
    fn instants_take_rfc3339_offsets_only() {
        for ok in [
            "2026-11-23T14:00:00Z",
            "2026-11-23T14:00:00.5+01:00",
            "2026-11-23T14:00:00+23:59",
            "2026-11-23T14:00:00-23:59",
            "2026-11-23T14:00:00-00:00",
        ] {
            assert!(parse_instant(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("2026-11-23T14:00:00+24:00", OFFSET_OUT_OF_RANGE),
            ("2026-11-23T14:00:00+25:00", OFFSET_OUT_OF_RANGE),
            ("2026-11-23T14:00:00-25:59", OFFSET_OUT_OF_RANGE),
            ("2026-11-23T14:00:00+05:30:15", OFFSET_OUT_OF_RANGE),
            ("2026-11-23T14:00:00", INSTANT_EXPECTED),
            ("tomorrow", INSTANT_EXPECTED),
        ] {
            assert_eq!(parse_instant(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn dates_are_ten_characters_up_to_the_last_date() {
        assert_eq!(parse_date("2026-11-23").unwrap().to_string(), "2026-11-23");
        assert_eq!(parse_date("9998-12-31").unwrap(), LAST_DATE);
        assert_eq!(
            parse_date("9999-12-31").unwrap_err(),
            "must be a date no later than 9998-12-31"
        );
        for bad in ["2026-13-01", "2026-1-1", "20261123", "-002026-11-23", ""] {
            assert_eq!(parse_date(bad).unwrap_err(), DATE_EXPECTED, "{bad}");
        }
    }

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
        // The hand-written digits agree with the general path everywhere.
        for (instant, offset) in [
            ("0001-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1800),
            ("2031-03-09T07:00:00Z", 13 * 3600 + 45 * 60),
            ("9999-12-30T12:34:56Z", -(11 * 3600)),
        ] {
            let t: Timestamp = instant.parse().unwrap();
            let offset = Offset::from_seconds(offset).unwrap();
            let (mut fast, mut general) = (String::new(), String::new());
            with_offset(t, offset, &mut fast);
            with_offset_general(offset.to_datetime(t), offset.seconds(), &mut general);
            assert_eq!(fast, general);
        }
        assert_eq!(
            utc_millis("2026-11-23T13:59:58.12Z".parse().unwrap()),
            "2026-11-23T13:59:58.120Z"
        );
    }
}
