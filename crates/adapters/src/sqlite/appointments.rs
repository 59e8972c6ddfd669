use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::booking::{
    Appointment, AppointmentQuery, AppointmentStore, AppointmentWriteError, CancelReason, Notes,
};
use cita_core::events::{EventEnvelope, Outbox, OutboxBacklog, OutboxEntry};
use cita_core::ids::{EventId, ProviderId, Version};
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use jiff::{SignedDuration, Timestamp};
use sqlx::{SqliteConnection, SqlitePool};

use super::{SqliteDatabase, codec};

/// Appointments and their outbox in a SQLite file.
///
/// # Why overlaps cannot slip through
///
/// Every write runs in a `BEGIN IMMEDIATE` transaction: SQLite grants the
/// database's single write lock when the transaction *starts*, before the
/// overlap query reads anything, and holds it until `COMMIT`. So between the
/// check and the write no other writer — in this process or another one
/// sharing the file — can commit anything, and the check sees every
/// appointment that will exist when the write lands. (A plain `BEGIN` would
/// read first and upgrade later; two such transactions could both pass the
/// check, and the loser's upgrade fails with `SQLITE_BUSY` without waiting.)
/// Waiting writers queue on the busy timeout instead of failing.
///
/// The overlap query asks the partial index on `(provider_id, start_at)` of
/// active rows for appointments starting within the longest possible hold
/// (8 h + 4 h of buffer) before the new hold's end, then compares holds —
/// `[start, end + buffer)` for the provider, `[start, end)` for the patient —
/// so its cost follows the neighbourhood of the new time, not the history.
/// The provider is checked first. The appointment row and its outbox row are
/// written in the same transaction; any error before `COMMIT` drops the
/// transaction, which rolls it back, so nothing is half-written.
#[derive(Debug, Clone)]
pub struct SqliteAppointmentStore {
    pool: SqlitePool,
}

impl SqliteAppointmentStore {
    /// A store over `db`'s pool.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

/// The longest time one appointment can hold its provider.
const MAX_HOLD: SignedDuration =
    SignedDuration::from_secs(MAX_APPOINTMENT.as_secs() + BufferMinutes::MAX as i64 * 60);

/// The columns every read selects, in [`AppointmentRow`]'s order.
macro_rules! columns {
    () => {
        "id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, status, \
         version, notes, cancel_reason, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: String,
    provider_id: String,
    patient_id: String,
    country: String,
    start_at: i64,
    end_at: i64,
    buffer_minutes: i64,
    status: String,
    version: i64,
    notes: Option<String>,
    cancel_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AppointmentRow> for Appointment {
    type Error = anyhow::Error;

    fn try_from(r: AppointmentRow) -> anyhow::Result<Self> {
        let id = codec::parse_appointment_id(&r.id)?;
        let buffer = u32::try_from(r.buffer_minutes)
            .ok()
            .and_then(|b| BufferMinutes::new(b).ok())
            .with_context(|| format!("appointment {id}: invalid buffer {}", r.buffer_minutes))?;
        Ok(Appointment {
            id,
            provider_id: codec::parse_provider_id(&r.provider_id)?,
            patient_id: codec::parse_patient_id(&r.patient_id)?,
            country: codec::parse_country(&r.country)?,
            start: codec::instant(r.start_at)?,
            end: codec::instant(r.end_at)?,
            buffer,
            status: codec::parse_status(&r.status)?,
            version: codec::parse_version(r.version)?,
            notes: r
                .notes
                .map(|n| Notes::parse(&n))
                .transpose()
                .with_context(|| format!("appointment {id}: invalid notes"))?,
            cancel_reason: r
                .cancel_reason
                .map(|c| CancelReason::parse(&c))
                .transpose()
                .with_context(|| format!("appointment {id}: invalid cancel reason"))?,
            created_at: codec::instant(r.created_at)?,
            updated_at: codec::instant(r.updated_at)?,
        })
    }
}

/// An appointment encoded for its row, in the parameter order of
/// [`INSERT`] and [`UPDATE`] (`?1` … `?14`).
struct Columns {
    id: String,
    provider_id: String,
    patient_id: String,
    country: String,
    start_at: i64,
    end_at: i64,
    buffer_minutes: i64,
    hold_until: i64,
    status: &'static str,
    version: i64,
    notes: Option<String>,
    cancel_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Columns {
    fn of(a: &Appointment) -> anyhow::Result<Self> {
        let (_, hold_end) = a.provider_hold();
        Ok(Self {
            id: codec::appointment_id(a.id),
            provider_id: a.provider_id.as_str().to_owned(),
            patient_id: a.patient_id.as_str().to_owned(),
            country: a.country.as_str().to_owned(),
            start_at: codec::millis(a.start),
            end_at: codec::millis(a.end),
            buffer_minutes: i64::from(a.buffer.get()),
            hold_until: codec::millis(hold_end),
            status: codec::status(a.status),
            version: codec::version(a.version)?,
            notes: a.notes.as_ref().map(|n| n.as_str().to_owned()),
            cancel_reason: a.cancel_reason.as_ref().map(|c| c.as_str().to_owned()),
            created_at: codec::millis(a.created_at),
            updated_at: codec::millis(a.updated_at),
        })
    }

    async fn write(self, sql: &'static str, conn: &mut SqliteConnection) -> anyhow::Result<u64> {
        let done = sqlx::query(sql)
            .bind(self.id)
            .bind(self.provider_id)
            .bind(self.patient_id)
            .bind(self.country)
            .bind(self.start_at)
            .bind(self.end_at)
            .bind(self.buffer_minutes)
            .bind(self.hold_until)
            .bind(self.status)
            .bind(self.version)
            .bind(self.notes)
            .bind(self.cancel_reason)
            .bind(self.created_at)
            .bind(self.updated_at)
            .execute(conn)
            .await
            .context("writing an appointment")?;
        Ok(done.rows_affected())
    }
}

const INSERT: &str = "INSERT INTO appointments \
    (id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, hold_until, \
     status, version, notes, cancel_reason, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

const UPDATE: &str = "UPDATE appointments SET provider_id = ?2, patient_id = ?3, country = ?4, \
    start_at = ?5, end_at = ?6, buffer_minutes = ?7, hold_until = ?8, status = ?9, \
    version = ?10, notes = ?11, cancel_reason = ?12, created_at = ?13, updated_at = ?14 \
    WHERE id = ?1";

/// Another active appointment of the provider whose `[start_at, hold_until)`
/// meets `[?3, ?4)`. `?2` (= `?3` − the longest hold) bounds the index range.
const PROVIDER_CLASH: &str = "SELECT 1 FROM appointments \
    WHERE provider_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND hold_until > ?3 AND id <> ?5 \
    LIMIT 1";

/// Another active appointment of the patient whose `[start_at, end_at)`
/// meets `[?3, ?4)`. `?2` (= `?3` − the longest appointment) bounds the index range.
const PATIENT_CLASH: &str = "SELECT 1 FROM appointments \
    WHERE patient_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND end_at > ?3 AND id <> ?5 \
    LIMIT 1";

const STORED_VERSION: &str = "SELECT version FROM appointments WHERE id = ?1";

const INSERT_EVENT: &str = "INSERT INTO outbox (event_id, appointment_id, envelope, created_at) \
    VALUES (?1, ?2, ?3, ?4)";

const GET: &str = concat!("SELECT ", columns!(), " FROM appointments WHERE id = ?1");

/// Listing filters, all bound so the SQL stays static. `from` and `after`
/// are one lower bound: "start ≥ from" is the position `(from, '')` (every
/// id sorts after the empty text), and the later of the two positions is
/// bound as `(?3, ?4)`. A row-value comparison `(start_at, id) > (?3, ?4)`
/// is a range the index on `(…, start_at, id)` answers directly, so a later
/// page starts where the previous one ended instead of scanning from the
/// beginning. `until` defaults to the largest integer.
macro_rules! list_sql {
    ($owner:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM appointments WHERE ",
            $owner,
            " AND (start_at, id) > (?3, ?4) AND start_at < ?5 \
              AND (?6 IS NULL OR status = ?6) \
            ORDER BY start_at, id LIMIT ?7"
        )
    };
}

/// By provider (`?1`), and by patient too when `?2` is not NULL.
const LIST_BY_PROVIDER: &str = list_sql!("provider_id = ?1 AND (?2 IS NULL OR patient_id = ?2)");
/// By patient (`?2`); `?1` is NULL.
const LIST_BY_PATIENT: &str = list_sql!("patient_id = ?2 AND ?1 IS NULL");

/// Active appointments of `?1` whose `[start_at, end_at)` meets `[?3, ?4)`;
/// `?2` (= `?3` − the longest appointment) bounds the index range. Two
/// active appointments of one provider never share a start (they would
/// overlap), so ordering by `start_at` alone is the (start, id) order, and it
/// lets the partial index of active rows serve the order too.
const ACTIVE_IN_RANGE: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM appointments \
    WHERE provider_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND end_at > ?3 \
    ORDER BY start_at"
);

const UNPUBLISHED: &str = "SELECT envelope, created_at FROM outbox ORDER BY seq LIMIT ?1";

/// `?1` is a JSON array of event ids: one static statement for any number.
const MARK_PUBLISHED: &str =
    "DELETE FROM outbox WHERE event_id IN (SELECT value FROM json_each(?1))";

const BACKLOG: &str = "SELECT COUNT(*) AS pending, \
    (SELECT created_at FROM outbox ORDER BY seq LIMIT 1) AS oldest FROM outbox";

/// Refuses `a` if it would overlap another active appointment: its provider
/// first (buffers included), then its patient. Inactive appointments hold
/// no time and are never refused.
async fn clash(
    conn: &mut SqliteConnection,
    a: &Appointment,
) -> anyhow::Result<Option<AppointmentWriteError>> {
    if !a.status.is_active() {
        return Ok(None);
    }
    let id = codec::appointment_id(a.id);
    let (start, hold_end) = a.provider_hold();
    let provider: Option<i64> = sqlx::query_scalar(PROVIDER_CLASH)
        .bind(a.provider_id.as_str())
        .bind(codec::millis(start - MAX_HOLD))
        .bind(codec::millis(start))
        .bind(codec::millis(hold_end))
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await
        .context("checking the provider's appointments")?;
    if provider.is_some() {
        return Ok(Some(AppointmentWriteError::SlotTaken));
    }
    let patient: Option<i64> = sqlx::query_scalar(PATIENT_CLASH)
        .bind(a.patient_id.as_str())
        .bind(codec::millis(a.start - MAX_APPOINTMENT))
        .bind(codec::millis(a.start))
        .bind(codec::millis(a.end))
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await
        .context("checking the patient's appointments")?;
    Ok(patient.map(|_| AppointmentWriteError::PatientBusy))
}

/// Writes `event` to the outbox; `at` is the change's time (the
/// appointment's `updated_at`), as in every store.
async fn push_event(
    conn: &mut SqliteConnection,
    event: &EventEnvelope,
    at: Timestamp,
) -> anyhow::Result<()> {
    let envelope = serde_json::to_string(event).context("encoding an event")?;
    sqlx::query(INSERT_EVENT)
        .bind(codec::event_id(event.event_id))
        .bind(codec::appointment_id(event.appointment_id))
        .bind(envelope)
        .bind(codec::millis(at))
        .execute(conn)
        .await
        .context("writing an outbox entry")?;
    Ok(())
}

impl SqliteAppointmentStore {
    /// Takes the write lock at once (see the type's documentation).
    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("starting a write transaction")
    }
}

#[async_trait]
impl AppointmentStore for SqliteAppointmentStore {
    async fn insert(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        let mut tx = self.begin_write().await?;
        if let Some(refusal) = clash(&mut tx, appointment).await? {
            tx.rollback().await.context("rolling back")?;
            return Err(refusal);
        }
        columns.write(INSERT, &mut tx).await?;
        push_event(&mut tx, event, appointment.updated_at).await?;
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }

    async fn update<'a>(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&'a EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        let mut tx = self.begin_write().await?;
        let stored: Option<i64> = sqlx::query_scalar(STORED_VERSION)
            .bind(&columns.id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading an appointment's version")?;
        if stored != Some(codec::version(expected)?) {
            tx.rollback().await.context("rolling back")?;
            return Err(AppointmentWriteError::VersionConflict);
        }
        if let Some(refusal) = clash(&mut tx, appointment).await? {
            tx.rollback().await.context("rolling back")?;
            return Err(refusal);
        }
        columns.write(UPDATE, &mut tx).await?;
        if let Some(event) = event {
            push_event(&mut tx, event, appointment.updated_at).await?;
        }
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }

    async fn get(&self, id: cita_core::ids::AppointmentId) -> anyhow::Result<Option<Appointment>> {
        let row: Option<AppointmentRow> = sqlx::query_as(GET)
            .bind(codec::appointment_id(id))
            .fetch_optional(&self.pool)
            .await
            .context("reading an appointment")?;
        row.map(Appointment::try_from).transpose()
    }

    async fn list(&self, query: &AppointmentQuery) -> anyhow::Result<Vec<Appointment>> {
        let sql = if query.provider.is_some() {
            LIST_BY_PROVIDER
        } else {
            LIST_BY_PATIENT
        };
        // Positions compare as (start, id text), like SQLite's BINARY collation.
        let from = (query.from.map_or(i64::MIN, codec::millis), String::new());
        let after = query
            .after
            .map(|(t, id)| (codec::millis(t), codec::appointment_id(id)));
        let (lo_start, lo_id) = after.map_or(from.clone(), |after| after.max(from));
        let rows: Vec<AppointmentRow> = sqlx::query_as(sql)
            .bind(query.provider.as_ref().map(ProviderId::as_str))
            .bind(query.patient.as_ref().map(|p| p.as_str()))
            .bind(lo_start)
            .bind(lo_id)
            .bind(query.until.map_or(i64::MAX, codec::millis))
            .bind(query.status.map(codec::status))
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .context("listing appointments")?;
        rows.into_iter().map(Appointment::try_from).collect()
    }

    async fn active_in_range(
        &self,
        provider: &ProviderId,
        from: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Vec<Appointment>> {
        let rows: Vec<AppointmentRow> = sqlx::query_as(ACTIVE_IN_RANGE)
            .bind(provider.as_str())
            .bind(codec::millis(from - MAX_APPOINTMENT))
            .bind(codec::millis(from))
            .bind(codec::millis(until))
            .fetch_all(&self.pool)
            .await
            .context("reading a provider's appointments")?;
        rows.into_iter().map(Appointment::try_from).collect()
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    envelope: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct BacklogRow {
    pending: i64,
    oldest: Option<i64>,
}

#[async_trait]
impl Outbox for SqliteAppointmentStore {
    async fn unpublished(&self, limit: usize) -> anyhow::Result<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(UNPUBLISHED)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .context("reading the outbox")?;
        rows.into_iter()
            .map(|r| {
                Ok(OutboxEntry {
                    event: serde_json::from_str(&r.envelope)
                        .context("unreadable outbox envelope")?,
                    created_at: codec::instant(r.created_at)?,
                })
            })
            .collect()
    }

    async fn mark_published(&self, ids: &[EventId]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().copied().map(codec::event_id).collect();
        let ids = serde_json::to_string(&ids).context("encoding event ids")?;
        sqlx::query(MARK_PUBLISHED)
            .bind(ids)
            .execute(&self.pool)
            .await
            .context("marking outbox entries published")?;
        Ok(())
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let row: BacklogRow = sqlx::query_as(BACKLOG)
            .fetch_one(&self.pool)
            .await
            .context("counting the outbox")?;
        Ok(OutboxBacklog {
            pending: u64::try_from(row.pending).context("negative count")?,
            oldest: row.oldest.map(codec::instant).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::AssertSqlSafe;

    use super::*;

    /// What SQLite's planner does with `sql` (parameters bound to integers
    /// and text of the right kinds; only the plan matters).
    async fn plan(db: &SqliteDatabase, sql: &str, params: usize) -> String {
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {sql}"
        )));
        for _ in 0..params {
            q = q.bind(0_i64);
        }
        let rows = q.fetch_all(db.pool()).await.unwrap();
        rows.into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn overlap_checks_and_ranges_use_the_indexes() {
        let db = SqliteDatabase::connect("sqlite::memory:").await.unwrap();
        // (query, parameters, the index and the range it must search)
        let cases = [
            (
                PROVIDER_CLASH,
                5,
                "appointments_provider_active (provider_id=? AND start_at>? AND start_at<?)",
            ),
            (
                PATIENT_CLASH,
                5,
                "appointments_patient_active (patient_id=? AND start_at>? AND start_at<?)",
            ),
            (
                ACTIVE_IN_RANGE,
                4,
                "appointments_provider_active (provider_id=? AND start_at>? AND start_at<?)",
            ),
            (
                LIST_BY_PROVIDER,
                7,
                "appointments_provider_list (provider_id=? AND (start_at,id)>(?,?) AND start_at<?)",
            ),
            (
                LIST_BY_PATIENT,
                7,
                "appointments_patient_list (patient_id=? AND (start_at,id)>(?,?) AND start_at<?)",
            ),
        ];
        for (sql, params, search) in cases {
            let plan = plan(&db, sql, params).await;
            assert_eq!(
                plan,
                format!("SEARCH appointments USING INDEX {search}"),
                "{sql}"
            );
        }
    }
}
