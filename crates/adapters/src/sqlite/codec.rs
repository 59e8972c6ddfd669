//! The one place where domain values meet SQLite column values: instants
//! (INTEGER unix milliseconds, UTC), statuses, versions, ids (TEXT) and
//! country codes. Every store of this adapter encodes and decodes through
//! this module; the forms SQLite shares with the other stores come from
//! [`crate::codec_common`].

// The SQL of the migrations and of the overlap queries spells out
// `'cancelled'` (a partial index needs the literal); the test below keeps
// the two in step. Appointment and event ids are canonical UUID text, whose
// order is the order of every listing.
pub(super) use crate::codec_common::{appointment_id, event_id, millis, status};
pub(super) use crate::sql::version;

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStatus;

    use super::*;

    #[test]
    fn the_sql_literal_for_cancelled_is_the_stored_status() {
        assert_eq!(status(AppointmentStatus::Cancelled), "cancelled");
    }
}
