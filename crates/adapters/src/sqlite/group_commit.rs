//! SQLite's batch write for the shared group commit
//! ([`crate::sql::group_commit`]).
//!
//! A write waits for the write gate, sends its statements to the write
//! connection's thread and waits for the answer; under load most of that
//! time is the hand-offs between threads, not SQLite's work, and one insert
//! at a time left the database idle between them. So a batch of queued
//! inserts is a single `BEGIN IMMEDIATE … COMMIT`, one round trip for all
//! of them: each insert is [`INSERT_IF_FREE`] (the row only if it clashes
//! with nothing, including the rows written before it in the same batch,
//! then what became of it, then its event) with its own parameters. With
//! `synchronous = FULL` the batch also shares one `fsync`.
//!
//! Each row answers whether it was written or which rule refused it, so a
//! refusal is decided once, in the batch. A batch that failed was rolled
//! back (`WriteTurn::in_doubt`): its callers take the store's checked path.

use std::sync::OnceLock;

use anyhow::Context as _;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use super::SqliteDatabase;
use super::appointments::{BatchParams, INSERT_IF_FREE, positional};
use crate::sql::group_commit::{BatchFailure, BatchWriter, Limits, Outcome, Rows};

/// The most inserts one batch writes.
const MAX_BATCH: usize = 32;

/// Batches of inserts into one SQLite file.
#[derive(Debug, Clone)]
pub(super) struct SqliteBatch {
    pub(super) db: SqliteDatabase,
}

impl BatchWriter for SqliteBatch {
    type Row = BatchParams;

    /// One lane: the file has one writer. Batch sizes are powers of two so
    /// a few statements, each prepared once on the write connection, cover
    /// every queue length.
    const LIMITS: Limits = Limits {
        lanes: 1,
        rows: Rows::PowerOfTwoUpTo(MAX_BATCH),
        max_bytes: usize::MAX,
    };

    fn lane_key(_: &BatchParams) -> &str {
        ""
    }

    fn size(_: &BatchParams) -> usize {
        0
    }

    async fn write(&self, rows: &[BatchParams]) -> Result<Vec<Outcome>, BatchFailure> {
        let (sql, order) = batch_sql(rows.len());
        let mut query = sqlx::query(sql);
        for p in rows {
            query = p.bind(query, order);
        }
        let mut turn = self
            .db
            .write_turn()
            .await
            .map_err(BatchFailure::RolledBack)?;
        let answered = turn
            .in_doubt(query)
            .await
            .context("writing a batch of inserts")
            .map_err(BatchFailure::RolledBack)?;
        // Committed: an answer that does not read leaves the rows in doubt.
        answered
            .iter()
            .map(outcome)
            .collect::<anyhow::Result<_>>()
            .map_err(BatchFailure::InDoubt)
    }
}

/// One row's answer, as [`INSERT_IF_FREE`] gives it.
fn outcome(row: &SqliteRow) -> anyhow::Result<Outcome> {
    match row
        .try_get::<&str, _>(0)
        .context("reading a batch outcome")?
    {
        "ok" => Ok(Outcome::Written),
        "slot_taken" => Ok(Outcome::SlotTaken),
        "patient_busy" => Ok(Outcome::PatientBusy),
        other => anyhow::bail!("unknown batch outcome {other:?}"),
    }
}

/// `BEGIN IMMEDIATE; ` + `n` copies of [`INSERT_IF_FREE`] + `COMMIT;`, with
/// positional parameters, and the order in which one insert's parameters
/// are bound (the same for each copy).
fn batch_sql(n: usize) -> (&'static str, &'static [usize]) {
    static SQL: OnceLock<(Vec<String>, Vec<usize>)> = OnceLock::new();
    let (all, order) = SQL.get_or_init(|| {
        let (one, order) = positional(INSERT_IF_FREE);
        let all = (0..=MAX_BATCH)
            .map(|n| {
                let mut sql = String::from("BEGIN IMMEDIATE; ");
                for _ in 0..n {
                    sql.push_str(&one);
                    sql.push(' ');
                }
                sql.push_str("COMMIT;");
                sql
            })
            .collect();
        (all, order)
    });
    (&all[n.min(MAX_BATCH)], order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_repeat_the_insert_with_positional_parameters() {
        assert_eq!(
            positional("SELECT ?1, ?20 WHERE x = ?3 OR y = ?1;"),
            (
                "SELECT ?, ? WHERE x = ? OR y = ?;".to_owned(),
                vec![1, 20, 3, 1]
            )
        );
        let (two, order) = batch_sql(2);
        assert!(two.starts_with("BEGIN IMMEDIATE; INSERT INTO appointments"));
        assert!(two.ends_with("COMMIT;"));
        assert_eq!(two.matches('?').count(), 2 * order.len());
        assert!(!two.contains("?1"));
        assert_eq!(two.matches("SELECT CASE WHEN changes() = 1").count(), 2);
    }
}
