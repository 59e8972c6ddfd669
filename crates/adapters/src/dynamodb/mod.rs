//! DynamoDB stores (feature `dynamodb`): the primary store's three ports
//! ([`DynamoProviderStore`], [`DynamoAppointmentStore`] — which is also the
//! [`cita_core::events::Outbox`] — and [`DynamoIdempotencyStore`]) over the
//! tables of a [`DynamoDatabase`]. Same port semantics as the SQL and
//! in-memory adapters; the contract suites in `cita-tests` run unchanged
//! against all of them. `docs/dynamodb.md` gives the design and the
//! argument for its correctness at length; in short:
//!
//! - **Five tables**, on-demand billing, names `{prefix}-providers`,
//!   `-appointments`, `-occupancy`, `-outbox` and `-idempotency`, created
//!   by [`DynamoDatabase::ensure_tables`].
//! - **Overlaps are refused by conditional writes.** For each (provider,
//!   UTC day) and (patient, UTC day) that an active appointment holds, an
//!   occupancy item lists the holds of that day with a version. A write
//!   reads the items its old and new holds touch (strongly consistent),
//!   checks overlaps in code (provider first), and then commits the
//!   appointment, every touched occupancy item (on condition that its
//!   version is the one read) and the outbox entry in one
//!   `TransactWriteItems`. Two overlapping holds share a UTC day, so two
//!   writers that could clash both write that day's item and at most one
//!   of them commits; the other reads again and is refused, or succeeds if
//!   nothing clashes any more. A cancellation takes its hold out of its
//!   days in the same transaction.
//! - **Versions are conditions too**: an update commits only if the
//!   appointment item is exactly as read (a private revision counter), so
//!   a concurrent change makes it read again and answer `VersionConflict`
//!   when the version moved.
//! - **Reads**: `get` is a strongly consistent `GetItem`; `list` and
//!   `active_in_range` query two global secondary indexes sorted by
//!   `(start, id)`, which DynamoDB keeps eventually consistent (overlaps
//!   never depend on them). The outbox is read through an index over every
//!   pending entry in write order; entries are deleted when published.
//! - **Instants are Number milliseconds**, statuses and every other
//!   encoding live in the private `codec` module, schedules are JSON text
//!   of the same shape as the SQL adapters'.

mod appointments;
mod codec;
mod idempotency;
mod occupancy;
mod outbox;
mod providers;
mod schema;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::Client;

pub use appointments::DynamoAppointmentStore;
pub use idempotency::DynamoIdempotencyStore;
pub use providers::DynamoProviderStore;

/// The AWS configuration crate this adapter is built with, so callers build
/// the [`aws_config::SdkConfig`] that [`DynamoDatabase::new`] takes with the
/// same version.
pub use aws_config;
/// The DynamoDB client crate this adapter is built with, for
/// [`DynamoDatabase::from_client`] and for reading the tables directly
/// (maintenance, tests).
pub use aws_sdk_dynamodb;

/// The longest table-name suffix (`-idempotency`); DynamoDB names are at
/// most 255 characters.
const LONGEST_SUFFIX: usize = "-idempotency".len();

/// What [`DynamoDatabase::ensure_tables`] found for a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// The table did not exist and was created.
    Created,
    /// The table existed (with the expected keys) and was left as it was.
    AlreadyPresent,
}

/// The names of the five tables, all `{prefix}-…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Providers, by id.
    pub providers: String,
    /// Appointments, by id, with the listing indexes.
    pub appointments: String,
    /// Holds per (provider or patient, UTC day): what refuses overlaps.
    pub occupancy: String,
    /// Events not yet published, by id, with the write-order index.
    pub outbox: String,
    /// Idempotency records, by key.
    pub idempotency: String,
}

impl TableNames {
    /// The names for `prefix`.
    ///
    /// # Errors
    /// The prefix is empty, longer than a DynamoDB table name allows with
    /// the suffixes, or holds a character other than `A-Z a-z 0-9 _ - .`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !prefix.is_empty() && prefix.len() + LONGEST_SUFFIX <= 255,
            "a table prefix must be 1 to {} characters",
            255 - LONGEST_SUFFIX
        );
        anyhow::ensure!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
            "a table prefix may only hold A-Z, a-z, 0-9, '_', '-' and '.': {prefix:?}"
        );
        Ok(Self {
            providers: format!("{prefix}-providers"),
            appointments: format!("{prefix}-appointments"),
            occupancy: format!("{prefix}-occupancy"),
            outbox: format!("{prefix}-outbox"),
            idempotency: format!("{prefix}-idempotency"),
        })
    }

    /// Every name, in creation order.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.providers,
            &self.appointments,
            &self.occupancy,
            &self.outbox,
            &self.idempotency,
        ]
    }
}

/// A DynamoDB client and the names of Cita's tables. Clones share the
/// client (and its connection pool).
#[derive(Debug, Clone)]
pub struct DynamoDatabase {
    client: Client,
    tables: Arc<TableNames>,
}

impl DynamoDatabase {
    /// A client built from `config` (region, credentials, endpoint) for the
    /// tables named `{prefix}-…`. Nothing is sent until the first call.
    ///
    /// # Errors
    /// The prefix is invalid (see [`TableNames::new`]).
    pub fn new(config: &aws_config::SdkConfig, prefix: &str) -> anyhow::Result<Self> {
        Self::from_client(Client::new(config), prefix)
    }

    /// Uses a client configured by the caller (its own retry or timeout
    /// settings, interceptors).
    ///
    /// # Errors
    /// The prefix is invalid (see [`TableNames::new`]).
    pub fn from_client(client: Client, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            tables: Arc::new(TableNames::new(prefix)?),
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The tables' names.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Creates every table and index that does not exist yet (on-demand
    /// billing), waits until all are `ACTIVE`, and turns on time to live
    /// for idempotency records. Idempotent: a second run reports every
    /// table as [`TableState::AlreadyPresent`] and changes nothing, and
    /// concurrent runs are safe.
    ///
    /// # Errors
    /// A request fails, a table does not become active within five
    /// minutes, or an existing table has other keys or indexes than the
    /// design's.
    pub async fn ensure_tables(&self) -> anyhow::Result<Vec<(String, TableState)>> {
        schema::ensure(&self.client, &self.tables).await
    }

    /// Answers when DynamoDB can be reached with these credentials and the
    /// appointments table exists (`DescribeTable`), for readiness checks.
    ///
    /// # Errors
    /// DynamoDB cannot be reached, refuses the request, or the table does
    /// not exist.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let name = &self.tables.appointments;
        schema::describe(&self.client, name)
            .await
            .context("DynamoDB did not answer DescribeTable")?
            .with_context(|| format!("table {name} does not exist"))?;
        Ok(())
    }
}

/// How long to wait before attempt `attempt + 1` of a contended write: a
/// random time up to 5 ms doubled per attempt, at most 320 ms, so writers
/// that collided spread out instead of colliding again.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 5u64 << attempt.min(6);
    // A v4 UUID is 122 random bits; the crate has no other randomness.
    let random = uuid::Uuid::new_v4().as_u128();
    Duration::from_millis(1 + (random % u128::from(cap_ms)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_follow_the_prefix() {
        let t = TableNames::new("cita").unwrap();
        assert_eq!(
            t.all(),
            [
                "cita-providers",
                "cita-appointments",
                "cita-occupancy",
                "cita-outbox",
                "cita-idempotency"
            ]
        );
        assert!(TableNames::new("").is_err());
        assert!(TableNames::new("a b").is_err());
        assert!(TableNames::new(&"x".repeat(243)).is_ok());
        assert!(TableNames::new(&"x".repeat(244)).is_err());
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..30 {
            let d = backoff(attempt);
            assert!(d >= Duration::from_millis(1));
            assert!(d <= Duration::from_millis(321));
        }
    }
}
