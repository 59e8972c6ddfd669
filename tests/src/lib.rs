//! Shared test support: contract suites for every port, run unchanged
//! against every adapter of that port, plus the black-box, property and
//! end-to-end suites under `tests/`.
//!
//! # Layout
//!
//! - [`contracts`]: one `async fn` per port (`provider_store_contract`,
//!   `appointment_store_contract`, …) that an adapter's test calls with its
//!   store. `tests/contracts_memory.rs` runs them on the in-memory adapters,
//!   `tests/contracts_sqlite.rs` on SQLite files (feature `sqlite`).
//! - [`servers`]: the test servers' URLs from the environment (skip, or
//!   fail in CI, when missing) and scratch PostgreSQL / MySQL databases.

pub mod contracts;
pub mod races;
pub mod servers;
