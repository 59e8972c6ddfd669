//! Instants and UUIDs as each dialect stores them.
//!
//! Cita keeps instants to the millisecond (the service truncates `now`;
//! slot starts are whole minutes). SQLite and MySQL store them as integer
//! unix milliseconds and UUIDs as canonical hyphenated lower-case text
//! (whose order is the byte order, and so the order of UUIDv7 ids);
//! PostgreSQL has `timestamptz` and `uuid`. sqlx 0.9 has no jiff support and
//! this crate builds sqlx without its `uuid` feature, so [`Instant`] and
//! [`Uuid`] carry their own encodings for each dialect that is built.

use jiff::Timestamp;

/// An instant, floored to the millisecond on the way in.
///
/// A finer part, if a caller passed one, moves toward the past, never into
/// the future ([`crate::codec_common::millis`]), so every store of Cita
/// agrees on the precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(pub(crate) Timestamp);

impl Instant {
    /// `t` floored to the millisecond.
    pub(crate) fn of(t: Timestamp) -> Self {
        let floored = crate::codec_common::millis(t);
        // In range: one millisecond below a valid instant's is still valid
        // except at `Timestamp::MIN`, which is a whole second.
        Self(Timestamp::from_millisecond(floored).unwrap_or(t))
    }

    /// Unix milliseconds, the integer form.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    fn millis(self) -> i64 {
        crate::codec_common::millis(self.0)
    }
}

impl From<Instant> for Timestamp {
    fn from(i: Instant) -> Self {
        i.0
    }
}

/// A UUID (appointment and event ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Uuid(pub(crate) uuid::Uuid);

/// The dialects that store instants as integer milliseconds and UUIDs as text.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
macro_rules! integer_and_text_forms {
    ($db:ty) => {
        impl sqlx::Type<$db> for Instant {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <i64 as sqlx::Type<$db>>::type_info()
            }

            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <i64 as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, $db> for Instant {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <i64 as sqlx::Encode<'q, $db>>::encode(self.millis(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for Instant {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let ms = <i64 as sqlx::Decode<'r, $db>>::decode(value)?;
                Ok(Self(Timestamp::from_millisecond(ms)?))
            }
        }

        impl sqlx::Type<$db> for Uuid {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <&str as sqlx::Type<$db>>::type_info()
            }

            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <&str as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, $db> for Uuid {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, $db>>::encode(self.0.hyphenated().to_string(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for Uuid {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, $db>>::decode(value)?;
                Ok(Self(uuid::Uuid::try_parse(text)?))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
integer_and_text_forms!(sqlx::Sqlite);
#[cfg(feature = "mysql")]
integer_and_text_forms!(sqlx::MySql);

#[cfg(feature = "postgres")]
mod postgres {
    //! `timestamptz` is an `i64` of microseconds since 2000-01-01T00:00:00Z
    //! in binary form, `uuid` its 16 bytes; both also read the text format
    //! (which sqlx only meets outside prepared statements).

    use jiff::Timestamp;
    use sqlx::decode::Decode;
    use sqlx::encode::{Encode, IsNull};
    use sqlx::error::BoxDynError;
    use sqlx::postgres::types::Oid;
    use sqlx::postgres::{
        PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
    };

    use super::{Instant, Uuid};

    /// PostgreSQL's built-in type OIDs (`pg_type.dat`; fixed across versions).
    const TIMESTAMPTZ_OID: Oid = Oid(1184);
    const TIMESTAMPTZ_ARRAY_OID: Oid = Oid(1185);
    const UUID_OID: Oid = Oid(2950);
    const UUID_ARRAY_OID: Oid = Oid(2951);

    /// Microseconds from the unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    impl Instant {
        /// Microseconds since PostgreSQL's epoch, the binary form.
        pub(super) fn pg_micros(self) -> Result<i64, BoxDynError> {
            self.0
                .as_microsecond()
                .checked_sub(PG_EPOCH_MICROS)
                .ok_or_else(|| format!("instant {} does not fit a timestamptz", self.0).into())
        }
    }

    impl sqlx::Type<Postgres> for Instant {
        fn type_info() -> PgTypeInfo {
            PgTypeInfo::with_oid(TIMESTAMPTZ_OID)
        }
    }

    impl PgHasArrayType for Instant {
        fn array_type_info() -> PgTypeInfo {
            PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY_OID)
        }
    }

    impl Encode<'_, Postgres> for Instant {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            buf.extend_from_slice(&self.pg_micros()?.to_be_bytes());
            Ok(IsNull::No)
        }

        fn size_hint(&self) -> usize {
            size_of::<i64>()
        }
    }

    impl<'r> Decode<'r, Postgres> for Instant {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let t = match value.format() {
                PgValueFormat::Binary => {
                    let bytes: [u8; 8] = value
                        .as_bytes()?
                        .try_into()
                        .map_err(|_| "a binary timestamptz is 8 bytes")?;
                    let pg = i64::from_be_bytes(bytes);
                    // ±infinity (i64::MAX/MIN) overflow or fall out of jiff's range.
                    let unix = pg
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or("timestamptz out of range")?;
                    Timestamp::from_microsecond(unix)?
                }
                // sqlx sets `TimeZone = UTC` and `DateStyle = ISO` on connect:
                // `2031-03-03 10:00:00.123+00`.
                PgValueFormat::Text => parse_text_instant(value.as_str()?)?,
            };
            Ok(Self(t))
        }
    }

    /// Reads a `timestamptz` in PostgreSQL's ISO text output.
    pub(super) fn parse_text_instant(s: &str) -> Result<Timestamp, BoxDynError> {
        // jiff wants a full `+HH:MM` offset; PostgreSQL prints `+00` for UTC.
        let fixed;
        let s = match s.rfind(['+', '-']) {
            Some(i) if i > 10 && s.len() - i == 3 => {
                fixed = format!("{s}:00");
                fixed.as_str()
            }
            _ => s,
        };
        Ok(s.parse::<Timestamp>()?)
    }

    /// PostgreSQL orders `uuid` by its bytes, which for UUIDv7 is their
    /// canonical text order and `AppointmentId`'s `Ord`, so
    /// `ORDER BY start_at, id` lists as every other store does.
    impl sqlx::Type<Postgres> for Uuid {
        fn type_info() -> PgTypeInfo {
            PgTypeInfo::with_oid(UUID_OID)
        }
    }

    impl PgHasArrayType for Uuid {
        fn array_type_info() -> PgTypeInfo {
            PgTypeInfo::with_oid(UUID_ARRAY_OID)
        }
    }

    impl Encode<'_, Postgres> for Uuid {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            buf.extend_from_slice(self.0.as_bytes());
            Ok(IsNull::No)
        }

        fn size_hint(&self) -> usize {
            16
        }
    }

    impl<'r> Decode<'r, Postgres> for Uuid {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let u = match value.format() {
                PgValueFormat::Binary => uuid::Uuid::from_slice(value.as_bytes()?)?,
                PgValueFormat::Text => uuid::Uuid::try_parse(value.as_str()?)?,
            };
            Ok(Self(u))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_keep_the_millisecond_and_floor_below_it() {
        let t: Timestamp = "2031-03-03T10:00:00.123Z".parse().unwrap();
        assert_eq!(Instant::of(t).0, t);
        let fine: Timestamp = "2031-03-03T10:00:00.123999Z".parse().unwrap();
        assert_eq!(Instant::of(fine).0, t);
        let before_epoch: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(
            Instant::of(before_epoch).0,
            "1969-12-31T23:59:59.999Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(Instant::of(Timestamp::MIN).0, Timestamp::MIN);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_binary_form_counts_microseconds_from_2000() {
        let y2k: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Instant::of(y2k).pg_micros().unwrap(), 0);
        let t: Timestamp = "2000-01-01T00:00:01.5Z".parse().unwrap();
        assert_eq!(Instant::of(t).pg_micros().unwrap(), 1_500_000);
        let before: Timestamp = "1999-12-31T23:59:59.999Z".parse().unwrap();
        assert_eq!(Instant::of(before).pg_micros().unwrap(), -1_000);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn text_instants_parse_in_postgres_iso_output() {
        let cases = [
            ("2031-03-03 10:00:00.123+00", "2031-03-03T10:00:00.123Z"),
            ("2031-03-03 10:00:00+00", "2031-03-03T10:00:00Z"),
            (
                "1999-12-31 23:59:59.999999+00",
                "1999-12-31T23:59:59.999999Z",
            ),
            ("2031-03-03 10:00:00-03", "2031-03-03T13:00:00Z"),
            ("2031-03-03 10:00:00+05:30", "2031-03-03T04:30:00Z"),
        ];
        for (text, iso) in cases {
            assert_eq!(
                postgres::parse_text_instant(text).unwrap(),
                iso.parse::<Timestamp>().unwrap(),
                "{text}"
            );
        }
    }
}
