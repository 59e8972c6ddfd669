//! The one place where domain values meet PostgreSQL column values:
//! instants (`timestamptz`), UUIDs (`uuid`), statuses, versions, ids and
//! country codes. Every store of this adapter encodes and decodes through
//! this module, and the names of the two overlap constraints live here too.
//!
//! [`Instant`] (`timestamptz`) and [`Uuid`] (`uuid`) are the shared
//! relational value types of [`crate::sql`], which carries their
//! PostgreSQL encodings.

use cita_core::booking::AppointmentWriteError;
use cita_core::ids::{AppointmentId, EventId};

pub(super) use crate::sql::{Instant, Uuid, version};

// The SQL of the migrations (`holds_time`, which the partial exclusion
// constraints and index use, is `status <> 'cancelled'`) spells out
// `'cancelled'`; the test below keeps the two in step.

/// The exclusion constraint on a provider's `[start_at, hold_until)`.
pub(super) const PROVIDER_OVERLAP: &str = "appointments_provider_overlap";
/// The exclusion constraint on a patient's `[start_at, end_at)`.
pub(super) const PATIENT_OVERLAP: &str = "appointments_patient_overlap";

/// An appointment id as `uuid`.
pub(super) fn appointment_id(id: AppointmentId) -> Uuid {
    Uuid(id.as_uuid())
}

/// An event id as `uuid`.
pub(super) fn event_id(id: EventId) -> Uuid {
    Uuid(id.as_uuid())
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
    use crate::codec_common::status;

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
