//! Group commit of new appointments.
//!
//! One booking written on its own costs PostgreSQL a statement, two
//! exclusion checks, a commit and its WAL flush; under load the commits
//! queue for the flush and the backends' per-statement work fills the CPU.
//! So concurrent inserts of active appointments queue here, and one task
//! writes everything queued with one call of `cita_insert_appointments`
//! (migration `0006_insert_batch.sql`): one round trip, one transaction,
//! one commit for the whole batch, and for each row the answer whether it
//! was written or why not. The function's comment says why its checks are
//! exact under concurrency; the exclusion constraints still guard every row.
//!
//! A caller that gave up waiting before its batch began is dropped from
//! it, so an abandoned request never writes later. When the call fails, the
//! server rolled the whole batch back if it answered with an error (every
//! caller then writes its row on its own, the store's single-row path), and
//! the outcome is unknown if the connection failed while the call was in
//! flight (every caller gets an error saying so: retrying could book twice
//! or refuse a booking that was made).

use std::sync::{Arc, Mutex, PoisonError};

use cita_core::booking::Appointment;
use sqlx::PgPool;
use tokio::sync::oneshot;

use super::appointments::{Columns, EventRow};
use super::codec::{Instant, Uuid};

/// The most rows one call writes: each row is a subtransaction, and
/// PostgreSQL tracks up to 64 per transaction before it spills them to
/// disk (which slows every other session's snapshots). Each row also adds
/// up to two advisory locks (the lock table holds
/// `max_locks_per_transaction` × connections, 6,400 by default).
const MAX_BATCH: usize = 64;

/// What became of a queued insert.
#[derive(Debug)]
pub(super) enum Batched {
    /// Written and committed.
    Written,
    /// Refused: an active appointment of the provider overlaps.
    SlotTaken,
    /// Refused: an active appointment of the patient overlaps.
    PatientBusy,
    /// The batch was rolled back without deciding this row: write it alone.
    Undecided,
    /// The batch may or may not have committed.
    InDoubt(String),
}

/// The largest message one call sends, about. sqlx 0.9.0 leaves Nagle's
/// algorithm on (launchbadge/sqlx#4335; the fix, #4336, is not released):
/// over TLS a message larger than one TLS record (16 KiB) goes out in two
/// writes, the second waits for the server's delayed acknowledgement of the
/// first, and the call takes 40 ms more. Measured here: batches above the
/// limit took 45–55 ms instead of 5 ms. Without TLS the limit costs only
/// a few more, smaller batches.
const MAX_MESSAGE: usize = 15 * 1024;

/// Bytes a row adds besides its texts: the fixed-size columns and the
/// array elements' length words.
const ROW_OVERHEAD: usize = 160;

/// How many batches may be in flight at once. Each lane takes the rows of
/// its own providers (by a hash of the provider id), so two batches in
/// flight never wait for each other's provider locks, and PostgreSQL works
/// on both at once.
const LANES: usize = 2;

/// Inserts waiting for a batch, per lane, and whether a task is writing
/// each lane's.
#[derive(Debug)]
pub(super) struct InsertQueue {
    lanes: [Mutex<QueueState>; LANES],
}

impl Default for InsertQueue {
    fn default() -> Self {
        Self {
            lanes: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: Vec<Queued>,
    draining: bool,
}

struct Queued {
    appointment: Appointment,
    event: EventRow,
    answer: oneshot::Sender<Batched>,
}

impl Queued {
    /// About how many bytes the row adds to the call's message.
    fn size(&self) -> usize {
        let a = &self.appointment;
        ROW_OVERHEAD
            + a.provider_id.as_str().len()
            + a.patient_id.as_str().len()
            + a.notes.as_ref().map_or(0, |n| n.as_str().len())
            + a.cancel_reason.as_ref().map_or(0, |r| r.as_str().len())
            + self.event.envelope.len()
    }
}

/// How many of the waiting rows (at least one) the next call takes: at
/// most [`MAX_BATCH`], and no more than fit in [`MAX_MESSAGE`] bytes.
fn batch_len(waiting: &[Queued]) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for q in waiting.iter().take(MAX_BATCH) {
        bytes += q.size();
        if n > 0 && bytes > MAX_MESSAGE {
            break;
        }
        n += 1;
    }
    n
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("id", &self.appointment.id)
            .finish_non_exhaustive()
    }
}

impl InsertQueue {
    fn lane(&self, lane: usize) -> std::sync::MutexGuard<'_, QueueState> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an insert of an active appointment and waits for its batch.
    pub(super) async fn insert(
        self: &Arc<Self>,
        pool: &PgPool,
        appointment: Appointment,
        event: EventRow,
    ) -> Batched {
        let lane = lane_of(appointment.provider_id.as_str());
        let (answer, reply) = oneshot::channel();
        let start_task = {
            let mut state = self.lane(lane);
            state.waiting.push(Queued {
                appointment,
                event,
                answer,
            });
            !std::mem::replace(&mut state.draining, true)
        };
        if start_task {
            // A task of its own, so that no request being dropped can stop
            // the batch the other requests wait for.
            tokio::spawn(drain(Arc::clone(self), lane, pool.clone()));
        }
        reply.await.unwrap_or(Batched::Undecided)
    }
}

/// The lane of a provider's rows: FNV-1a of its id, so that it is the same
/// in every process and run.
fn lane_of(provider: &str) -> usize {
    let hash = provider.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    usize::try_from(hash % LANES as u64).unwrap_or(0)
}

/// Writes a lane's batches until nothing waits in it.
async fn drain(queue: Arc<InsertQueue>, lane: usize, pool: PgPool) {
    let mut guard = Draining {
        queue: &queue,
        lane,
        done: false,
    };
    loop {
        let batch: Vec<Queued> = {
            let mut state = queue.lane(lane);
            state.waiting.retain(|q| !q.answer.is_closed());
            if state.waiting.is_empty() {
                state.draining = false;
                guard.done = true;
                return;
            }
            let n = batch_len(&state.waiting);
            state.waiting.drain(..n).collect()
        };
        let outcomes = write_batch(&pool, &batch).await;
        for (queued, outcome) in batch.into_iter().zip(outcomes) {
            let _ = queued.answer.send(outcome);
        }
    }
}

/// Clears the lane if [`drain`] ends any other way than finding it empty
/// (a panic): the callers waiting then write on their own, and the next
/// insert starts a new task.
struct Draining<'a> {
    queue: &'a InsertQueue,
    lane: usize,
    done: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.queue.lane(self.lane);
            state.waiting.clear();
            state.draining = false;
        }
    }
}

const INSERT_BATCH: &str = "SELECT outcome FROM cita_insert_appointments(\
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) AS outcome";

/// The batch's columns, one array per parameter of `cita_insert_appointments`.
#[derive(Default)]
struct Arrays<'a> {
    ids: Vec<Uuid>,
    provider_ids: Vec<&'a str>,
    patient_ids: Vec<&'a str>,
    countries: Vec<&'a str>,
    starts: Vec<Instant>,
    ends: Vec<Instant>,
    buffers: Vec<i32>,
    holds: Vec<Instant>,
    statuses: Vec<&'static str>,
    versions: Vec<i64>,
    notes: Vec<Option<&'a str>>,
    reasons: Vec<Option<&'a str>>,
    created: Vec<Instant>,
    updated: Vec<Instant>,
    event_ids: Vec<Uuid>,
    envelopes: Vec<&'a str>,
}

impl<'a> Arrays<'a> {
    fn push(&mut self, c: Columns<'a>, e: &'a EventRow) {
        self.ids.push(c.id);
        self.provider_ids.push(c.provider_id);
        self.patient_ids.push(c.patient_id);
        self.countries.push(c.country);
        self.starts.push(c.start_at);
        self.ends.push(c.end_at);
        self.buffers.push(c.buffer_minutes);
        self.holds.push(c.hold_until);
        self.statuses.push(c.status);
        self.versions.push(c.version);
        self.notes.push(c.notes);
        self.reasons.push(c.cancel_reason);
        self.created.push(c.created_at);
        self.updated.push(c.updated_at);
        self.event_ids.push(e.event_id);
        self.envelopes.push(e.envelope.as_str());
    }
}

/// Writes `batch` with one call and answers for each row, in order.
async fn write_batch(pool: &PgPool, batch: &[Queued]) -> Vec<Batched> {
    let rows: Vec<(&Appointment, &EventRow)> =
        batch.iter().map(|q| (&q.appointment, &q.event)).collect();
    match call(pool, &rows).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let rolled_back = matches!(
                e,
                sqlx::Error::Database(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Encode(_)
            );
            if rolled_back {
                tracing::debug!(error = %e, rows = batch.len(),
                    "a batch of inserts was rolled back; writing its rows one by one");
                batch.iter().map(|_| Batched::Undecided).collect()
            } else {
                let why = e.to_string();
                tracing::warn!(error = %why, rows = batch.len(),
                    "a batch of inserts failed in flight; its outcome is unknown");
                batch
                    .iter()
                    .map(|_| Batched::InDoubt(why.clone()))
                    .collect()
            }
        }
    }
}

/// Writes one row with a call of its own: the store's path for a row its
/// batch did not decide.
///
/// # Errors
/// The driver's error: the call wrote nothing if the server answered with
/// an error (the caller sorts it with `codec::classify`).
pub(super) async fn insert_alone(
    pool: &PgPool,
    appointment: &Appointment,
    event: &EventRow,
) -> Result<Batched, sqlx::Error> {
    let mut outcomes = call(pool, &[(appointment, event)]).await?;
    Ok(outcomes.pop().unwrap_or(Batched::Undecided))
}

/// One call of `cita_insert_appointments` for `rows`. An encoding failure
/// or an answer that does not read as one outcome per row is reported as a
/// decoding error.
async fn call(
    pool: &PgPool,
    rows: &[(&Appointment, &EventRow)],
) -> Result<Vec<Batched>, sqlx::Error> {
    let mut arrays = Arrays::default();
    for (appointment, event) in rows {
        let columns = Columns::of(appointment).map_err(|e| sqlx::Error::Encode(e.into()))?;
        arrays.push(columns, event);
    }
    let a = arrays;
    let outcomes: Vec<String> = sqlx::query_scalar(INSERT_BATCH)
        .bind(a.ids)
        .bind(a.provider_ids)
        .bind(a.patient_ids)
        .bind(a.countries)
        .bind(a.starts)
        .bind(a.ends)
        .bind(a.buffers)
        .bind(a.holds)
        .bind(a.statuses)
        .bind(a.versions)
        .bind(a.notes)
        .bind(a.reasons)
        .bind(a.created)
        .bind(a.updated)
        .bind(a.event_ids)
        .bind(a.envelopes)
        .fetch_all(pool)
        .await?;
    if outcomes.len() != rows.len() {
        return Err(sqlx::Error::Decode(
            format!(
                "the batch of {} inserts answered {} outcomes",
                rows.len(),
                outcomes.len()
            )
            .into(),
        ));
    }
    outcomes
        .iter()
        .map(|o| match o.as_str() {
            "ok" => Ok(Batched::Written),
            "slot_taken" => Ok(Batched::SlotTaken),
            "patient_busy" => Ok(Batched::PatientBusy),
            other => Err(sqlx::Error::Decode(
                format!("unknown batch outcome {other:?}").into(),
            )),
        })
        .collect()
}
