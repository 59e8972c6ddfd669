//! PostgreSQL's batch write for the shared group commit
//! ([`crate::sql::group_commit`]).
//!
//! One booking written on its own costs PostgreSQL a statement, two
//! exclusion checks, a commit and its WAL flush; under load the commits
//! queue for the flush and the backends' per-statement work fills the CPU.
//! So a batch of queued inserts is one call of `cita_insert_appointments`
//! (migration `0006_insert_batch.sql`): one round trip, one transaction,
//! one commit for the whole batch, and for each row the answer whether it
//! was written or why not. The function's comment says why its checks are
//! exact under concurrency; the exclusion constraints still guard every row.
//!
//! When the call fails, the server rolled the whole batch back if it
//! answered with an error (every caller then writes its row on its own, the
//! store's single-row path), and the outcome is unknown if the connection
//! failed while the call was in flight.

use cita_core::booking::Appointment;
use sqlx::PgPool;

use super::appointments::{Columns, EventRow};
use super::codec::{Instant, Uuid};
use crate::sql::group_commit::{BatchFailure, BatchWriter, Limits, Outcome, Rows};

/// Batches of inserts into one PostgreSQL database.
#[derive(Debug, Clone)]
pub(super) struct PgBatch {
    pub(super) pool: PgPool,
}

/// One queued insert: an active appointment and its event.
pub(super) struct PgRow {
    pub(super) appointment: Appointment,
    pub(super) event: EventRow,
}

/// Bytes a row adds besides its texts: the fixed-size columns and the
/// array elements' length words.
const ROW_OVERHEAD: usize = 160;

impl BatchWriter for PgBatch {
    type Row = PgRow;

    /// - **Rows**: each row is a subtransaction, and PostgreSQL tracks up
    ///   to 64 per transaction before it spills them to disk (which slows
    ///   every other session's snapshots). Each row also adds up to two
    ///   advisory locks (the lock table holds `max_locks_per_transaction` ×
    ///   connections, 6,400 by default).
    /// - **Bytes**: sqlx 0.9.0 leaves Nagle's algorithm on
    ///   (launchbadge/sqlx#4335; the fix, #4336, is not released): over TLS
    ///   a message larger than one TLS record (16 KiB) goes out in two
    ///   writes, the second waits for the server's delayed acknowledgement
    ///   of the first, and the call takes 40 ms more. Measured here: batches
    ///   above the limit took 45–55 ms instead of 5 ms. Without TLS the
    ///   limit costs only a few more, smaller batches.
    /// - **Lanes**: two batches in flight, each of its own providers, never
    ///   wait for each other's provider locks, and PostgreSQL works on both
    ///   at once.
    const LIMITS: Limits = Limits {
        lanes: 2,
        rows: Rows::UpTo(64),
        max_bytes: 15 * 1024,
    };

    fn lane_key(row: &PgRow) -> &str {
        row.appointment.provider_id.as_str()
    }

    fn size(row: &PgRow) -> usize {
        let a = &row.appointment;
        ROW_OVERHEAD
            + a.provider_id.as_str().len()
            + a.patient_id.as_str().len()
            + a.notes.as_ref().map_or(0, |n| n.as_str().len())
            + a.cancel_reason.as_ref().map_or(0, |r| r.as_str().len())
            + row.event.envelope.len()
    }

    async fn write(&self, rows: &[PgRow]) -> Result<Vec<Outcome>, BatchFailure> {
        call(&self.pool, rows.iter().map(|r| (&r.appointment, &r.event)))
            .await
            .map_err(|e| {
                let rolled_back = matches!(
                    e,
                    sqlx::Error::Database(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Encode(_)
                );
                let e = anyhow::Error::new(e).context("calling cita_insert_appointments");
                if rolled_back {
                    BatchFailure::RolledBack(e)
                } else {
                    BatchFailure::InDoubt(e)
                }
            })
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
) -> Result<Outcome, sqlx::Error> {
    let mut outcomes = call(pool, std::iter::once((appointment, event))).await?;
    // `call` answers one outcome per row.
    outcomes
        .pop()
        .ok_or_else(|| sqlx::Error::Decode("the insert answered no outcome".into()))
}

/// One call of `cita_insert_appointments` for `rows`. An encoding failure
/// or an answer that does not read as one outcome per row is reported as a
/// decoding error.
async fn call<'a>(
    pool: &PgPool,
    rows: impl ExactSizeIterator<Item = (&'a Appointment, &'a EventRow)>,
) -> Result<Vec<Outcome>, sqlx::Error> {
    let n = rows.len();
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
    if outcomes.len() != n {
        return Err(sqlx::Error::Decode(
            format!(
                "the batch of {n} inserts answered {} outcomes",
                outcomes.len()
            )
            .into(),
        ));
    }
    outcomes
        .iter()
        .map(|o| match o.as_str() {
            "ok" => Ok(Outcome::Written),
            "slot_taken" => Ok(Outcome::SlotTaken),
            "patient_busy" => Ok(Outcome::PatientBusy),
            other => Err(sqlx::Error::Decode(
                format!("unknown batch outcome {other:?}").into(),
            )),
        })
        .collect()
}
