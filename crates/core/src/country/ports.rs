use async_trait::async_trait;

use crate::events::AppointmentSnapshot;
use crate::ids::AppointmentId;

/// What recording a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountryWrite {
    /// The snapshot was newer than what the country held (or new): stored.
    Applied,
    /// The country already held this very version: nothing changed.
    Duplicate,
    /// The country holds a newer version: nothing changed.
    Stale,
}

/// One country's own record of its appointments (seed 000's per-country
/// database). Idempotent by (id, version).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CountryStore: Send + Sync + 'static {
    /// Stores the snapshot only if its version is newer than the one held,
    /// atomically (two concurrent writers of different versions leave the
    /// newer one).
    ///
    /// # Errors
    /// Store failures; nothing is changed then.
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite>;

    /// The snapshot the country holds.
    ///
    /// # Errors
    /// Store failures (never reported as `Ok(None)`).
    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<AppointmentSnapshot>>;
}
