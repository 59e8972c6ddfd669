use crate::sql::rows::SnapshotRow;
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;
use sqlx::PgPool;

use super::PostgresDatabase;
use super::codec::{self, Instant};

/// One country's appointment records in its own PostgreSQL database.
///
/// `record` is one upsert whose update only applies to an older stored
/// version (`ON CONFLICT (id) DO UPDATE … WHERE excluded.version >
/// country_appointments.version`), so concurrent writers of different
/// versions leave the newest whatever their order. It returns a row only
/// when it wrote (`Applied`). Otherwise the row that refused it is locked
/// until the transaction ends (`ON CONFLICT DO UPDATE` locks the conflicting
/// row even when its `WHERE` is false), so reading its version in the same
/// transaction tells exactly what the write met: the same version
/// (`Duplicate`) or a newer one (`Stale`), never one written afterwards.
#[derive(Debug, Clone)]
pub struct PostgresCountryStore {
    pool: PgPool,
}

impl PostgresCountryStore {
    /// A store over `db`'s pool (a country's own database).
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

const UPSERT_IF_NEWER: &str = "INSERT INTO country_appointments AS c \
    (id, provider_id, patient_id, country, start_at, end_at, status, version, notes, \
     cancel_reason, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, \
      patient_id = excluded.patient_id, country = excluded.country, \
      start_at = excluded.start_at, end_at = excluded.end_at, status = excluded.status, \
      version = excluded.version, notes = excluded.notes, \
      cancel_reason = excluded.cancel_reason, created_at = excluded.created_at, \
      updated_at = excluded.updated_at \
    WHERE excluded.version > c.version \
    RETURNING 1";

const STORED_VERSION: &str = "SELECT version FROM country_appointments WHERE id = $1";

const GET: &str = "SELECT id, provider_id, patient_id, country, start_at, end_at, status, \
    version, notes, cancel_reason, created_at, updated_at \
    FROM country_appointments WHERE id = $1";

#[async_trait]
impl CountryStore for PostgresCountryStore {
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        let id = codec::appointment_id(snapshot.id);
        let version = codec::version(snapshot.version)?;
        let mut tx = self.pool.begin().await.context("starting a transaction")?;
        let applied: Option<i32> = sqlx::query_scalar(UPSERT_IF_NEWER)
            .bind(id)
            .bind(snapshot.provider_id.as_str())
            .bind(snapshot.patient_id.as_str())
            .bind(snapshot.country_iso.as_str())
            .bind(Instant::of(snapshot.start))
            .bind(Instant::of(snapshot.end))
            .bind(codec::status(snapshot.status))
            .bind(version)
            .bind(snapshot.notes.as_deref())
            .bind(snapshot.cancel_reason.as_deref())
            .bind(Instant::of(snapshot.created_at))
            .bind(Instant::of(snapshot.updated_at))
            .fetch_optional(&mut *tx)
            .await
            .context("recording a snapshot")?;
        let write = if applied.is_some() {
            CountryWrite::Applied
        } else {
            // The upsert locked the row that refused it: its version is the
            // one the write met.
            let held: i64 = sqlx::query_scalar(STORED_VERSION)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .context("reading the recorded version")?;
            if held == version {
                CountryWrite::Duplicate
            } else {
                CountryWrite::Stale
            }
        };
        tx.commit().await.context("committing a snapshot")?;
        Ok(write)
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
