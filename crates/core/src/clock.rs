//! The [`Clock`] port: the only way core learns the time or waits.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// Tells the time and waits; tests control both.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The present instant.
    fn now(&self) -> Timestamp;

    /// Waits for `duration` (used only for short back-offs).
    async fn sleep(&self, duration: SignedDuration);
}

/// `now` to the millisecond, the precision every store and the API keep.
pub(crate) fn now_millis(clock: &dyn Clock) -> Timestamp {
    let now = clock.now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}
