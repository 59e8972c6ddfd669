use std::sync::Arc;

use super::ports::{CountryStore, CountryWrite};
use crate::clock::{Clock, now_millis};
use crate::events::{ConfirmationPublisher, EventEnvelope};
use crate::routing::{CountryCode, CountryRouter};

/// What processing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryOutcome {
    /// Recorded and confirmed.
    Recorded,
    /// This version was already recorded; confirmed again (the first
    /// confirmation may have been lost).
    Duplicate,
    /// A newer version is already recorded; nothing done.
    Stale,
    /// Not country work (a confirmation): nothing done.
    Ignored,
}

/// An event the country cannot process; transports retry it and finally
/// dead-letter it.
#[derive(Debug, thiserror::Error)]
pub enum CountryError {
    /// The event's country is not served at all.
    #[error("country {0} is not served")]
    NotServed(CountryCode),
    /// The event belongs to another country's queue.
    #[error("event for {got} reached the {expected} processor")]
    WrongCountry {
        /// This processor's country.
        expected: CountryCode,
        /// The event's country.
        got: CountryCode,
    },
    /// The event's fields disagree with its snapshot.
    #[error("event header disagrees with its appointment snapshot")]
    Inconsistent,
    /// The store or the publisher failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl CountryError {
    /// Whether delivering the same event again can never succeed (an
    /// unserved country, an event in another country's queue, an envelope
    /// that contradicts itself), so every transport dead-letters it instead
    /// of retrying; a store or publisher failure is worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::NotServed(_) | Self::WrongCountry { .. } | Self::Inconsistent => true,
            Self::Unexpected(_) => false,
        }
    }
}

/// Records appointment events in one country's store and confirms them:
/// upsert the snapshot if newer, then publish the confirmation. Repeating any
/// step gives the same result.
pub struct CountryProcessor {
    country: CountryCode,
    router: CountryRouter,
    store: Arc<dyn CountryStore>,
    confirmations: Arc<dyn ConfirmationPublisher>,
    clock: Arc<dyn Clock>,
}

impl CountryProcessor {
    /// A processor for one country.
    pub fn new(
        country: CountryCode,
        router: CountryRouter,
        store: Arc<dyn CountryStore>,
        confirmations: Arc<dyn ConfirmationPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            country,
            router,
            store,
            confirmations,
            clock,
        }
    }

    /// The country it processes.
    pub fn country(&self) -> CountryCode {
        self.country
    }

    /// Processes one event.
    ///
    /// # Errors
    /// [`CountryError`]: the caller must not acknowledge the message.
    pub async fn process(&self, event: &EventEnvelope) -> Result<CountryOutcome, CountryError> {
        if !event.event_type.is_country_work() {
            return Ok(CountryOutcome::Ignored);
        }
        let snapshot = &event.appointment;
        if snapshot.id != event.appointment_id
            || snapshot.version != event.version
            || snapshot.country_iso != event.country_iso
        {
            return Err(CountryError::Inconsistent);
        }
        if !self.router.serves(event.country_iso) {
            return Err(CountryError::NotServed(event.country_iso));
        }
        if event.country_iso != self.country {
            return Err(CountryError::WrongCountry {
                expected: self.country,
                got: event.country_iso,
            });
        }
        let outcome = match self.store.record(snapshot).await? {
            CountryWrite::Applied => CountryOutcome::Recorded,
            CountryWrite::Duplicate => CountryOutcome::Duplicate,
            CountryWrite::Stale => return Ok(CountryOutcome::Stale),
        };
        let now = now_millis(self.clock.as_ref());
        let confirmation = EventEnvelope::confirmation_of(snapshot, now);
        self.confirmations
            .publish_confirmation(&confirmation)
            .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use anyhow::anyhow;
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::booking::{Appointment, AppointmentStatus};
    use crate::clock::MockClock;
    use crate::country::MockCountryStore;
    use crate::events::{EventType, MockConfirmationPublisher};
    use crate::ids::{AppointmentId, PatientId, ProviderId, Version};
    use crate::slots::BufferMinutes;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("an RFC 3339 instant")
    }

    /// The processor's clock reads this (with sub-millisecond noise).
    fn now() -> Timestamp {
        at("2026-11-20T12:00:05.123456Z")
    }

    /// The `appointment.requested` event of a pending appointment in `country`.
    fn requested(country: CountryCode) -> EventEnvelope {
        let booked_at = at("2026-11-20T12:00:00Z");
        let start = at("2026-11-23T14:00:00Z");
        let a = Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("ana").expect("a valid id"),
            patient_id: PatientId::parse("p-12345").expect("a valid id"),
            country,
            start,
            end: start + SignedDuration::from_mins(30),
            buffer: BufferMinutes::default(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: booked_at,
            updated_at: booked_at,
        };
        EventEnvelope::for_appointment(EventType::Requested, &a, booked_at)
    }

    fn clock() -> MockClock {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        clock
    }

    /// A processor for `country` over the given ports; PE and CL are served.
    fn processor(
        country: CountryCode,
        store: MockCountryStore,
        confirmations: MockConfirmationPublisher,
    ) -> CountryProcessor {
        CountryProcessor::new(
            country,
            CountryRouter::default(),
            Arc::new(store),
            Arc::new(confirmations),
            Arc::new(clock()),
        )
    }

    /// A store that records `event`'s snapshot and answers `write`.
    fn store_answering(event: &EventEnvelope, write: CountryWrite) -> MockCountryStore {
        let snapshot = event.appointment.clone();
        let mut store = MockCountryStore::new();
        store
            .expect_record()
            .times(1)
            .withf(move |s| *s == snapshot)
            .returning(move |_| Ok(write));
        store
    }

    /// A publisher that must never be called.
    fn silent() -> MockConfirmationPublisher {
        let mut p = MockConfirmationPublisher::new();
        p.expect_publish_confirmation().times(0);
        p
    }

    /// A publisher that accepts one confirmation and keeps it.
    fn capturing() -> (MockConfirmationPublisher, Arc<Mutex<Vec<EventEnvelope>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&sent);
        let mut p = MockConfirmationPublisher::new();
        p.expect_publish_confirmation()
            .times(1)
            .returning(move |c| {
                s.lock().expect("not poisoned").push(c.clone());
                Ok(())
            });
        (p, sent)
    }

    /// A store that must never be written.
    fn untouched() -> MockCountryStore {
        let mut store = MockCountryStore::new();
        store.expect_record().times(0);
        store
    }

    fn assert_confirms(sent: &[EventEnvelope], event: &EventEnvelope) {
        let [c] = sent else {
            panic!("expected one confirmation, got {sent:?}")
        };
        assert_eq!(c.event_type, EventType::Confirmed);
        assert_eq!(c.appointment_id, event.appointment_id);
        assert_eq!(c.version, event.version);
        assert_eq!(c.country_iso, event.country_iso);
        assert_eq!(c.appointment, event.appointment);
        assert_ne!(c.event_id, event.event_id);
        assert_eq!(c.occurred_at, at("2026-11-20T12:00:05.123Z"));
    }

    #[tokio::test]
    async fn a_new_version_is_recorded_and_confirmed() {
        let event = requested(CountryCode::PE);
        let (confirmations, sent) = capturing();
        let p = processor(
            CountryCode::PE,
            store_answering(&event, CountryWrite::Applied),
            confirmations,
        );

        assert_eq!(
            p.process(&event).await.expect("processed"),
            CountryOutcome::Recorded
        );
        assert_confirms(&sent.lock().expect("not poisoned"), &event);
    }

    #[tokio::test]
    async fn a_stale_version_publishes_no_confirmation() {
        let event = requested(CountryCode::PE);
        let p = processor(
            CountryCode::PE,
            store_answering(&event, CountryWrite::Stale),
            silent(),
        );

        assert_eq!(
            p.process(&event).await.expect("processed"),
            CountryOutcome::Stale
        );
    }

    #[tokio::test]
    async fn a_duplicate_is_confirmed_again() {
        let event = requested(CountryCode::PE);
        let (confirmations, sent) = capturing();
        let p = processor(
            CountryCode::PE,
            store_answering(&event, CountryWrite::Duplicate),
            confirmations,
        );

        assert_eq!(
            p.process(&event).await.expect("processed"),
            CountryOutcome::Duplicate
        );
        assert_confirms(&sent.lock().expect("not poisoned"), &event);
    }

    #[tokio::test]
    async fn a_failing_confirmation_publisher_is_an_error_so_the_message_is_not_acked() {
        let event = requested(CountryCode::PE);
        let mut confirmations = MockConfirmationPublisher::new();
        confirmations
            .expect_publish_confirmation()
            .times(1)
            .returning(|_| Err(anyhow!("EventBridge: PutEvents failed")));
        let p = processor(
            CountryCode::PE,
            store_answering(&event, CountryWrite::Applied),
            confirmations,
        );

        let result = p.process(&event).await;

        assert!(
            matches!(result, Err(CountryError::Unexpected(ref e)) if e.to_string() == "EventBridge: PutEvents failed"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_store_is_an_error_and_confirms_nothing() {
        let event = requested(CountryCode::PE);
        let mut store = MockCountryStore::new();
        store
            .expect_record()
            .times(1)
            .returning(|_| Err(anyhow!("MySQL: lock wait timeout")));
        let p = processor(CountryCode::PE, store, silent());

        let result = p.process(&event).await;

        assert!(
            matches!(result, Err(CountryError::Unexpected(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn another_countrys_event_is_refused() {
        let event = requested(CountryCode::PE);
        let p = processor(CountryCode::CL, untouched(), silent());

        let result = p.process(&event).await;

        assert!(
            matches!(
                result,
                Err(CountryError::WrongCountry {
                    expected: CountryCode::CL,
                    got: CountryCode::PE
                })
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_unserved_countrys_event_is_refused() {
        let ar = CountryCode::parse("AR").expect("assigned");
        let event = requested(ar);
        let p = processor(CountryCode::PE, untouched(), silent());

        let result = p.process(&event).await;

        assert!(
            matches!(result, Err(CountryError::NotServed(c)) if c == ar),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_envelope_that_disagrees_with_its_snapshot_is_refused() {
        let good = requested(CountryCode::PE);
        let mut other_id = good.clone();
        other_id.appointment_id = AppointmentId::new();
        let mut other_version = good.clone();
        other_version.version = Version::FIRST.next();
        let mut other_country = good.clone();
        other_country.country_iso = CountryCode::CL;
        let p = processor(CountryCode::PE, untouched(), silent());

        for (what, event) in [
            ("id", other_id),
            ("version", other_version),
            ("country", other_country),
        ] {
            let result = p.process(&event).await;
            assert!(
                matches!(result, Err(CountryError::Inconsistent)),
                "{what}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn confirmations_are_not_country_work() {
        let event = requested(CountryCode::PE);
        let confirmation = EventEnvelope::confirmation_of(&event.appointment, now());
        let p = processor(CountryCode::PE, untouched(), silent());

        assert_eq!(
            p.process(&confirmation).await.expect("ignored"),
            CountryOutcome::Ignored
        );
    }
}
