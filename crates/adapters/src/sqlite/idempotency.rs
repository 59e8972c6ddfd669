use super::SqliteDatabase;
use crate::sql::Instant;
use crate::sql::rows::{IdempotencyRow, uuid_of};
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyStore, IdempotentOutcome,
    Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};

/// Idempotency records in a SQLite file. A reservation first tries to
/// insert the key as new (one statement, the common case); if the key
/// exists, it reads it and, if it is expired, claims it inside one
/// `BEGIN IMMEDIATE` transaction. Either way of many concurrent callers
/// exactly one is told [`Reservation::Reserved`].
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    db: SqliteDatabase,
}

impl SqliteIdempotencyStore {
    /// A store over `db`.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self { db: db.clone() }
    }
}

const SELECT: &str = "SELECT key AS idempotency_key, fingerprint, outcome, created_at, \
    appointment_id FROM idempotency_keys WHERE key = ?1";

const CLAIM: &str = "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at, appointment_id) \
    VALUES (?1, ?2, NULL, ?3, ?4) \
    ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = NULL, \
    created_at = excluded.created_at, appointment_id = excluded.appointment_id";

/// Claims a key nobody holds, returning a row if it did.
const CLAIM_NEW: &str = "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at, appointment_id) \
    VALUES (?1, ?2, NULL, ?3, ?4) ON CONFLICT (key) DO NOTHING RETURNING 1";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = ?2 WHERE key = ?1";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE key = ?1 AND outcome IS NULL";

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
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
        {
            let mut turn = self.db.write_turn().await?;
            let claimed = sqlx::query(CLAIM_NEW)
                .bind(key.as_str())
                .bind(fingerprint.0.as_str())
                .bind(now)
                .bind(uuid_of(appointment))
                .fetch_optional(turn.conn())
                .await
                .context("reserving an idempotency key")?;
            if claimed.is_some() {
                return Ok(Reservation::Reserved { replaced: None });
            }
        }
        let mut tx = self.db.begin_write().await?;
        let row: Option<IdempotencyRow> = sqlx::query_as(SELECT)
            .bind(key.as_str())
            .fetch_optional(tx.conn())
            .await
            .context("reading an idempotency key")?;
        let replaced = row.map(IdempotencyRecord::try_from).transpose()?;
        if let Some(record) = replaced.as_ref()
            && !record.is_expired(now.0, ttl, lease)
        {
            tx.rollback().await?;
            return Ok(Reservation::Existing(Box::new(record.clone())));
        }
        sqlx::query(CLAIM)
            .bind(key.as_str())
            .bind(fingerprint.0.as_str())
            .bind(now)
            .bind(uuid_of(appointment))
            .execute(tx.conn())
            .await
            .context("reserving an idempotency key")?;
        tx.commit().await.context("committing a reservation")?;
        Ok(Reservation::Reserved {
            replaced: replaced.map(Box::new),
        })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(outcome).context("encoding an outcome")?;
        let mut turn = self.db.write_turn().await?;
        let done = sqlx::query(COMPLETE)
            .bind(key.as_str())
            .bind(json)
            .execute(turn.conn())
            .await
            .context("storing an idempotent answer")?;
        anyhow::ensure!(
            done.rows_affected() == 1,
            "idempotency key {key} is not reserved"
        );
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()> {
        let mut turn = self.db.write_turn().await?;
        sqlx::query(RELEASE)
            .bind(key.as_str())
            .execute(turn.conn())
            .await
            .context("releasing an idempotency key")?;
        Ok(())
    }
}
