//! What the three relational dialects (SQLite, PostgreSQL, MySQL/MariaDB)
//! share: the value types their columns decode into ([`Instant`],
//! [`Uuid`]), one row struct per model with one conversion to the domain
//! type ([`rows`]), and the encodings of domain values that every dialect
//! stores alike ([`version`]).
//!
//! The dialect modules (`sqlite`, `postgres`, `mysql`) keep only what
//! really differs: their SQL text (parameter markers `?` or `$n`, upserts, casts), how
//! overlaps are refused (`BEGIN IMMEDIATE`, exclusion constraints, row
//! locks), and how driver errors are classified.

pub(crate) mod rows;
mod values;

use anyhow::Context as _;
use cita_core::ids::Version;

pub(crate) use values::{Instant, Uuid};

/// A version as a signed 64-bit integer (`INTEGER`, `bigint`, `BIGINT`).
pub(crate) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a 64-bit integer column")
}
