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
