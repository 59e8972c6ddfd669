//! One country's appointment records (`country_appointments`), in every
//! dialect.
//!
//! Where the dialect has one (SQLite, PostgreSQL), `record` first runs a
//! single upsert whose update only applies to an older stored version
//! (`ON CONFLICT … DO UPDATE … WHERE excluded.version > …`) and returns a
//! row when it wrote: the common case, one statement. Otherwise (or when
//! it did not write) a transaction reads the stored version with a lock
//! (`FOR UPDATE`; on SQLite `BEGIN IMMEDIATE`) and decides — none or older:
//! write it (`Applied`); the same: `Duplicate`; newer: `Stale`. The row
//! stays locked from the read to the commit, so concurrent writers of one
//! appointment take turns, each is told exactly what its own write did, and
//! the newest version is what remains. A snapshot not stored yet locks
//! nothing (READ COMMITTED takes no gap locks), so several first writers
//! may all insert: the primary key lets one through, the others get a
//! duplicate key and start over against its row.
//!
//! (MySQL has no upsert that says whether it wrote: with
//! `CLIENT_FOUND_ROWS`, `INSERT … ON DUPLICATE KEY UPDATE` counts an insert
//! and an update that changed nothing alike.)

use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;

use super::dialect::{
    Contended, Dialect, Handle as _, Transaction as _, is_unique_violation, retrying,
};
use super::driver::{Driver, FromSql as _, Param, Sql};
use super::rows::SnapshotRow;
use super::{Instant, Uuid, version};
use crate::codec_common::status;

/// A country store's statements. `upsert_if_newer`, `insert` and `replace`
/// take a snapshot's columns in [`snapshot_columns!`]'s order;
/// `upsert_if_newer` returns a row when it wrote. `lock_version` and `get`
/// take the id; `get` returns [`SnapshotRow`]'s columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountrySql {
    pub(crate) upsert_if_newer: Option<Sql>,
    pub(crate) lock_version: Sql,
    pub(crate) insert: Sql,
    pub(crate) replace: Sql,
    pub(crate) get: Sql,
}

/// The columns of `country_appointments`, in [`SnapshotRow`]'s order.
macro_rules! snapshot_columns {
    () => {
        "id, provider_id, patient_id, country, start_at, end_at, status, version, notes, \
         cancel_reason, created_at, updated_at"
    };
}
pub(crate) use snapshot_columns;

/// A country's appointment records in its own relational database.
#[derive(Debug, Clone)]
pub struct SqlCountryStore<D> {
    db: D,
}

impl<D: Clone> SqlCountryStore<D> {
    /// A store over `db` (a country's own database).
    pub fn new(db: &D) -> Self {
        Self { db: db.clone() }
    }
}

/// One attempt of [`CountryStore::record`] on `db`; every error return
/// drops the transaction, which rolls it back.
async fn try_record<D: Dialect>(
    db: &D,
    columns: &[Param<'_>; 12],
    version: i64,
) -> anyhow::Result<CountryWrite> {
    if let Some(upsert) = D::COUNTRY.upsert_if_newer {
        let mut conn = db.write().await?;
        let applied = D::Db::fetch_optional(conn.conn(), upsert.bind(columns))
            .await
            .context("recording a snapshot")?;
        if applied.is_some() {
            return Ok(CountryWrite::Applied);
        }
    }
    let mut tx = db.begin().await?;
    let held = D::Db::fetch_optional(tx.conn(), D::COUNTRY.lock_version.bind(&columns[..1]))
        .await
        .context("reading the recorded version")?
        .map(|row| D::Db::int(&row, 0))
        .transpose()
        .context("reading the recorded version")?;
    let sql = match held {
        None => D::COUNTRY.insert,
        Some(held) if version > held => D::COUNTRY.replace,
        Some(held) => {
            tx.rollback().await?;
            return Ok(if held == version {
                CountryWrite::Duplicate
            } else {
                CountryWrite::Stale
            });
        }
    };
    match D::Db::execute(tx.conn(), sql.bind(columns)).await {
        Ok(_) => {}
        Err(e) if held.is_none() && is_unique_violation(&e) => {
            // Release at once the lock the failed insert left on the
            // winner's row.
            tx.rollback().await?;
            return Err(anyhow::Error::new(Contended).context("another writer recorded it first"));
        }
        Err(e) => return Err(anyhow::Error::new(e).context("recording a snapshot")),
    }
    tx.commit().await.context("committing a snapshot")?;
    Ok(CountryWrite::Applied)
}

#[async_trait]
impl<D: Dialect> CountryStore for SqlCountryStore<D> {
    async fn record(&self, s: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        let version = version(s.version)?;
        let columns = [
            Param::Uuid(Uuid(s.id.as_uuid())),
            Param::Text(s.provider_id.as_str()),
            Param::Text(s.patient_id.as_str()),
            Param::Text(s.country_iso.as_str()),
            Param::Instant(Instant::of(s.start)),
            Param::Instant(Instant::of(s.end)),
            Param::Text(status(s.status)),
            Param::Int(version),
            Param::OptText(s.notes.as_deref()),
            Param::OptText(s.cancel_reason.as_deref()),
            Param::Instant(Instant::of(s.created_at)),
            Param::Instant(Instant::of(s.updated_at)),
        ];
        retrying::<D, _, _, _, _>("recording a snapshot", || {
            try_record(&self.db, &columns, version)
        })
        .await
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<AppointmentSnapshot>> {
        let mut conn = self.db.read().await?;
        let query = D::COUNTRY.get.bind(&[Param::Uuid(Uuid(id.as_uuid()))]);
        let row = D::Db::fetch_optional(conn.conn(), query)
            .await
            .context("reading a snapshot")?;
        row.map(|r| AppointmentSnapshot::try_from(SnapshotRow::from_sql::<D::Db>(&r)?))
            .transpose()
    }
}
