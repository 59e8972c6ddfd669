//! [`BookingService`]: every use case, one file each, generic over the ports
//! (held as `Arc<dyn …>`).

mod availability;
mod book;
mod cancel;
mod providers;
mod queries;
mod reschedule;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

pub use availability::{Availability, AvailabilityQuery};
pub use book::{BookRequest, Replay};
pub use cancel::{CancelOutcome, CancelRequest};
pub use providers::SetProviderOutcome;
pub use queries::{Cursor, CursorError, ListRequest, Page, PageLimit};
pub use reschedule::{RescheduleOutcome, RescheduleRequest};

use super::models::Appointment;
use super::ports::{AppointmentStore, IdempotencyStore, LockKey, LockToken, SlotLock};
use crate::clock::Clock;
use crate::ids::ProviderId;
use crate::providers::ProviderStore;
use crate::routing::CountryRouter;

/// Tunables of the booking service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingSettings {
    /// How long a slot lock lives if its holder never releases it.
    pub lock_ttl: SignedDuration,
    /// How long a booking waits for a slot lock held by another request
    /// before it goes on without it (the store decides either way).
    pub lock_wait: SignedDuration,
    /// How long an idempotent answer is replayed.
    pub idempotency_ttl: SignedDuration,
    /// How long a reserved idempotency key may stay unanswered before it is
    /// considered abandoned (a crashed request).
    pub idempotency_lease: SignedDuration,
    /// How long a request waits for a concurrent request with the same key
    /// and body to answer.
    pub idempotency_wait: SignedDuration,
    /// The most dates one availability question may cover.
    pub max_availability_days: usize,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            lock_ttl: SignedDuration::from_secs(5),
            lock_wait: SignedDuration::from_millis(200),
            idempotency_ttl: SignedDuration::from_hours(24),
            idempotency_lease: SignedDuration::from_secs(30),
            idempotency_wait: SignedDuration::from_secs(5),
            max_availability_days: 31,
        }
    }
}

/// Optimistic writes retry this many times when a concurrent change wins.
const MAX_ATTEMPTS: usize = 8;

/// Step between two tries for a lock or a pending idempotent answer.
const POLL: SignedDuration = SignedDuration::from_millis(5);

/// Observations the service reports to whoever embeds it (metrics, logs),
/// without depending on a metrics library.
pub trait BookingObserver: Send + Sync + 'static {
    /// The slot lock could not be reached; the booking went on without it.
    fn lock_unavailable(&self, _error: &anyhow::Error) {}

    /// An idempotency record could not be completed or released after the
    /// request was answered.
    fn idempotency_unavailable(&self, _error: &anyhow::Error) {}
}

struct NoObserver;
impl BookingObserver for NoObserver {}

/// The booking use cases over their ports.
pub struct BookingService {
    providers: Arc<dyn ProviderStore>,
    appointments: Arc<dyn AppointmentStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    lock: Option<Arc<dyn SlotLock>>,
    router: CountryRouter,
    clock: Arc<dyn Clock>,
    settings: BookingSettings,
    observer: Arc<dyn BookingObserver>,
}

impl BookingService {
    /// A service with default settings, no slot lock and no observer.
    pub fn new(
        providers: Arc<dyn ProviderStore>,
        appointments: Arc<dyn AppointmentStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        router: CountryRouter,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            providers,
            appointments,
            idempotency,
            lock: None,
            router,
            clock,
            settings: BookingSettings::default(),
            observer: Arc::new(NoObserver),
        }
    }

    /// Takes a [`SlotLock`] around booking and rescheduling.
    #[must_use]
    pub fn with_lock(mut self, lock: Arc<dyn SlotLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Replaces the settings.
    #[must_use]
    pub fn with_settings(mut self, settings: BookingSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Reports lock outages and the like to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn BookingObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The countries this service serves.
    pub fn router(&self) -> &CountryRouter {
        &self.router
    }

    /// The settings in force.
    pub fn settings(&self) -> &BookingSettings {
        &self.settings
    }

    /// Takes the slot lock if one is configured. A lock held by someone else
    /// is waited for up to `lock_wait`; an outage is reported and ignored:
    /// the store refuses overlaps whatever the lock says.
    async fn lock_slot(&self, provider: &ProviderId, start: Timestamp) -> Option<HeldLock> {
        let lock = self.lock.as_ref()?;
        let key = LockKey {
            provider: provider.clone(),
            start,
        };
        let token = LockToken::new();
        let mut waited = SignedDuration::ZERO;
        loop {
            match lock.try_acquire(&key, &token, self.settings.lock_ttl).await {
                Ok(true) => {
                    return Some(HeldLock {
                        lock: Arc::clone(lock),
                        key,
                        token,
                    });
                }
                Ok(false) if waited < self.settings.lock_wait => {
                    self.clock.sleep(POLL).await;
                    waited += POLL;
                }
                Ok(false) => return None,
                Err(e) => {
                    self.observer.lock_unavailable(&e);
                    return None;
                }
            }
        }
    }

    /// Whether an active appointment of the provider (other than `except`)
    /// holds time that `[start, end + buffer)` needs, with the provider's
    /// current buffer on both sides: the same test availability uses.
    async fn provider_busy(
        &self,
        provider: &ProviderId,
        start: Timestamp,
        end: Timestamp,
        buffer: SignedDuration,
        except: Option<&Appointment>,
    ) -> anyhow::Result<bool> {
        // `active_in_range` answers by intersection with `[from, until)`, and
        // an appointment blocks this slot when `a.start < end + buffer` and
        // `a.end + buffer > start`: exactly the ones intersecting this range.
        // (Asking from `start - MAX_APPOINTMENT` (the longest hold) would read a busy
        // provider's whole day to find the one or two neighbours that count.)
        let from = start - buffer;
        let until = end + buffer;
        let active = self
            .appointments
            .active_in_range(provider, from, until)
            .await?;
        Ok(active.iter().any(|a| {
            except.is_none_or(|x| x.id != a.id) && a.start < end + buffer && start < a.end + buffer
        }))
    }
}

/// A slot lock this request holds; released explicitly after the write.
struct HeldLock {
    lock: Arc<dyn SlotLock>,
    key: LockKey,
    token: LockToken,
}

impl HeldLock {
    async fn release(self, observer: &dyn BookingObserver) {
        if let Err(e) = self.lock.release(&self.key, &self.token).await {
            // The lock expires by its ttl; nothing else depends on it.
            observer.lock_unavailable(&e);
        }
    }
}

async fn release(lock: Option<HeldLock>, observer: &dyn BookingObserver) {
    if let Some(l) = lock {
        l.release(observer).await;
    }
}
