//! Group commit of appointment inserts.
//!
//! A write waits for the write gate, sends its statements to the write
//! connection's thread and waits for the answer; under load most of that
//! time is the hand-offs between threads, not SQLite's work, and one insert
//! at a time left the database idle between them. So concurrent inserts
//! queue here, and one task writes everything queued in a single
//! `BEGIN IMMEDIATE … COMMIT` batch, one round trip for all of them: each
//! insert is [`INSERT_IF_FREE`] (the row only if it clashes with nothing,
//! including the rows written before it in the same batch, then its event)
//! with its own parameters. With `synchronous = FULL` the batch also shares
//! one `fsync`.
//!
//! Each caller is told whether its row was written; a row the batch
//! refused, and every row of a batch that failed (and was rolled back),
//! goes to the store's checked path, which decides in a transaction of its
//! own and says why. A caller that gave up waiting before its batch began
//! is dropped from it, so an abandoned request never writes later.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::Context as _;
use sqlx::Row as _;
use tokio::sync::oneshot;

use super::SqliteDatabase;
use super::appointments::{BatchParams, INSERT_IF_FREE, positional};

/// The most inserts one batch writes.
const MAX_BATCH: usize = 32;

/// Inserts waiting for a batch, and whether a task is writing them.
#[derive(Debug, Default)]
pub(super) struct InsertQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: Vec<Queued>,
    draining: bool,
}

#[derive(Debug)]
struct Queued {
    params: BatchParams,
    written: oneshot::Sender<bool>,
}

impl std::fmt::Debug for BatchParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchParams")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl InsertQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an insert and waits for its batch: `true` if the row was
    /// written (and committed), `false` if the checked path must decide.
    pub(super) async fn insert(self: &Arc<Self>, db: &SqliteDatabase, params: BatchParams) -> bool {
        let (written, answer) = oneshot::channel();
        let start_task = {
            let mut state = self.lock();
            state.waiting.push(Queued { params, written });
            !std::mem::replace(&mut state.draining, true)
        };
        if start_task {
            // A task of its own, so that no request being dropped can stop
            // the batch the other requests wait for.
            tokio::spawn(drain(Arc::clone(self), db.clone()));
        }
        answer.await.unwrap_or(false)
    }
}

/// Writes batches until nothing waits.
async fn drain(queue: Arc<InsertQueue>, db: SqliteDatabase) {
    let mut guard = Draining {
        queue: &queue,
        done: false,
    };
    loop {
        let batch: Vec<Queued> = {
            let mut state = queue.lock();
            state.waiting.retain(|q| !q.written.is_closed());
            if state.waiting.is_empty() {
                state.draining = false;
                guard.done = true;
                return;
            }
            let n = batch_size(state.waiting.len());
            state.waiting.drain(..n).collect()
        };
        let ids: Vec<String> = batch.iter().map(|q| q.params.id.clone()).collect();
        let (params, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|q| (q.params, q.written)).unzip();
        let written = match write_batch(&db, params).await {
            Ok(written) => written,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "batched inserts failed; taking the checked path");
                HashSet::new()
            }
        };
        for (id, reply) in ids.iter().zip(replies) {
            let _ = reply.send(written.contains(id));
        }
    }
}

/// Clears the queue if [`drain`] ends any other way than finding it empty
/// (a panic): the callers waiting then take the checked path, and the next
/// insert starts a new task.
struct Draining<'a> {
    queue: &'a InsertQueue,
    done: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.queue.lock();
            state.waiting.clear();
            state.draining = false;
        }
    }
}

/// The batch sizes prepared: powers of two, so a few statements cover every
/// queue length (a longer queue takes several batches).
fn batch_size(waiting: usize) -> usize {
    let n = waiting.clamp(1, MAX_BATCH);
    1 << n.ilog2()
}

/// Writes `params` in one transaction and returns the ids written.
async fn write_batch(
    db: &SqliteDatabase,
    params: Vec<BatchParams>,
) -> anyhow::Result<HashSet<String>> {
    let (sql, order) = batch_sql(params.len());
    let mut query = sqlx::query(sql);
    for p in &params {
        query = p.bind(query, order);
    }
    let mut turn = db.write_turn().await?;
    let rows = turn.in_doubt(query).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).context("reading a written id"))
        .collect()
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
        assert_eq!(
            [1, 2, 3, 5, 31, 32, 33, 1000].map(batch_size),
            [1, 2, 2, 4, 16, 32, 32, 32]
        );
    }
}
