use crate::sql::rows::SnapshotRow;
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;
use sqlx::MySqlPool;

use super::{Contended, MySqlDatabase, codec, is_duplicate_key, retrying};

/// One country's appointment records in its own MySQL database (seed 000's
/// per-country RDS: `cita_pe`, `cita_cl`, …).
///
/// `record` runs in one transaction: a locking read of the stored version
/// (`SELECT version … FOR UPDATE`), then the decision — newer: write it
/// (`Applied`); the same: `Duplicate`; older: `Stale` — then the write.
/// The row stays locked from the read to the commit, so concurrent writers
/// of one appointment take turns and each is told exactly what its own
/// write did; the newest version is what remains. A snapshot not stored yet
/// locks nothing (READ COMMITTED takes no gap locks), so several first
/// writers may all insert: the primary key lets one through, the others wait
/// for it, get a duplicate key and start over against its row.
///
/// (`INSERT … ON DUPLICATE KEY UPDATE` with conditional assignments would
/// be one statement, but its affected-rows count cannot tell an insert from
/// an update that changed nothing once `CLIENT_FOUND_ROWS` is on — both are
/// 1 — so it could not say `Applied` from `Duplicate`.)
#[derive(Debug, Clone)]
pub struct MySqlCountryStore {
    pool: MySqlPool,
}

impl MySqlCountryStore {
    /// A store over `db`'s pool (a country's own database).
    pub fn new(db: &MySqlDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

const LOCK_VERSION: &str = "SELECT version FROM country_appointments WHERE id = ? FOR UPDATE";

/// Every column but the id, then the id.
const INSERT: &str = "INSERT INTO country_appointments \
    (provider_id, patient_id, country, start_at, end_at, status, version, notes, \
     cancel_reason, created_at, updated_at, id) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Every column but the id, then the id (the row is locked).
const REPLACE: &str = "UPDATE country_appointments SET provider_id = ?, patient_id = ?, \
    country = ?, start_at = ?, end_at = ?, status = ?, version = ?, notes = ?, \
    cancel_reason = ?, created_at = ?, updated_at = ? WHERE id = ?";

const GET: &str = "SELECT id, provider_id, patient_id, country, start_at, end_at, status, \
    version, notes, cancel_reason, created_at, updated_at \
    FROM country_appointments WHERE id = ?";

impl MySqlCountryStore {
    /// One attempt of [`CountryStore::record`]. Every error return drops
    /// the transaction, which rolls it back.
    async fn try_record(
        &self,
        s: &AppointmentSnapshot,
        id: &str,
        version: i64,
    ) -> anyhow::Result<CountryWrite> {
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let held: Option<i64> = sqlx::query_scalar(LOCK_VERSION)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading the recorded version")?;
        let sql = match held {
            None => INSERT,
            Some(held) if version > held => REPLACE,
            Some(held) => {
                tx.rollback().await.context("rolling back")?;
                return Ok(if held == version {
                    CountryWrite::Duplicate
                } else {
                    CountryWrite::Stale
                });
            }
        };
        let written = sqlx::query(sql)
            .bind(s.provider_id.as_str())
            .bind(s.patient_id.as_str())
            .bind(s.country_iso.as_str())
            .bind(codec::millis(s.start))
            .bind(codec::millis(s.end))
            .bind(codec::status(s.status))
            .bind(version)
            .bind(s.notes.as_deref())
            .bind(s.cancel_reason.as_deref())
            .bind(codec::millis(s.created_at))
            .bind(codec::millis(s.updated_at))
            .bind(id)
            .execute(&mut *tx)
            .await;
        match written {
            Ok(_) => {}
            Err(e) if held.is_none() && is_duplicate_key(&e) => {
                // Release at once the lock the failed insert left on the
                // winner's row, rather than when the pool recycles the connection.
                tx.rollback().await.context("rolling back")?;
                return Err(
                    anyhow::Error::new(Contended).context("another writer recorded it first")
                );
            }
            Err(e) => return Err(anyhow::Error::new(e).context("recording a snapshot")),
        }
        tx.commit().await.context("committing a snapshot")?;
        Ok(CountryWrite::Applied)
    }
}

#[async_trait]
impl CountryStore for MySqlCountryStore {
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        let id = codec::appointment_id(snapshot.id);
        let version = codec::version(snapshot.version)?;
        retrying("recording a snapshot", || {
            self.try_record(snapshot, &id, version)
        })
        .await
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<AppointmentSnapshot>> {
        let row: Option<SnapshotRow> = sqlx::query_as(GET)
            .bind(codec::appointment_id(id))
            .fetch_optional(&self.pool)
            .await
            .context("reading a snapshot")?;
        row.map(AppointmentSnapshot::try_from).transpose()
    }
}
