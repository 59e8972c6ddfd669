//! Adapters for Cita's ports, one module per technology. Every heavy adapter
//! sits behind a cargo feature; `memory` is always built.
//!
//! # Layout
//!
//! - [`clock`]: [`clock::SystemClock`] (tokio timers) and [`clock::ManualClock`] for tests.
//! - [`memory`]: in-memory implementations of every port and an in-process
//!   message bus with queues, acknowledgements and dead-letter queues.
//! - `redis` (feature `redis`): `RedisSlotLock`, the slot lock on Redis.
//! - [`readiness`]: named readiness checks for the binaries' `/ready`.
//! - [`outage`]: which failures are outages of a dependency (answered 503),
//!   and the [`outage::Unavailable`] marker adapters may wrap errors in.
//! - [`signal`]: the process signals the binaries stop on.
//! - [`select`]: opening the stores and the lock a URL names
//!   (`sqlite:`, `postgres://`, `mysql://`, `redis://`).
//! - [`pipeline`]: the one pipeline runtime (outbox relay → country
//!   processors → confirmations): workers with a `process_one` step, one
//!   runner and one shutdown signal, the inbox port every transport
//!   implements, and embedded mode's durable inline delivery.
//! - `sqlite` (feature `sqlite`): SQLite files for the provider, appointment
//!   (+ outbox), idempotency and country stores, with embedded migrations.
//! - `mysql` (feature `mysql`): MySQL / MariaDB databases for the same four
//!   stores (primary, and each country's own), with embedded migrations;
//!   bookings serialise on per-provider and per-patient lock rows.
//! - `dynamodb` (feature `dynamodb`): DynamoDB tables for the provider,
//!   appointment (+ outbox) and idempotency stores; overlaps are refused by
//!   conditional writes in one transaction (see `docs/dynamodb.md`).
//! - `aws` (feature `aws`): SNS publisher, SQS consumer, EventBridge
//!   publisher and the provisioning of the topology of `EVENTS.md`.
//! - `postgres` (feature `postgres`): PostgreSQL for the same four stores;
//!   exclusion constraints refuse overlapping appointments in the database.
//! - `sql` (any of the three relational features): what the relational
//!   dialects share — column value types, row structs and their decoding.

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
#[cfg(any(feature = "sql", feature = "dynamodb"))]
mod codec_common;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod outage;
pub mod pipeline;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod readiness;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sql", feature = "dynamodb"))]
mod schedule_json;
pub mod select;
pub mod signal;
#[cfg(feature = "sql")]
pub mod sql;

#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The binaries' log filter when `CITA_LOG` is not set: `info`, without
/// PostgreSQL's notices (sqlx logs them at `info`; migrations raise them on
/// every start, e.g. "relation … already exists, skipping").
pub const DEFAULT_LOG: &str = "info,sqlx::postgres::notice=warn";
