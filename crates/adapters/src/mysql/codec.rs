//! The one place where domain values meet MySQL column values: instants
//! (BIGINT unix milliseconds, UTC), statuses, versions, ids and country
//! codes. Every store of this adapter encodes and decodes through this
//! module; the forms MySQL shares with the other stores come from
//! [`crate::codec_common`].

// The migrations spell out `'cancelled'` (the virtual `active_provider` /
// `active_patient` columns need the literal); the test below keeps the two
// in step. Appointment and event ids are canonical UUID text (36 ASCII
// characters, `ascii_bin`), whose order is the order of every listing.
pub(super) use crate::codec_common::millis;
pub(super) use crate::sql::version;

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStatus;

    use crate::codec_common::status;

    #[test]
    fn the_sql_literal_for_cancelled_is_the_stored_status() {
        assert_eq!(status(AppointmentStatus::Cancelled), "cancelled");
    }
}
