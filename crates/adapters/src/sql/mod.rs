//! What the three relational dialects (SQLite, PostgreSQL, MySQL/MariaDB)
//! share: the value types their columns decode into (`Instant`,
//! `Uuid`), one row struct per model with one conversion to the domain
//! type (`rows`), and the encodings of domain values that every dialect
//! stores alike (`version`).
//!
//! The provider, idempotency and country stores ([`SqlProviderStore`],
//! [`SqlIdempotencyStore`], [`SqlCountryStore`]) and the appointment
//! stores' reads and outbox are written once here, generic over a
//! `Dialect` whose values and statements run through
//! one `Driver`. The dialect modules (`sqlite`,
//! `postgres`, `mysql`) keep only what really differs: their SQL text
//! (parameter markers `?` or `$n`, upserts, casts, locking reads), how a
//! connection or transaction is had (SQLite's write gate and `BEGIN
//! IMMEDIATE`, a pool elsewhere), how appointment overlaps are refused
//! (`BEGIN IMMEDIATE`, exclusion constraints, row locks), and which
//! driver errors are transient. Group commit of new appointments
//! (`group_commit`) is written once too; a dialect that batches its
//! inserts gives only its batch write.

mod country;
pub(crate) mod dialect;
pub(crate) mod driver;
// The SQLite and PostgreSQL appointment stores batch their inserts; the
// MySQL one writes each on its own.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) mod group_commit;
mod idempotency;
mod providers;
pub(crate) mod reads;
pub(crate) mod rows;
mod values;

pub use country::SqlCountryStore;
pub(crate) use country::{CountrySql, snapshot_columns};
pub(crate) use idempotency::IdempotencySql;
pub use idempotency::SqlIdempotencyStore;
pub use providers::SqlProviderStore;
pub(crate) use providers::{ProviderSql, provider_columns};
pub(crate) use reads::{AppointmentSql, OutboxSql};

use anyhow::Context as _;
use cita_core::ids::Version;

pub(crate) use values::{Instant, Uuid};

/// A version as a signed 64-bit integer (`INTEGER`, `bigint`, `BIGINT`).
pub(crate) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a 64-bit integer column")
}
