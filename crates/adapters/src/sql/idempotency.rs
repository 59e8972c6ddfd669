//! Idempotency records, in every dialect.
//!
//! A reservation first tries to insert the key as new: one statement, the
//! common case (`ON CONFLICT DO NOTHING`, or a plain `INSERT` whose
//! duplicate key says the key is held). If the key exists, a transaction
//! reads it with a lock (`FOR UPDATE`; on SQLite, `BEGIN IMMEDIATE` holds
//! the whole file) and, if it is expired (`IdempotencyRecord::is_expired`),
//! replaces it; the row stays locked from the read to the commit, so of
//! several callers exactly one replaces an expired record, and an
//! unexpired one is returned exactly as it stood. A key released between
//! the insert and the read (the transaction finds no row) is an attempt to
//! start over. So of many concurrent callers exactly one is told
//! [`Reservation::Reserved`].

use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyStore, IdempotentOutcome,
    Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};

use super::Instant;
use super::dialect::{
    Contended, Dialect, Handle as _, Transaction as _, is_unique_violation, retrying,
};
use super::driver::{Driver, FromSql as _, Param, Sql};
use super::rows::{IdempotencyRow, uuid_of};

/// An idempotency store's statements. `claim_new` and `reclaim` take the
/// key, fingerprint, creation instant and appointment id; `claim_new`
/// writes nothing (or fails on the key) when the key exists. `lock` takes
/// the key and returns [`IdempotencyRow`]'s columns, locking the row.
/// `complete` takes the key and the outcome's JSON; `release` the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdempotencySql {
    pub(crate) claim_new: Sql,
    pub(crate) lock: Sql,
    pub(crate) reclaim: Sql,
    pub(crate) complete: Sql,
    pub(crate) release: Sql,
}

/// Idempotency records in one relational database.
#[derive(Debug, Clone)]
pub struct SqlIdempotencyStore<D> {
    db: D,
}

impl<D: Clone> SqlIdempotencyStore<D> {
    /// A store over `db`.
    pub fn new(db: &D) -> Self {
        Self { db: db.clone() }
    }
}

/// One attempt of [`IdempotencyStore::reserve`] on `db`; every error
/// return drops the transaction, which rolls it back.
async fn try_reserve<D: Dialect>(
    db: &D,
    claim: &[Param<'_>; 4],
    now: Instant,
    ttl: SignedDuration,
    lease: SignedDuration,
) -> anyhow::Result<Reservation> {
    {
        let mut conn = db.write().await?;
        match D::Db::execute(conn.conn(), D::IDEMPOTENCY.claim_new.bind(claim)).await {
            Ok(1) => return Ok(Reservation::Reserved { replaced: None }),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("reserving an idempotency key")),
        }
    }
    let mut tx = db.begin().await?;
    let row = D::Db::fetch_optional(tx.conn(), D::IDEMPOTENCY.lock.bind(&claim[..1]))
        .await
        .context("reading an idempotency key")?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Err(anyhow::Error::new(Contended).context("the key was released meanwhile"));
    };
    let record = IdempotencyRecord::try_from(IdempotencyRow::from_sql::<D::Db>(&row)?)?;
    if !record.is_expired(now.0, ttl, lease) {
        tx.rollback().await?;
        return Ok(Reservation::Existing(Box::new(record)));
    }
    D::Db::execute(tx.conn(), D::IDEMPOTENCY.reclaim.bind(claim))
        .await
        .context("reclaiming an expired idempotency key")?;
    tx.commit().await.context("committing a reservation")?;
    Ok(Reservation::Reserved {
        replaced: Some(Box::new(record)),
    })
}

#[async_trait]
impl<D: Dialect> IdempotencyStore for SqlIdempotencyStore<D> {
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
        let claim = [
            Param::Text(key.as_str()),
            Param::Text(fingerprint.0.as_str()),
            Param::Instant(now),
            Param::OptUuid(uuid_of(appointment)),
        ];
        retrying::<D, _, _, _, _>("reserving an idempotency key", || {
            try_reserve(&self.db, &claim, now, ttl, lease)
        })
        .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(outcome).context("encoding an outcome")?;
        let mut conn = self.db.write().await?;
        let query = D::IDEMPOTENCY
            .complete
            .bind(&[Param::Text(key.as_str()), Param::Text(&json)]);
        let done = D::Db::execute(conn.conn(), query)
            .await
            .context("storing an idempotent answer")?;
        anyhow::ensure!(done == 1, "idempotency key {key} is not reserved");
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()> {
        let mut conn = self.db.write().await?;
        let query = D::IDEMPOTENCY.release.bind(&[Param::Text(key.as_str())]);
        D::Db::execute(conn.conn(), query)
            .await
            .context("releasing an idempotency key")?;
        Ok(())
    }
}
