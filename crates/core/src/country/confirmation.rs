use std::sync::Arc;

use crate::booking::{
    Appointment, AppointmentStore, AppointmentWriteError, ConfirmError, Confirmation,
};
use crate::clock::{Clock, now_millis};
use crate::events::{EventEnvelope, EventType};
use crate::ids::{AppointmentId, Version};

/// Optimistic writes retry this many times when a concurrent change wins.
const MAX_ATTEMPTS: usize = 8;

/// What a country's confirmation did to the primary record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Pending at that version, now confirmed (with the external
    /// `appointment.confirmed` event in the outbox when the handler
    /// announces confirmations).
    Confirmed(Appointment),
    /// Already confirmed at that version (a repeated message).
    AlreadyConfirmed,
    /// The confirmation was for another version: a late or duplicated
    /// message never rolls state back.
    OtherVersion,
    /// The appointment is cancelled.
    Cancelled,
}

/// Applies countries' confirmations to the primary store. It needs only the
/// appointment store and a clock: applying a confirmation is one
/// compare-and-set of the record, not a booking.
pub struct ConfirmationHandler {
    appointments: Arc<dyn AppointmentStore>,
    clock: Arc<dyn Clock>,
    announce: bool,
}

impl ConfirmationHandler {
    /// A handler writing to `appointments`. It writes the external
    /// `appointment.confirmed` event to the outbox with each confirmation
    /// only when told to ([`ConfirmationHandler::announcing`]): an outbox row
    /// that no transport carries is never written.
    pub fn new(appointments: Arc<dyn AppointmentStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            appointments,
            clock,
            announce: false,
        }
    }

    /// Whether each confirmation also writes the external
    /// `appointment.confirmed` event to the outbox (true where a transport
    /// publishes it, such as the SNS topic of the AWS topology).
    #[must_use]
    pub fn announcing(mut self, announce: bool) -> Self {
        self.announce = announce;
        self
    }

    /// Handles one confirmation message. Anything but `appointment.confirmed`
    /// is ignored (answered as [`ConfirmOutcome::OtherVersion`] would be: no change).
    ///
    /// # Errors
    /// [`ConfirmError`]: the caller must not acknowledge the message.
    pub async fn handle(
        &self,
        confirmation: &EventEnvelope,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        if confirmation.event_type != EventType::Confirmed {
            return Ok(ConfirmOutcome::OtherVersion);
        }
        self.apply(confirmation.appointment_id, confirmation.version)
            .await
    }

    /// Applies a country's confirmation of `version`: pending → confirmed only
    /// when versions match; the version itself does not change.
    ///
    /// # Errors
    /// `NotFound` when the primary store has no such appointment, or `Unexpected`.
    pub async fn apply(
        &self,
        id: AppointmentId,
        version: Version,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .appointments
                .get(id)
                .await?
                .ok_or(ConfirmError::NotFound)?;
            let now = now_millis(self.clock.as_ref());
            let confirmed = match current.confirm(version, now) {
                Confirmation::Applies(c) => c,
                Confirmation::AlreadyConfirmed => return Ok(ConfirmOutcome::AlreadyConfirmed),
                Confirmation::OtherVersion => return Ok(ConfirmOutcome::OtherVersion),
                Confirmation::Cancelled => return Ok(ConfirmOutcome::Cancelled),
            };
            let event = self
                .announce
                .then(|| EventEnvelope::for_appointment(EventType::Confirmed, &confirmed, now));
            match self
                .appointments
                .update(&confirmed, current.version, event.as_ref())
                .await
            {
                Ok(()) => return Ok(ConfirmOutcome::Confirmed(confirmed)),
                Err(AppointmentWriteError::VersionConflict) => continue,
                Err(AppointmentWriteError::Unexpected(e)) => return Err(e.into()),
                Err(
                    e @ (AppointmentWriteError::SlotTaken | AppointmentWriteError::PatientBusy),
                ) => {
                    return Err(anyhow::anyhow!("store refused a confirmation: {e}").into());
                }
            }
        }
        Err(anyhow::anyhow!("appointment {id} kept changing concurrently").into())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::booking::{AppointmentStatus, MockAppointmentStore};
    use crate::clock::MockClock;
    use crate::ids::{PatientId, ProviderId};
    use crate::routing::CountryCode;
    use crate::slots::BufferMinutes;

    fn pending() -> Appointment {
        let now: Timestamp = "2031-03-01T00:00:00Z".parse().unwrap();
        let start = now + SignedDuration::from_hours(24);
        Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("ana").unwrap(),
            patient_id: PatientId::parse("p-1").unwrap(),
            country: CountryCode::PE,
            start,
            end: start + SignedDuration::from_mins(30),
            buffer: BufferMinutes::default(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A store holding `a` that records the event each update carried.
    fn store_with(
        a: Appointment,
    ) -> (
        MockAppointmentStore,
        std::sync::Arc<Mutex<Vec<Option<EventType>>>>,
    ) {
        let written = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut store = MockAppointmentStore::new();
        store.expect_get().returning(move |_| Ok(Some(a.clone())));
        let w = std::sync::Arc::clone(&written);
        store.expect_update().returning(move |_, _, event| {
            w.lock().unwrap().push(event.map(|e| e.event_type));
            Ok(())
        });
        (store, written)
    }

    fn clock() -> Arc<dyn Clock> {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(|| "2031-03-01T00:05:00Z".parse().unwrap());
        Arc::new(clock)
    }

    #[tokio::test]
    async fn writes_the_external_event_only_when_announcing() {
        for announce in [false, true] {
            let a = pending();
            let (store, written) = store_with(a.clone());
            let handler = ConfirmationHandler::new(Arc::new(store), clock()).announcing(announce);

            let outcome = handler.apply(a.id, a.version).await.expect("applies");

            let ConfirmOutcome::Confirmed(c) = outcome else {
                panic!("confirmed, got {outcome:?}");
            };
            assert_eq!(
                (c.status, c.version),
                (AppointmentStatus::Confirmed, a.version)
            );
            let want = announce.then_some(EventType::Confirmed);
            assert_eq!(
                *written.lock().unwrap(),
                vec![want],
                "announce = {announce}"
            );
        }
    }

    #[tokio::test]
    async fn another_version_or_another_event_type_changes_nothing() {
        let a = pending();
        let (store, written) = store_with(a.clone());
        let handler = ConfirmationHandler::new(Arc::new(store), clock()).announcing(true);

        let other = handler.apply(a.id, a.version.next()).await.expect("reads");
        let requested = EventEnvelope::for_appointment(EventType::Requested, &a, a.created_at);
        let ignored = handler.handle(&requested).await.expect("ignored");

        assert_eq!(other, ConfirmOutcome::OtherVersion);
        assert_eq!(ignored, ConfirmOutcome::OtherVersion);
        assert!(written.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unknown_appointment_is_a_permanent_failure() {
        let mut store = MockAppointmentStore::new();
        store.expect_get().returning(|_| Ok(None));
        let handler = ConfirmationHandler::new(Arc::new(store), clock());

        let e = handler
            .apply(AppointmentId::new(), Version::FIRST)
            .await
            .expect_err("not found");

        assert!(matches!(e, ConfirmError::NotFound));
        assert!(e.is_permanent());
    }
}
