use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyStore, IdempotentOutcome,
    Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};
use sqlx::MySqlPool;

use super::{Contended, MySqlDatabase, is_duplicate_key, retrying};
use crate::sql::Instant;
use crate::sql::rows::{IdempotencyRow, uuid_of};

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

const LOCK: &str = "SELECT idempotency_key, fingerprint, outcome, created_at, appointment_id \
    FROM idempotency_keys WHERE idempotency_key = ? FOR UPDATE";

const CLAIM: &str = "INSERT INTO idempotency_keys \
    (idempotency_key, fingerprint, outcome, created_at, appointment_id) \
    VALUES (?, ?, NULL, ?, ?)";

/// Replaces an expired record, which the transaction holds locked.
const RECLAIM: &str = "UPDATE idempotency_keys SET fingerprint = ?, outcome = NULL, \
    created_at = ?, appointment_id = ? WHERE idempotency_key = ?";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = ? WHERE idempotency_key = ?";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE idempotency_key = ? AND outcome IS NULL";

impl MySqlIdempotencyStore {
    /// One attempt of [`IdempotencyStore::reserve`]. Every error return
    /// drops the transaction, which rolls it back.
    async fn try_reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Instant,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let row: Option<IdempotencyRow> = sqlx::query_as(LOCK)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("reading an idempotency key")?;
        let replaced = row.map(IdempotencyRecord::try_from).transpose()?;
        match &replaced {
            Some(record) => {
                if !record.is_expired(now.0, ttl, lease) {
                    tx.rollback().await.context("rolling back")?;
                    return Ok(Reservation::Existing(Box::new(record.clone())));
                }
                sqlx::query(RECLAIM)
                    .bind(fingerprint.0.as_str())
                    .bind(now)
                    .bind(uuid_of(appointment))
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await
                    .context("reclaiming an expired idempotency key")?;
            }
            None => {
                let claimed = sqlx::query(CLAIM)
                    .bind(key.as_str())
                    .bind(fingerprint.0.as_str())
                    .bind(now)
                    .bind(uuid_of(appointment))
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
        Ok(Reservation::Reserved {
            replaced: replaced.map(Box::new),
        })
    }
}

#[async_trait]
impl IdempotencyStore for MySqlIdempotencyStore {
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
        // whether `now` had a sub-millisecond part.
        let now = Instant::of(now);
        retrying("reserving an idempotency key", || {
            self.try_reserve(key, fingerprint, appointment, now, ttl, lease)
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
