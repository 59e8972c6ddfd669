use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;

use super::PostgresDatabase;
use super::codec::{self, Instant};

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
/// exactly one of them is told [`Reservation::Reserved`].
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

/// A row; `outcome` is NULL while the key is in progress.
#[derive(sqlx::FromRow)]
struct RecordRow {
    key: String,
    fingerprint: String,
    outcome: Option<String>,
    created_at: Instant,
}

impl TryFrom<RecordRow> for IdempotencyRecord {
    type Error = anyhow::Error;

    fn try_from(r: RecordRow) -> anyhow::Result<Self> {
        let state = match r.outcome {
            None => IdempotencyState::InProgress,
            Some(json) => IdempotencyState::Done(
                serde_json::from_str(&json)
                    .with_context(|| format!("idempotency key {}: unreadable outcome", r.key))?,
            ),
        };
        Ok(IdempotencyRecord {
            key: IdempotencyKey::parse(&r.key)
                .with_context(|| format!("stored idempotency key {:?} is invalid", r.key))?,
            fingerprint: Fingerprint(r.fingerprint),
            state,
            created_at: codec::instant(r.created_at),
        })
    }
}

/// Claims `$1` for fingerprint `$2` at `$3` unless a record holds it: an
/// answer younger than the ttl (created after `$5`) or a reservation
/// younger than the lease (created after `$4`). This is the in-memory
/// store's rule — a record is expired once its age is at least the ttl or
/// lease — with the cut-offs computed in Rust. Returns a row only when it
/// claimed the key.
const CLAIM: &str = "INSERT INTO idempotency_keys AS k (key, fingerprint, outcome, created_at) \
    VALUES ($1, $2, NULL, $3) \
    ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = NULL, \
      created_at = excluded.created_at \
    WHERE (k.outcome IS NULL AND k.created_at <= $4) \
       OR (k.outcome IS NOT NULL AND k.created_at <= $5) \
    RETURNING 1";

const SELECT: &str = "SELECT key, fingerprint, outcome::text AS outcome, created_at \
    FROM idempotency_keys WHERE key = $1";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = $2::jsonb WHERE key = $1";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE key = $1 AND outcome IS NULL";

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
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
        let claimed: Option<i32> = sqlx::query_scalar(CLAIM)
            .bind(key.as_str())
            .bind(fingerprint.0.as_str())
            .bind(now)
            .bind(lease_cutoff)
            .bind(ttl_cutoff)
            .fetch_optional(&mut *tx)
            .await
            .context("reserving an idempotency key")?;
        if claimed.is_some() {
            tx.commit().await.context("committing a reservation")?;
            return Ok(Reservation::Reserved);
        }
        // The upsert locked the row that refused it; it is still there.
        let row: RecordRow = sqlx::query_as(SELECT)
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
