use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::MySqlPool;

use super::{Contended, MySqlDatabase, codec, is_duplicate_key, retrying};

/// Idempotency records in a MySQL database.
///
/// A reservation runs in one transaction: a locking read of the key
/// (`SELECT … FOR UPDATE`), then, if the key is free or expired, its claim.
/// An existing row stays locked from the read to the commit, so of several
/// callers exactly one replaces an expired record. A missing key locks
/// nothing (READ COMMITTED takes no gap locks), so several callers may all
/// try to insert it: the primary key lets one through, the others wait for it
/// to commit, get a duplicate key and start over — and then find the
/// winner's reservation. So exactly one caller is told
/// [`Reservation::Reserved`].
#[derive(Debug, Clone)]
pub struct MySqlIdempotencyStore {
    pool: MySqlPool,
}

impl MySqlIdempotencyStore {
    /// A store over `db`'s pool.
    pub fn new(db: &MySqlDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

/// A row; `outcome` is NULL while the key is in progress.
#[derive(sqlx::FromRow)]
struct RecordRow {
    idempotency_key: String,
    fingerprint: String,
    outcome: Option<String>,
    created_at: i64,
}

impl TryFrom<RecordRow> for IdempotencyRecord {
    type Error = anyhow::Error;

    fn try_from(r: RecordRow) -> anyhow::Result<Self> {
        let key = r.idempotency_key;
        let state = match r.outcome {
            None => IdempotencyState::InProgress,
            Some(json) => IdempotencyState::Done(
                serde_json::from_str(&json)
                    .with_context(|| format!("idempotency key {key}: unreadable outcome"))?,
            ),
        };
        Ok(IdempotencyRecord {
            key: IdempotencyKey::parse(&key)
                .with_context(|| format!("stored idempotency key {key:?} is invalid"))?,
            fingerprint: Fingerprint(r.fingerprint),
            state,
            created_at: codec::instant(r.created_at)?,
        })
    }
}

/// Whether a record no longer counts: answered `ttl` or more ago, or
/// reserved `lease` or more ago without an answer (the in-memory store's
/// rule; the contract suite pins both).
fn expired(
    record: &IdempotencyRecord,
    now: Timestamp,
    ttl: SignedDuration,
    lease: SignedDuration,
) -> bool {
    let age = now.duration_since(record.created_at);
    match record.state {
        IdempotencyState::InProgress => age >= lease,
        IdempotencyState::Done(_) => age >= ttl,
    }
}

const LOCK: &str = "SELECT idempotency_key, fingerprint, outcome, created_at \
    FROM idempotency_keys WHERE idempotency_key = ? FOR UPDATE";

const CLAIM: &str = "INSERT INTO idempotency_keys \
    (idempotency_key, fingerprint, outcome, created_at) VALUES (?, ?, NULL, ?)";

/// Replaces an expired record, which the transaction holds locked.
const RECLAIM: &str = "UPDATE idempotency_keys SET fingerprint = ?, outcome = NULL, \
    created_at = ? WHERE idempotency_key = ?";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = ? WHERE idempotency_key = ?";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE idempotency_key = ? AND outcome IS NULL";

impl MySqlIdempotencyStore {
    /// One attempt of [`IdempotencyStore::reserve`]. Every error return
    /// drops the transaction, which rolls it back.
    async fn try_reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let row: Option<RecordRow> = sqlx::query_as(LOCK)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("reading an idempotency key")?;
        match row {
            Some(row) => {
                let record = IdempotencyRecord::try_from(row)?;
                // Compare with the stored precision, so the answer does not
                // depend on whether `now` had a sub-millisecond part.
                let now_ms = codec::instant(codec::millis(now))?;
                if !expired(&record, now_ms, ttl, lease) {
                    tx.rollback().await.context("rolling back")?;
                    return Ok(Reservation::Existing(Box::new(record)));
                }
                sqlx::query(RECLAIM)
                    .bind(fingerprint.0.as_str())
                    .bind(codec::millis(now))
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await
                    .context("reclaiming an expired idempotency key")?;
            }
            None => {
                let claimed = sqlx::query(CLAIM)
                    .bind(key.as_str())
                    .bind(fingerprint.0.as_str())
                    .bind(codec::millis(now))
                    .execute(&mut *tx)
                    .await;
                match claimed {
                    Ok(_) => {}
                    Err(e) if is_duplicate_key(&e) => {
                        // Release at once the lock the failed insert left on
                        // the winner's row.
                        tx.rollback().await.context("rolling back")?;
                        return Err(anyhow::Error::new(Contended)
                            .context("another request reserved the key first"));
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e).context("reserving an idempotency key"));
                    }
                }
            }
        }
        tx.commit().await.context("committing a reservation")?;
        Ok(Reservation::Reserved)
    }
}

#[async_trait]
impl IdempotencyStore for MySqlIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        retrying("reserving an idempotency key", || {
            self.try_reserve(key, fingerprint, now, ttl, lease)
        })
        .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(outcome).context("encoding an outcome")?;
        let done = sqlx::query(COMPLETE)
            .bind(json)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .context("storing an idempotent answer")?;
        // Rows matched (CLIENT_FOUND_ROWS): storing the same answer twice
        // still finds the key.
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
