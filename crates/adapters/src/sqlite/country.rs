use super::{SqliteDatabase, codec};
use crate::sql::rows::SnapshotRow;
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;

/// One country's appointment records in its own SQLite file.
///
/// `record` is one upsert whose update only applies to an older stored
/// version (`ON CONFLICT … DO UPDATE … WHERE excluded.version > version`),
/// so concurrent writers of different versions leave the newest. The upsert
/// runs alone first and returns a row when it applied — the common case, a
/// single statement; when it did not, it runs again with the stored
/// version's read-back in one `BEGIN IMMEDIATE` transaction, so each writer
/// is told exactly what its own write did (duplicate or stale).
#[derive(Debug, Clone)]
pub struct SqliteCountryStore {
    db: SqliteDatabase,
}

impl SqliteCountryStore {
    /// A store over `db` (a country's own file).
    pub fn new(db: &SqliteDatabase) -> Self {
        Self { db: db.clone() }
    }
}

/// Inserts a snapshot, or replaces an older version of it.
macro_rules! upsert_if_newer {
    () => {
        "INSERT INTO country_appointments \
        (id, provider_id, patient_id, country, start_at, end_at, status, version, notes, \
         cancel_reason, created_at, updated_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
        ON CONFLICT (id) DO UPDATE SET provider_id = excluded.provider_id, \
          patient_id = excluded.patient_id, country = excluded.country, \
          start_at = excluded.start_at, end_at = excluded.end_at, status = excluded.status, \
          version = excluded.version, notes = excluded.notes, \
          cancel_reason = excluded.cancel_reason, created_at = excluded.created_at, \
          updated_at = excluded.updated_at \
        WHERE excluded.version > country_appointments.version"
    };
}

const UPSERT_IF_NEWER: &str = upsert_if_newer!();

/// [`UPSERT_IF_NEWER`], returning a row when it applied.
const UPSERT_IF_NEWER_RETURNING: &str = concat!(upsert_if_newer!(), " RETURNING 1");

const STORED_VERSION: &str = "SELECT version FROM country_appointments WHERE id = ?1";

const GET: &str = "SELECT id, provider_id, patient_id, country, start_at, end_at, status, \
    version, notes, cancel_reason, created_at, updated_at \
    FROM country_appointments WHERE id = ?1";

/// `sql` with the snapshot bound as `?1` … `?12`.
fn bind_snapshot<'q>(
    sql: &'static str,
    id: &'q str,
    version: i64,
    snapshot: &'q AppointmentSnapshot,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(sql)
        .bind(id)
        .bind(snapshot.provider_id.as_str())
        .bind(snapshot.patient_id.as_str())
        .bind(snapshot.country_iso.as_str())
        .bind(codec::millis(snapshot.start))
        .bind(codec::millis(snapshot.end))
        .bind(codec::status(snapshot.status))
        .bind(version)
        .bind(snapshot.notes.as_deref())
        .bind(snapshot.cancel_reason.as_deref())
        .bind(codec::millis(snapshot.created_at))
        .bind(codec::millis(snapshot.updated_at))
}

#[async_trait]
impl CountryStore for SqliteCountryStore {
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        let id = codec::appointment_id(snapshot.id);
        let version = codec::version(snapshot.version)?;
        {
            let mut turn = self.db.write_turn().await?;
            let applied = bind_snapshot(UPSERT_IF_NEWER_RETURNING, &id, version, snapshot)
                .fetch_optional(turn.conn())
                .await
                .context("recording a snapshot")?;
            if applied.is_some() {
                return Ok(CountryWrite::Applied);
            }
        }
        let mut tx = self.db.begin_write().await?;
        let done = bind_snapshot(UPSERT_IF_NEWER, &id, version, snapshot)
            .execute(tx.conn())
            .await
            .context("recording a snapshot")?;
        let write = if done.rows_affected() == 1 {
            CountryWrite::Applied
        } else {
            let held: i64 = sqlx::query_scalar(STORED_VERSION)
                .bind(&id)
                .fetch_one(tx.conn())
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
        let mut conn = self.db.read().await?;
        let row: Option<SnapshotRow> = sqlx::query_as(GET)
            .bind(codec::appointment_id(id))
            .fetch_optional(conn.conn())
            .await
            .context("reading a snapshot")?;
        row.map(AppointmentSnapshot::try_from).transpose()
    }
}
