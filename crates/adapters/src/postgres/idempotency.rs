use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyStore, IdempotentOutcome,
    Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;

use super::PostgresDatabase;
use crate::sql::Instant;
use crate::sql::rows::{IdempotencyRow, uuid_of};

/// Idempotency records in PostgreSQL.
///
/// A reservation is one upsert that claims the key when it is free or
/// expired (`INSERT … ON CONFLICT (key) DO UPDATE … WHERE <expired>`). When
/// the key is held, PostgreSQL still locks the existing row for the rest of
/// the transaction (that is what `ON CONFLICT DO UPDATE` does even when its
/// `WHERE` is false), so the read that follows in the same transaction sees
/// exactly the record that refused the claim: nobody can complete, release
/// or replace it in between. Concurrent callers of one key queue on the
/// row (or on the key's unique index entry while it is being created), so
/// exactly one of them is told [`Reservation::Reserved`]. The record a
/// claim replaces is read by the same statement (`old`) and
/// returned with the claim.
#[derive(Debug, Clone)]
pub struct PostgresIdempotencyStore {
    pool: PgPool,
}

impl PostgresIdempotencyStore {
    /// A store over `db`'s pool.
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

/// Claims `$1` for fingerprint `$2` and appointment `$6` at `$3` unless a
/// record holds it: an answer younger than the ttl (created after `$5`) or
/// a reservation younger than the lease (created after `$4`) —
/// `IdempotencyRecord::is_expired` with the cut-offs computed in Rust.
/// Returns a row only when it claimed the key, with the columns of the
/// record it replaced, if any, as the statement's snapshot shows them
/// (`old`; a locking read there would skip the row the upsert has just
/// updated). Should another request change the row between that snapshot
/// and the upsert's lock, the upsert's `WHERE` decides on the current row;
/// what `old` reports then is still a record this key really held, and the
/// service only uses it to look for the appointment an unanswered attempt
/// of the same request booked.
const CLAIM: &str = "WITH old AS ( \
      SELECT key, fingerprint, outcome::text AS outcome, created_at, appointment_id \
      FROM idempotency_keys WHERE key = $1), \
    claim AS ( \
      INSERT INTO idempotency_keys AS k (key, fingerprint, outcome, created_at, appointment_id) \
      VALUES ($1, $2, NULL, $3, $6) \
      ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = NULL, \
        created_at = excluded.created_at, appointment_id = excluded.appointment_id \
      WHERE (k.outcome IS NULL AND k.created_at <= $4) \
         OR (k.outcome IS NOT NULL AND k.created_at <= $5) \
      RETURNING 1) \
    SELECT old.key AS idempotency_key, old.fingerprint, old.outcome, old.created_at, \
      old.appointment_id, old.key IS NOT NULL AS replaced \
    FROM claim LEFT JOIN old ON true";

const SELECT: &str = "SELECT key AS idempotency_key, fingerprint, outcome::text AS outcome, \
    created_at, appointment_id FROM idempotency_keys WHERE key = $1";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = $2::jsonb WHERE key = $1";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE key = $1 AND outcome IS NULL";

/// What [`CLAIM`] returns: the replaced record's columns, all NULL when it
/// replaced nothing.
#[derive(sqlx::FromRow)]
struct Claimed {
    replaced: bool,
    #[sqlx(flatten)]
    old: OldRow,
}

#[derive(sqlx::FromRow)]
struct OldRow {
    idempotency_key: Option<String>,
    fingerprint: Option<String>,
    outcome: Option<String>,
    created_at: Option<Instant>,
    appointment_id: Option<crate::sql::Uuid>,
}

impl OldRow {
    fn into_row(self) -> Option<IdempotencyRow> {
        Some(IdempotencyRow {
            idempotency_key: self.idempotency_key?,
            fingerprint: self.fingerprint?,
            outcome: self.outcome,
            created_at: self.created_at?,
            appointment_id: self.appointment_id,
        })
    }
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        // Compare at the stored precision, so the answer does not depend on
        // whether `now` had a sub-millisecond part: stored times are whole
        // milliseconds, so `created_at <= floor(now_ms - d)` is exactly
        // `now_ms - created_at >= d`.
        let now = Instant::of(now);
        let lease_cutoff = Instant::of(now.0 - lease);
        let ttl_cutoff = Instant::of(now.0 - ttl);
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let claimed: Option<Claimed> = sqlx::query_as(CLAIM)
            .bind(key.as_str())
            .bind(fingerprint.0.as_str())
            .bind(now)
            .bind(lease_cutoff)
            .bind(ttl_cutoff)
            .bind(uuid_of(appointment))
            .fetch_optional(&mut *tx)
            .await
            .context("reserving an idempotency key")?;
        if let Some(claimed) = claimed {
            tx.commit().await.context("committing a reservation")?;
            let replaced = match claimed.replaced {
                false => None,
                true => Some(Box::new(IdempotencyRecord::try_from(
                    claimed
                        .old
                        .into_row()
                        .context("a replaced idempotency record without its columns")?,
                )?)),
            };
            return Ok(Reservation::Reserved { replaced });
        }
        // The upsert locked the row that refused it; it is still there.
        let row: IdempotencyRow = sqlx::query_as(SELECT)
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .context("reading an idempotency key")?;
        tx.commit().await.context("ending a reservation")?;
        Ok(Reservation::Existing(Box::new(
            IdempotencyRecord::try_from(row)?,
        )))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(outcome).context("encoding an outcome")?;
        let done = sqlx::query(COMPLETE)
            .bind(key.as_str())
            .bind(json)
            .execute(&self.pool)
            .await
            .context("storing an idempotent answer")?;
        anyhow::ensure!(
            done.rows_affected() == 1,
            "idempotency key {key} is not reserved"
        );
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()> {
        sqlx::query(RELEASE)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .context("releasing an idempotency key")?;
        Ok(())
    }
}
