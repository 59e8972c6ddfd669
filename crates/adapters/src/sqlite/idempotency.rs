use super::{SqliteDatabase, codec};
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
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

/// A row; `outcome` is NULL while the key is in progress.
#[derive(sqlx::FromRow)]
struct RecordRow {
    key: String,
    fingerprint: String,
    outcome: Option<String>,
    created_at: i64,
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

const SELECT: &str =
    "SELECT key, fingerprint, outcome, created_at FROM idempotency_keys WHERE key = ?1";

const CLAIM: &str = "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at) \
    VALUES (?1, ?2, NULL, ?3) \
    ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = NULL, \
    created_at = excluded.created_at";

/// Claims a key nobody holds, returning a row if it did.
const CLAIM_NEW: &str = "INSERT INTO idempotency_keys (key, fingerprint, outcome, created_at) \
    VALUES (?1, ?2, NULL, ?3) ON CONFLICT (key) DO NOTHING RETURNING 1";

const COMPLETE: &str = "UPDATE idempotency_keys SET outcome = ?2 WHERE key = ?1";

const RELEASE: &str = "DELETE FROM idempotency_keys WHERE key = ?1 AND outcome IS NULL";

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        {
            let mut turn = self.db.write_turn().await?;
            let claimed = sqlx::query(CLAIM_NEW)
                .bind(key.as_str())
                .bind(fingerprint.0.as_str())
                .bind(codec::millis(now))
                .fetch_optional(turn.conn())
                .await
                .context("reserving an idempotency key")?;
            if claimed.is_some() {
                return Ok(Reservation::Reserved);
            }
        }
        let mut tx = self.db.begin_write().await?;
        let row: Option<RecordRow> = sqlx::query_as(SELECT)
            .bind(key.as_str())
            .fetch_optional(tx.conn())
            .await
            .context("reading an idempotency key")?;
        if let Some(row) = row {
            let record = IdempotencyRecord::try_from(row)?;
            // Compare with the stored precision, so the answer does not
            // depend on whether `now` had a sub-millisecond part.
            let now_ms = codec::instant(codec::millis(now))?;
            if !expired(&record, now_ms, ttl, lease) {
                tx.rollback().await?;
                return Ok(Reservation::Existing(Box::new(record)));
            }
        }
        sqlx::query(CLAIM)
            .bind(key.as_str())
            .bind(fingerprint.0.as_str())
            .bind(codec::millis(now))
            .execute(tx.conn())
            .await
            .context("reserving an idempotency key")?;
        tx.commit().await.context("committing a reservation")?;
        Ok(Reservation::Reserved)
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
