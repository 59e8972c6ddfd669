//! The values a schedule is made of: durations with their bounds, wall-clock
//! times and intervals, a day's and a week's hours, and time zones.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::SignedDuration;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// A value lay outside the bounds the API allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between {min} and {max}")]
pub struct OutOfRange {
    /// The smallest value allowed.
    pub min: u32,
    /// The largest value allowed.
    pub max: u32,
}

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $default:expr, $unit_secs:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            /// The smallest value allowed.
            pub const MIN: u32 = $min;
            /// The largest value allowed.
            pub const MAX: u32 = $max;

            /// Checks the bounds.
            ///
            /// # Errors
            /// [`OutOfRange`] outside `MIN..=MAX`.
            pub fn new(value: u32) -> Result<Self, OutOfRange> {
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(OutOfRange { min: Self::MIN, max: Self::MAX })
                }
            }

            /// The number as given.
            pub fn get(self) -> u32 {
                self.0
            }

            /// The value as elapsed time.
            pub fn duration(self) -> SignedDuration {
                SignedDuration::from_secs(i64::from(self.0) * $unit_secs)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }
    };
}

bounded!(
    /// Length of every slot of a provider, in minutes (5–480, default 30).
    SlotMinutes, 5, 480, 30, 60
);
bounded!(
    /// Time kept free after each appointment, in minutes (0–240, default 0).
    BufferMinutes, 0, 240, 0, 60
);
bounded!(
    /// Minimum notice before a slot's start, in minutes (0–525600, default 0).
    NoticeMinutes, 0, 525_600, 0, 60
);
bounded!(
    /// How far ahead slots are offered, in days of 24 hours (1–365, default 90).
    HorizonDays, 1, 365, 90, 86_400
);

/// The longest an appointment can last: appointments are one slot long.
pub const MAX_APPOINTMENT: SignedDuration = SignedDuration::from_secs(480 * 60);

/// The last date Cita reasons about (availability, listings, date
/// overrides). Instants end on 9999-12-30 (jiff's range), and a question
/// about a date needs its whole local day in any zone plus a day's margin
/// and the longest hold: up to this date all of that is representable.
pub const LAST_DATE: Date = jiff::civil::date(9998, 12, 31);

/// A wall-clock time of day, `00:00` to `24:00` (the latter only as an end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WallTime(u16);

/// Why a wall-clock time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a time HH:MM between 00:00 and 24:00")]
pub struct WallTimeError;

impl WallTime {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: WallTime = WallTime(0);
    /// `24:00`, the end of the day.
    pub const END_OF_DAY: WallTime = WallTime(1440);

    /// Parses `HH:MM` (two digits each), `00:00`..=`24:00`.
    ///
    /// # Errors
    /// [`WallTimeError`] for anything else.
    pub fn parse(s: &str) -> Result<Self, WallTimeError> {
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' {
            return Err(WallTimeError);
        }
        let digit = |c: u8| c.is_ascii_digit().then(|| u16::from(c - b'0'));
        let (Some(h1), Some(h2), Some(m1), Some(m2)) =
            (digit(b[0]), digit(b[1]), digit(b[3]), digit(b[4]))
        else {
            return Err(WallTimeError);
        };
        Self::from_hm(h1 * 10 + h2, m1 * 10 + m2)
    }

    /// Builds a time from hours and minutes.
    ///
    /// # Errors
    /// [`WallTimeError`] unless `h < 24 && m < 60` or it is exactly `24:00`.
    pub fn from_hm(h: u16, m: u16) -> Result<Self, WallTimeError> {
        if (h < 24 && m < 60) || (h == 24 && m == 0) {
            Ok(Self(h * 60 + m))
        } else {
            Err(WallTimeError)
        }
    }

    /// Minutes since midnight (0–1440).
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A working interval `[start, end)` in local wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalInterval {
    start: WallTime,
    end: WallTime,
}

/// An interval whose start is not before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("start {start} must be before end {end}")]
pub struct StartNotBeforeEnd {
    /// The start given.
    pub start: WallTime,
    /// The end given.
    pub end: WallTime,
}

impl LocalInterval {
    /// An interval; `24:00` is allowed as an end only.
    ///
    /// # Errors
    /// [`StartNotBeforeEnd`] when `start >= end`.
    pub fn new(start: WallTime, end: WallTime) -> Result<Self, StartNotBeforeEnd> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(StartNotBeforeEnd { start, end })
        }
    }

    /// Where it starts.
    pub fn start(&self) -> WallTime {
        self.start
    }

    /// Where it ends (exclusive).
    pub fn end(&self) -> WallTime {
        self.end
    }
}

/// Two intervals of one day overlap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interval {index} overlaps interval {other}")]
pub struct OverlappingIntervals {
    /// Position (as given) of the later-starting interval.
    pub index: usize,
    /// Position (as given) of the interval it overlaps.
    pub other: usize,
}

/// One day's working intervals, sorted and non-overlapping. Empty means closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DayHours(Vec<LocalInterval>);

impl DayHours {
    /// Sorts the intervals and checks that none overlap (touching is fine).
    ///
    /// # Errors
    /// [`OverlappingIntervals`] naming the positions as given.
    pub fn new(intervals: Vec<LocalInterval>) -> Result<Self, OverlappingIntervals> {
        let mut order: Vec<usize> = (0..intervals.len()).collect();
        order.sort_by_key(|&i| (intervals[i].start, intervals[i].end));
        for w in order.windows(2) {
            let (a, b) = (intervals[w[0]], intervals[w[1]]);
            if b.start < a.end {
                return Err(OverlappingIntervals {
                    index: w[1],
                    other: w[0],
                });
            }
        }
        Ok(Self(order.into_iter().map(|i| intervals[i]).collect()))
    }

    /// A closed day.
    pub fn closed() -> Self {
        Self(Vec::new())
    }

    /// The intervals, sorted by start.
    pub fn intervals(&self) -> &[LocalInterval] {
        &self.0
    }

    /// Whether the day has no working time.
    pub fn is_closed(&self) -> bool {
        self.0.is_empty()
    }
}

/// The seven weekdays, Monday first, in the order used by [`WeeklyHours`].
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Recurring hours per weekday; days not set are closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeeklyHours([DayHours; 7]);

impl WeeklyHours {
    /// Sets one weekday's hours.
    pub fn set(&mut self, day: Weekday, hours: DayHours) {
        self.0[usize::from(day.to_monday_zero_offset().unsigned_abs())] = hours;
    }

    /// Builder form of [`WeeklyHours::set`].
    #[must_use]
    pub fn with(mut self, day: Weekday, hours: DayHours) -> Self {
        self.set(day, hours);
        self
    }

    /// One weekday's hours.
    pub fn get(&self, day: Weekday) -> &DayHours {
        &self.0[usize::from(day.to_monday_zero_offset().unsigned_abs())]
    }

    /// Each weekday with its hours, Monday first.
    pub fn iter(&self) -> impl Iterator<Item = (Weekday, &DayHours)> + '_ {
        WEEKDAYS.iter().copied().zip(self.0.iter())
    }
}

/// An IANA time zone from Cita's bundled database (never the host's).
#[derive(Clone)]
pub struct Zone {
    name: Arc<str>,
    tz: TimeZone,
}

/// The name is not a time zone of the bundled IANA database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: expected an IANA name such as America/Lima")]
pub struct UnknownZone(pub String);

impl Zone {
    /// Looks an IANA name up in the bundled database; the name is kept in its
    /// canonical spelling.
    ///
    /// # Errors
    /// [`UnknownZone`] when the database has no such zone.
    pub fn parse(name: &str) -> Result<Self, UnknownZone> {
        // Refuse names that only resolve through quirks (empty, paths, POSIX TZ strings).
        if name.is_empty() || name.len() > 64 || name.starts_with('/') || name.contains("..") {
            return Err(UnknownZone(name.to_owned()));
        }
        let tz = TimeZone::get(name).map_err(|_| UnknownZone(name.to_owned()))?;
        let canonical = tz.iana_name().unwrap_or(name);
        Ok(Self {
            name: Arc::from(canonical),
            tz,
        })
    }

    /// UTC.
    pub fn utc() -> Self {
        Self {
            name: Arc::from("UTC"),
            tz: TimeZone::UTC,
        }
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff time zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Everything that decides when a provider works and which slots are offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The provider's time zone: weekly hours and overrides are in its wall-clock time.
    pub zone: Zone,
    /// Length of every slot.
    pub slot: SlotMinutes,
    /// Time kept free after each appointment.
    pub buffer: BufferMinutes,
    /// Minimum notice before a slot's start.
    pub min_notice: NoticeMinutes,
    /// How far ahead slots are offered.
    pub horizon: HorizonDays,
    /// Recurring hours.
    pub weekly: WeeklyHours,
    /// Dates with their own hours (empty = closed), replacing the weekday's.
    pub overrides: BTreeMap<Date, DayHours>,
}

impl Schedule {
    /// A schedule in `zone` with API defaults (30-minute slots, no buffer, no
    /// notice, 90 days ahead) and every day closed.
    pub fn new(zone: Zone) -> Self {
        Self {
            zone,
            slot: SlotMinutes::default(),
            buffer: BufferMinutes::default(),
            min_notice: NoticeMinutes::default(),
            horizon: HorizonDays::default(),
            weekly: WeeklyHours::default(),
            overrides: BTreeMap::new(),
        }
    }

    /// The hours that apply on a local date: its override if any, else its weekday's.
    pub fn hours_on(&self, date: Date) -> &DayHours {
        self.overrides
            .get(&date)
            .unwrap_or_else(|| self.weekly.get(date.weekday()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> WallTime {
        WallTime::parse(s).unwrap()
    }

    #[test]
    fn wall_times_parse_strictly() {
        assert_eq!(t("09:30").minutes(), 570);
        assert_eq!(t("24:00"), WallTime::END_OF_DAY);
        for bad in ["24:01", "9:30", "09:60", "25:00", "0930", "ab:cd", "09:30 "] {
            assert_eq!(WallTime::parse(bad), Err(WallTimeError), "{bad}");
        }
        assert_eq!(t("07:05").to_string(), "07:05");
    }

    #[test]
    fn intervals_must_start_before_they_end() {
        assert!(LocalInterval::new(t("09:00"), t("24:00")).is_ok());
        assert!(LocalInterval::new(t("09:00"), t("09:00")).is_err());
        assert!(LocalInterval::new(t("24:00"), t("24:00")).is_err());
    }

    #[test]
    fn day_hours_are_sorted_and_overlaps_named() {
        let i = |a, b| LocalInterval::new(t(a), t(b)).unwrap();
        let day = DayHours::new(vec![i("14:00", "18:00"), i("09:00", "13:00")]).unwrap();
        assert_eq!(day.intervals()[0].start(), t("09:00"));
        assert!(DayHours::new(vec![i("09:00", "12:00"), i("12:00", "13:00")]).is_ok());
        assert_eq!(
            DayHours::new(vec![
                i("09:00", "12:00"),
                i("13:00", "14:00"),
                i("11:00", "12:30")
            ]),
            Err(OverlappingIntervals { index: 2, other: 0 })
        );
    }

    #[test]
    fn zones_come_from_the_bundled_database() {
        assert_eq!(Zone::parse("America/Lima").unwrap().name(), "America/Lima");
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert!(Zone::parse("").is_err());
        assert!(Zone::parse("/etc/localtime").is_err());
    }

    #[test]
    fn bounds_follow_the_api() {
        assert!(SlotMinutes::new(4).is_err());
        assert!(SlotMinutes::new(480).is_ok());
        assert!(BufferMinutes::new(241).is_err());
        assert!(NoticeMinutes::new(525_601).is_err());
        assert!(HorizonDays::new(0).is_err());
        assert_eq!(
            HorizonDays::default().duration(),
            SignedDuration::from_hours(90 * 24)
        );
    }
}
