//! The one place where domain values meet PostgreSQL column values:
//! instants (`timestamptz`), UUIDs (`uuid`), statuses, versions, ids and
//! country codes. Every store of this adapter encodes and decodes through
//! this module, and the names of the two overlap constraints live here too.
//!
//! sqlx 0.9 has no jiff support and this crate builds sqlx without its
//! `uuid` feature, so [`Instant`] and [`Uuid`] carry their own binary
//! encodings: a `timestamptz` is an `i64` of microseconds since
//! 2000-01-01T00:00:00Z, a `uuid` its 16 bytes. Both also read the text
//! format (which sqlx only meets outside prepared statements).

use anyhow::Context as _;
use cita_core::booking::AppointmentWriteError;
use cita_core::ids::{AppointmentId, EventId, Version};
use jiff::Timestamp;
use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
};

// The SQL of the migrations (`holds_time`, which the partial exclusion
// constraints and index use, is `status <> 'cancelled'`) spells out
// `'cancelled'`; the test below keeps the two in step.
pub(super) use crate::codec_common::{
    parse_country, parse_patient_id, parse_provider_id, parse_status, parse_version, status,
};

/// PostgreSQL's built-in type OIDs (`pg_type.dat`; fixed across versions).
const TIMESTAMPTZ_OID: Oid = Oid(1184);
const TIMESTAMPTZ_ARRAY_OID: Oid = Oid(1185);
const UUID_OID: Oid = Oid(2950);
const UUID_ARRAY_OID: Oid = Oid(2951);

/// Microseconds from the unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The exclusion constraint on a provider's `[start_at, hold_until)`.
pub(super) const PROVIDER_OVERLAP: &str = "appointments_provider_overlap";
/// The exclusion constraint on a patient's `[start_at, end_at)`.
pub(super) const PATIENT_OVERLAP: &str = "appointments_patient_overlap";

/// An instant as a `timestamptz`, floored to the millisecond on the way in.
///
/// Cita keeps instants to the millisecond (the service truncates `now`; slot
/// starts are whole minutes), so this round-trips everything the service
/// stores exactly, and every store of Cita agrees on the precision (the
/// other stores floor with the same [`crate::codec_common::millis`]). A
/// finer part, if a caller passed one, moves toward the past, never into
/// the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Instant(pub(super) Timestamp);

impl Instant {
    /// `t` floored to the millisecond.
    pub(super) fn of(t: Timestamp) -> Self {
        let floored = crate::codec_common::millis(t);
        // In range: one millisecond below a valid instant's is still valid
        // except at `Timestamp::MIN`, which is a whole second.
        Self(Timestamp::from_millisecond(floored).unwrap_or(t))
    }

    /// Microseconds since PostgreSQL's epoch, the binary form.
    fn pg_micros(self) -> Result<i64, BoxDynError> {
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
fn parse_text_instant(s: &str) -> Result<Timestamp, BoxDynError> {
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

/// A UUID as PostgreSQL's `uuid`. PostgreSQL orders `uuid` by its bytes,
/// which for UUIDv7 is their canonical text order and [`AppointmentId`]'s
/// `Ord`, so `ORDER BY start_at, id` lists as every other store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Uuid(pub(super) uuid::Uuid);

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

/// Reads an instant stored as an [`Instant`].
pub(super) fn instant(t: Instant) -> Timestamp {
    t.0
}

/// A version as `bigint`.
pub(super) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a bigint")
}

/// An appointment id as `uuid`.
pub(super) fn appointment_id(id: AppointmentId) -> Uuid {
    Uuid(id.as_uuid())
}

/// An event id as `uuid`.
pub(super) fn event_id(id: EventId) -> Uuid {
    Uuid(id.as_uuid())
}

/// Reads an appointment id stored by [`appointment_id`].
pub(super) fn parse_appointment_id(u: Uuid) -> anyhow::Result<AppointmentId> {
    AppointmentId::from_uuid(u.0)
        .with_context(|| format!("stored appointment id {} is invalid", u.0))
}

/// What a failed statement means for an appointment write.
pub(super) enum Failure {
    /// An overlap constraint refused the row (SQLSTATE 23P01).
    Refused(AppointmentWriteError),
    /// The transaction was chosen as a deadlock victim (40P01) or failed to
    /// serialise (40001): it rolled back entirely and may simply run again.
    Transient(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

/// Sorts a driver error into a [`Failure`]; `doing` names the statement.
pub(super) fn classify(e: sqlx::Error, doing: &'static str) -> Failure {
    if let sqlx::Error::Database(db) = &e {
        match db.code().as_deref() {
            Some("23P01") => match db.constraint() {
                Some(PROVIDER_OVERLAP) => {
                    return Failure::Refused(AppointmentWriteError::SlotTaken);
                }
                Some(PATIENT_OVERLAP) => {
                    return Failure::Refused(AppointmentWriteError::PatientBusy);
                }
                _ => {}
            },
            Some("40P01" | "40001") => {
                return Failure::Transient(anyhow::Error::new(e).context(doing));
            }
            _ => {}
        }
    }
    Failure::Other(anyhow::Error::new(e).context(doing))
}

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStatus;

    use super::*;

    #[test]
    fn the_sql_literal_for_cancelled_is_the_stored_status() {
        assert_eq!(status(AppointmentStatus::Cancelled), "cancelled");
    }

    #[test]
    fn the_constraint_names_are_the_migrations() {
        // Created in 0002, dropped and created again in 0005.
        for sql in [
            include_str!("../../migrations/postgres/0002_appointments.sql"),
            include_str!("../../migrations/postgres/0005_holds_time.sql"),
        ] {
            for name in [PROVIDER_OVERLAP, PATIENT_OVERLAP] {
                assert!(
                    sql.contains(&format!("CONSTRAINT {name} EXCLUDE")),
                    "{name}"
                );
            }
            assert!(
                sql.find(&format!("CONSTRAINT {PROVIDER_OVERLAP} EXCLUDE"))
                    < sql.find(&format!("CONSTRAINT {PATIENT_OVERLAP} EXCLUDE")),
                "the provider's constraint is created (and so checked) first"
            );
        }
    }

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

    #[test]
    fn the_binary_form_counts_microseconds_from_2000() {
        let y2k: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Instant::of(y2k).pg_micros().unwrap(), 0);
        let t: Timestamp = "2000-01-01T00:00:01.5Z".parse().unwrap();
        assert_eq!(Instant::of(t).pg_micros().unwrap(), 1_500_000);
        let before: Timestamp = "1999-12-31T23:59:59.999Z".parse().unwrap();
        assert_eq!(Instant::of(before).pg_micros().unwrap(), -1_000);
    }

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
                parse_text_instant(text).unwrap(),
                iso.parse::<Timestamp>().unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn uuid_v7_byte_order_is_id_order() {
        let mut ids: Vec<AppointmentId> = (0..200).map(|_| AppointmentId::new()).collect();
        ids.reverse();
        let mut by_bytes = ids.clone();
        by_bytes.sort_by_key(|id| appointment_id(*id));
        let mut by_text = ids;
        by_text.sort_by_key(|id| id.as_uuid().hyphenated().to_string());
        assert_eq!(by_bytes, by_text);
    }
}
