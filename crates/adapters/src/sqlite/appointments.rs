use anyhow::Context as _;
use cita_core::booking::{Appointment, AppointmentWriteError};
use cita_core::events::EventEnvelope;
use cita_core::ids::Version;
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use std::sync::{Arc, OnceLock};

use jiff::SignedDuration;
use sqlx::SqliteConnection;

use super::group_commit::SqliteBatch;
use super::{SqliteDatabase, codec};
use crate::sql::group_commit::{Batched, GroupCommit};
use crate::sql::reads::{push_event, select_appointments};

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
/// Writers of this process queue on the database's write gate; writers of
/// another process, on the busy timeout. Neither fails for waiting.
///
/// The overlap query asks the partial index on `(provider_id, start_at)` of
/// active rows for appointments starting within the longest possible hold
/// (8 h + 4 h of buffer) before the new hold's end, then compares holds —
/// `[start, end + buffer)` for the provider, `[start, end)` for the patient —
/// so its cost follows the neighbourhood of the new time, not the history.
/// The provider is checked first. The appointment row and its outbox row are
/// written in the same transaction; any error before `COMMIT` drops the
/// transaction, which rolls it back, so nothing is half-written.
///
/// # One round trip for the common case
///
/// An insert or an update that stays active first runs as one batch of
/// statements (`INSERT_IF_FREE`, `UPDATE_IF_FREE`): in one `BEGIN
/// IMMEDIATE` transaction the row is written only if the same overlap
/// conditions (and, for an update, the expected version) hold, and its
/// event only if the row was written. Concurrent inserts share a batch
/// (the shared group commit of the `sql` module), each one seeing the rows
/// written before it, and each row of a batch answers whether it was
/// written or which rule refused it (the provider first, as above), so a
/// refused insert is decided once. Only an insert whose batch failed (and
/// was rolled back), and an update the batch did not make, take the
/// checked path above, which decides in a transaction of its own and says
/// why (slot taken, patient busy, version conflict).
#[derive(Debug, Clone)]
pub struct SqliteAppointmentStore {
    db: SqliteDatabase,
    inserts: Arc<GroupCommit<SqliteBatch>>,
}

impl SqliteAppointmentStore {
    /// A store over `db`.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self {
            db: db.clone(),
            inserts: Arc::new(GroupCommit::new(SqliteBatch { db: db.clone() })),
        }
    }
}

/// The longest time one appointment can hold its provider.
const MAX_HOLD: SignedDuration =
    SignedDuration::from_secs(MAX_APPOINTMENT.as_secs() + BufferMinutes::MAX as i64 * 60);

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

    /// `query` with the columns bound as `?1` … `?14`.
    fn bind(self, query: SqliteQuery) -> SqliteQuery {
        query
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
    }

    async fn write(self, sql: &'static str, conn: &mut SqliteConnection) -> anyhow::Result<u64> {
        let done = self
            .bind(sqlx::query(sql))
            .execute(conn)
            .await
            .context("writing an appointment")?;
        Ok(done.rows_affected())
    }
}

pub(super) type SqliteQuery =
    sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// The parameters of the batched writes ([`INSERT_IF_FREE`],
/// [`UPDATE_IF_FREE`]), numbered as in their SQL: the row's columns (`?1` …
/// `?14`), the two index bounds of the overlap checks (`?15`, `?16`), the
/// event (`?17` … `?19`), the expected version (`?20`) and the new start
/// minus the new buffer (`?21`, for [`provider_free_for_booking!`]).
pub(super) struct BatchParams {
    values: [Value; 21],
}

/// One parameter value; cloned each time the SQL mentions it.
#[derive(Clone)]
enum Value {
    Text(Option<String>),
    Static(&'static str),
    Int(Option<i64>),
}

impl BatchParams {
    fn of(
        appointment: &Appointment,
        expected: Option<Version>,
        event: Option<&EventEnvelope>,
    ) -> anyhow::Result<Self> {
        let (start, _) = appointment.provider_hold();
        let (event_id, envelope, event_of) = match event {
            Some(e) => (
                Some(codec::event_id(e.event_id)),
                Some(serde_json::to_string(e).context("encoding an event")?),
                Some(codec::appointment_id(e.appointment_id)),
            ),
            None => (None, None, None),
        };
        let c = Columns::of(appointment)?;
        Ok(Self {
            values: [
                Value::Text(Some(c.id)),
                Value::Text(Some(c.provider_id)),
                Value::Text(Some(c.patient_id)),
                Value::Text(Some(c.country)),
                Value::Int(Some(c.start_at)),
                Value::Int(Some(c.end_at)),
                Value::Int(Some(c.buffer_minutes)),
                Value::Int(Some(c.hold_until)),
                Value::Static(c.status),
                Value::Int(Some(c.version)),
                Value::Text(c.notes),
                Value::Text(c.cancel_reason),
                Value::Int(Some(c.created_at)),
                Value::Int(Some(c.updated_at)),
                Value::Int(Some(codec::millis(start - MAX_HOLD))),
                Value::Int(Some(codec::millis(appointment.start - MAX_APPOINTMENT))),
                Value::Text(event_id),
                Value::Text(envelope),
                Value::Text(event_of),
                Value::Int(expected.map(codec::version).transpose()?),
                Value::Int(Some(codec::millis(
                    appointment.start - appointment.buffer.duration(),
                ))),
            ],
        })
    }

    /// `query` with a value bound for each parameter of `sql`, in order:
    /// the SQL of [`positional`], whose every `?` stands for `?order[i]`.
    pub(super) fn bind(&self, mut query: SqliteQuery, order: &[usize]) -> SqliteQuery {
        for &k in order {
            query = match &self.values[k - 1] {
                Value::Text(v) => query.bind(v.clone()),
                Value::Static(v) => query.bind(*v),
                Value::Int(v) => query.bind(*v),
            };
        }
        query
    }
}

/// `sql` with its numbered parameters (`?k`) turned into positional ones
/// (`?`), and the `k` of each in order. A multi-statement batch binds
/// positional parameters statement after statement, which numbered ones
/// reused across statements do not survive: sqlx counts the numbers a
/// statement skips as positional ones. The SQL given here has no `?`
/// inside literals.
pub(super) fn positional(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '?' {
            continue;
        }
        let mut k = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            k = k * 10 + d as usize;
            chars.next();
        }
        order.push(k);
    }
    (out, order)
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

/// As [`PROVIDER_CLASH`], for a new booking: also an active appointment of
/// the provider that starts before `?4` and ends after `?6` (the new start
/// minus the new buffer), `Appointment::blocks_booking`'s rule.
const PROVIDER_CLASH_FOR_BOOKING: &str = "SELECT 1 FROM appointments \
    WHERE provider_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND (hold_until > ?3 OR end_at > ?6) AND id <> ?5 \
    LIMIT 1";

/// Another active appointment of the patient whose `[start_at, end_at)`
/// meets `[?3, ?4)`. `?2` (= `?3` − the longest appointment) bounds the index range.
const PATIENT_CLASH: &str = "SELECT 1 FROM appointments \
    WHERE patient_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND end_at > ?3 AND id <> ?5 \
    LIMIT 1";

const STORED_VERSION: &str = "SELECT version FROM appointments WHERE id = ?1";

/// The overlap checks of [`PROVIDER_CLASH`] and [`PATIENT_CLASH`] as one
/// condition over the parameters of [`Columns`] (`?1` id, `?2` provider,
/// `?3` patient, `?5` start, `?6` end, `?8` hold until), with `?15` and
/// `?16` bounding the index ranges as `?2` does in each of those queries.
/// `$provider` is the provider's part ([`provider_free!`] or
/// [`provider_free_for_booking!`]).
macro_rules! free_of_clashes {
    ($provider:expr) => {
        concat!(
            $provider,
            " AND NOT EXISTS (SELECT 1 FROM appointments \
            WHERE patient_id = ?3 AND status <> 'cancelled' \
              AND start_at > ?16 AND start_at < ?6 AND end_at > ?5 AND id <> ?1)"
        )
    };
}

/// No other active appointment of the provider holds `[?5, ?8)`.
macro_rules! provider_free {
    () => {
        "NOT EXISTS (SELECT 1 FROM appointments \
            WHERE provider_id = ?2 AND status <> 'cancelled' \
              AND start_at > ?15 AND start_at < ?8 AND hold_until > ?5 AND id <> ?1)"
    };
}

/// As [`provider_free!`], and no active appointment of the provider ends
/// after `?21` (the new start minus the new buffer) while starting before
/// the new hold's end: `Appointment::blocks_booking`, the rule of a new
/// booking, with the provider's current buffer after earlier appointments.
macro_rules! provider_free_for_booking {
    () => {
        "NOT EXISTS (SELECT 1 FROM appointments \
            WHERE provider_id = ?2 AND status <> 'cancelled' \
              AND start_at > ?15 AND start_at < ?8 AND (hold_until > ?5 OR end_at > ?21) \
              AND id <> ?1)"
    };
}

/// The outbox row of a change, written only if the statement before it
/// changed a row (and `?17` is not NULL): `?17` event id, `?18` envelope,
/// `?19` its appointment id; its time is the appointment's `updated_at` (`?14`).
macro_rules! event_if_written {
    () => {
        "INSERT INTO outbox (event_id, appointment_id, envelope, created_at) \
            SELECT ?17, ?19, ?18, ?14 WHERE changes() = 1 AND ?17 IS NOT NULL;"
    };
}

/// Inserts the row (`?1` … `?14`) only if it clashes with nothing.
macro_rules! insert_if_free {
    () => {
        concat!(
            "INSERT INTO appointments \
                (id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, \
                 hold_until, status, version, notes, cancel_reason, created_at, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 WHERE ",
            free_of_clashes!(provider_free_for_booking!())
        )
    };
}

/// What became of the row the [`insert_if_free!`] before it was to write,
/// as one row of one column: `ok` if it was written (`changes()` still
/// counts that insert: a `SELECT` changes nothing), else which condition
/// refused it, the provider's first as in [`clash`]: `slot_taken` if
/// [`provider_free_for_booking!`] does not hold, `patient_busy` otherwise
/// (the insert's only other condition). In one transaction with the insert,
/// so it sees what the insert saw.
macro_rules! insert_outcome {
    () => {
        concat!(
            "SELECT CASE WHEN changes() = 1 THEN 'ok' WHEN NOT ",
            provider_free_for_booking!(),
            " THEN 'slot_taken' ELSE 'patient_busy' END"
        )
    };
}

/// Updates the row only if its stored version is `?20` and the new times
/// clash with nothing, and says so with a returned row. A change that keeps
/// an active row's owners and times (a confirmation, new notes) cannot
/// create an overlap, so it skips the overlap checks: SQLite evaluates `OR`
/// left to right and stops at the first true operand.
macro_rules! update_if_free {
    () => {
        concat!(
            "UPDATE appointments SET provider_id = ?2, patient_id = ?3, country = ?4, \
                start_at = ?5, end_at = ?6, buffer_minutes = ?7, hold_until = ?8, status = ?9, \
                version = ?10, notes = ?11, cancel_reason = ?12, created_at = ?13, \
                updated_at = ?14 \
             WHERE id = ?1 AND version = ?20 AND ( \
                (status <> 'cancelled' AND provider_id = ?2 AND patient_id = ?3 \
                 AND start_at = ?5 AND end_at = ?6 AND hold_until = ?8) \
                OR (",
            free_of_clashes!(provider_free!()),
            ")) RETURNING 1"
        )
    };
}

/// The insert of one active appointment, what became of it
/// ([`insert_outcome!`], the statements' one row) and, if it was written,
/// its event: the statements [`super::group_commit`] repeats, renumbered,
/// for each insert of a batch, between `BEGIN IMMEDIATE` and `COMMIT`. A
/// refused row leaves nothing behind.
pub(super) const INSERT_IF_FREE: &str = concat!(
    insert_if_free!(),
    "; ",
    insert_outcome!(),
    "; ",
    event_if_written!()
);

/// The update of an appointment that stays active, as one batch, one round
/// trip to the connection's thread: in a `BEGIN IMMEDIATE` transaction, the
/// row if its version is still `?20` and it clashes with nothing, then its
/// event (if `?17` is not NULL) if the row was written. A refused update
/// commits an empty transaction and the checked path finds out why.
const UPDATE_IF_FREE: &str = concat!(
    "BEGIN IMMEDIATE; ",
    update_if_free!(),
    "; ",
    event_if_written!(),
    " COMMIT;"
);

pub(super) const GET: &str = select_appointments!("id = ?1");

/// Listing filters, all bound so the SQL stays static. `from` and `after`
/// are one lower bound: "start ≥ from" is the position `(from, nil UUID)`
/// (every UUIDv7's text sorts after it), and the later of the two positions is
/// bound as `(?3, ?4)`. A row-value comparison `(start_at, id) > (?3, ?4)`
/// is a range the index on `(…, start_at, id)` answers directly, so a later
/// page starts where the previous one ended instead of scanning from the
/// beginning. A missing `from`/`until` is the earliest instant every dialect
/// stores / the latest instant jiff knows.
macro_rules! list_sql {
    ($owner:literal) => {
        select_appointments!(
            $owner,
            " AND (start_at, id) > (?3, ?4) AND start_at < ?5 \
              AND (?6 IS NULL OR status = ?6) \
            ORDER BY start_at, id LIMIT ?7"
        )
    };
}

/// By provider (`?1`), and by patient too when `?2` is not NULL.
pub(super) const LIST_BY_PROVIDER: &str =
    list_sql!("provider_id = ?1 AND (?2 IS NULL OR patient_id = ?2)");
/// By patient (`?2`); `?1` is NULL.
pub(super) const LIST_BY_PATIENT: &str = list_sql!("patient_id = ?2 AND ?1 IS NULL");

/// Active appointments of `?1` whose `[start_at, end_at)` meets `[?3, ?4)`;
/// `?2` (= `?3` − the longest appointment) bounds the index range. Two
/// active appointments of one provider never share a start (they would
/// overlap), so ordering by `start_at` alone is the (start, id) order, and it
/// lets the partial index of active rows serve the order too.
pub(super) const ACTIVE_IN_RANGE: &str = select_appointments!(
    "provider_id = ?1 AND status <> 'cancelled' \
      AND start_at > ?2 AND start_at < ?4 AND end_at > ?3 \
    ORDER BY start_at"
);

/// Refuses `a` if it would overlap another active appointment: its provider
/// first (buffers included; for a new booking, `Appointment::blocks_booking`),
/// then its patient. Inactive appointments hold no time and are never refused.
async fn clash(
    conn: &mut SqliteConnection,
    a: &Appointment,
    new_booking: bool,
) -> anyhow::Result<Option<AppointmentWriteError>> {
    if !a.status.is_active() {
        return Ok(None);
    }
    let id = codec::appointment_id(a.id);
    let (start, hold_end) = a.provider_hold();
    let provider: Option<i64> = sqlx::query_scalar(if new_booking {
        PROVIDER_CLASH_FOR_BOOKING
    } else {
        PROVIDER_CLASH
    })
    .bind(a.provider_id.as_str())
    .bind(codec::millis(start - MAX_HOLD))
    .bind(codec::millis(start))
    .bind(codec::millis(hold_end))
    .bind(&id)
    .bind(codec::millis(start - a.buffer.duration()))
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

impl SqliteAppointmentStore {
    /// Runs [`UPDATE_IF_FREE`] and says whether it wrote the row. `false`
    /// (refused, or the batch failed and was rolled back) leaves the
    /// decision to the checked path, which runs its own transaction.
    async fn update_if_free(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&EventEnvelope>,
    ) -> anyhow::Result<bool> {
        static SQL: OnceLock<(String, Vec<usize>)> = OnceLock::new();
        let (sql, order) = SQL.get_or_init(|| positional(UPDATE_IF_FREE));
        let params = BatchParams::of(appointment, Some(expected), event)?;
        let query = params.bind(sqlx::query(sql.as_str()), order);
        let mut turn = self.db.write_turn().await?;
        match turn.in_doubt(query).await {
            Ok(rows) => Ok(rows.len() == 1),
            Err(e) => {
                tracing::debug!(error = %e, "batched update failed; taking the checked path");
                Ok(false)
            }
        }
    }

    /// Queues an active appointment's insert for the next group commit and
    /// says what became of it.
    async fn insert_if_free(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> anyhow::Result<Batched> {
        let params = BatchParams::of(appointment, None, Some(event))?;
        Ok(self.inserts.insert(params).await)
    }
}

crate::sql::reads::appointment_store!(SqliteAppointmentStore);

impl SqliteAppointmentStore {
    async fn write_new(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        if appointment.status.is_active()
            && let Some(answer) = self.insert_if_free(appointment, event).await?.answer()
        {
            return answer;
        }
        // Inactive (it holds no time), or its batch was rolled back.
        let columns = Columns::of(appointment)?;
        let mut tx = self.db.begin_write().await?;
        if let Some(refusal) = clash(tx.conn(), appointment, true).await? {
            tx.rollback().await?;
            return Err(refusal);
        }
        columns.write(INSERT, tx.conn()).await?;
        push_event::<sqlx::Sqlite>(tx.conn(), event, appointment.updated_at).await?;
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }

    async fn write_change(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        if appointment.status.is_active()
            && self.update_if_free(appointment, expected, event).await?
        {
            return Ok(());
        }
        let columns = Columns::of(appointment)?;
        let mut tx = self.db.begin_write().await?;
        let stored: Option<i64> = sqlx::query_scalar(STORED_VERSION)
            .bind(&columns.id)
            .fetch_optional(tx.conn())
            .await
            .context("reading an appointment's version")?;
        if stored != Some(codec::version(expected)?) {
            tx.rollback().await?;
            return Err(AppointmentWriteError::VersionConflict);
        }
        if let Some(refusal) = clash(tx.conn(), appointment, false).await? {
            tx.rollback().await?;
            return Err(refusal);
        }
        columns.write(UPDATE, tx.conn()).await?;
        if let Some(event) = event {
            push_event::<sqlx::Sqlite>(tx.conn(), event, appointment.updated_at).await?;
        }
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStore as _;
    use cita_core::events::Outbox as _;
    use cita_core::ids::ProviderId;
    use sqlx::AssertSqlSafe;

    use super::*;
    use crate::sql::group_commit::Outcome;
    use jiff::Timestamp;

    /// What SQLite's planner does with `sql` (parameters bound to integers
    /// and text of the right kinds; only the plan matters).
    async fn plan(db: &SqliteDatabase, sql: &str, params: usize) -> String {
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {sql}"
        )));
        for _ in 0..params {
            q = q.bind(0_i64);
        }
        let mut conn = db.read().await.unwrap();
        let rows = q.fetch_all(conn.conn()).await.unwrap();
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
                PROVIDER_CLASH_FOR_BOOKING,
                6,
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
        // The batched writes check overlaps through the same index ranges.
        for (sql, params) in [(insert_if_free!(), 21), (update_if_free!(), 20)] {
            let plan = plan(&db, sql, params).await;
            for search in [
                "SEARCH appointments USING INDEX appointments_provider_active \
                 (provider_id=? AND start_at>? AND start_at<?)",
                "SEARCH appointments USING INDEX appointments_patient_active \
                 (patient_id=? AND start_at>? AND start_at<?)",
            ] {
                assert!(plan.contains(search), "{sql}: {plan}");
            }
        }
        let plan = plan(&db, insert_outcome!(), 21).await;
        assert!(
            plan.contains(
                "SEARCH appointments USING INDEX appointments_provider_active \
                 (provider_id=? AND start_at>? AND start_at<?)"
            ),
            "{plan}"
        );
    }

    fn appointment(provider: &str, patient: &str, start: &str) -> Appointment {
        let now: Timestamp = "2031-03-01T00:00:00Z".parse().unwrap();
        let start: Timestamp = start.parse().unwrap();
        Appointment {
            id: cita_core::ids::AppointmentId::new(),
            provider_id: ProviderId::parse(provider).unwrap(),
            patient_id: cita_core::ids::PatientId::parse(patient).unwrap(),
            country: cita_core::routing::CountryCode::PE,
            start,
            end: start + SignedDuration::from_mins(30),
            buffer: BufferMinutes::new(10).unwrap(),
            status: cita_core::booking::AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn requested(a: &Appointment) -> EventEnvelope {
        EventEnvelope::for_appointment(cita_core::events::EventType::Requested, a, a.updated_at)
    }

    async fn outbox_len(store: &SqliteAppointmentStore) -> usize {
        store.unpublished(100).await.unwrap().len()
    }

    /// What the group commit decided for `a` (`None`: nothing decided).
    async fn batched(store: &SqliteAppointmentStore, a: &Appointment) -> Option<Outcome> {
        match store.insert_if_free(a, &requested(a)).await.unwrap() {
            Batched::Decided(outcome) => Some(outcome),
            other => panic!("the batch decides: {other:?}"),
        }
    }

    /// The batches write exactly when the checked path would, and refuse
    /// (leaving nothing behind, saying why, the provider first) otherwise;
    /// the contract suite covers the answers the store gives through both
    /// paths.
    #[tokio::test]
    async fn batched_writes_write_only_what_is_free() {
        let db = SqliteDatabase::connect("sqlite::memory:").await.unwrap();
        let store = SqliteAppointmentStore::new(&db);
        let a = appointment("ana", "p1", "2031-03-03T10:00:00Z");
        assert_eq!(batched(&store, &a).await, Some(Outcome::Written));
        assert_eq!(store.get(a.id).await.unwrap().as_ref(), Some(&a));
        assert_eq!(outbox_len(&store).await, 1);

        // Inside the provider's hold (buffer included), another patient.
        let taken = appointment("ana", "p2", "2031-03-03T10:30:00Z");
        // The same patient at the same time, another provider.
        let busy = appointment("bea", "p1", "2031-03-03T10:15:00Z");
        // The same provider and patient: the provider is checked first.
        let both = appointment("ana", "p1", "2031-03-03T10:15:00Z");
        for (refused, why) in [
            (&taken, Outcome::SlotTaken),
            (&busy, Outcome::PatientBusy),
            (&both, Outcome::SlotTaken),
        ] {
            assert_eq!(batched(&store, refused).await, Some(why));
            assert_eq!(store.get(refused.id).await.unwrap(), None);
        }
        assert_eq!(outbox_len(&store).await, 1);

        // Confirming at the stored version, without an event and with one.
        let now: Timestamp = "2031-03-02T00:00:00Z".parse().unwrap();
        let cita_core::booking::Confirmation::Applies(confirmed) = a.confirm(a.version, now) else {
            panic!("a pending appointment confirms");
        };
        assert!(
            store
                .update_if_free(&confirmed, a.version, None)
                .await
                .unwrap()
        );
        assert_eq!(store.get(a.id).await.unwrap().as_ref(), Some(&confirmed));
        assert_eq!(outbox_len(&store).await, 1);
        let event = requested(&confirmed);
        assert!(
            store
                .update_if_free(&confirmed, a.version, Some(&event))
                .await
                .unwrap()
        );
        assert_eq!(outbox_len(&store).await, 2);
        // Another expected version changes nothing.
        let wrong = Version::new(7).unwrap();
        assert!(
            !store
                .update_if_free(&confirmed, wrong, Some(&event))
                .await
                .unwrap()
        );
        assert_eq!(outbox_len(&store).await, 2);
        // Moved onto another patient's time at the provider, the checks run.
        let other = appointment("ana", "p3", "2031-03-03T12:00:00Z");
        assert_eq!(batched(&store, &other).await, Some(Outcome::Written));
        let moved = Appointment {
            start: other.start,
            end: other.end,
            version: confirmed.version.next(),
            ..confirmed.clone()
        };
        assert!(
            !store
                .update_if_free(&moved, confirmed.version, None)
                .await
                .unwrap()
        );
        assert_eq!(store.get(a.id).await.unwrap().as_ref(), Some(&confirmed));
    }

    /// Concurrent inserts share batches; inside a batch a row sees the rows
    /// written before it, and each refused row says why: of several inserts
    /// of one provider's slot exactly one is written and the others are told
    /// the slot is taken; of several of one patient's time at other
    /// providers one is written and the others are told the patient is
    /// busy; every other slot's insert is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_writes_each_free_row_once() {
        let db = SqliteDatabase::connect("sqlite::memory:").await.unwrap();
        let store = Arc::new(SqliteAppointmentStore::new(&db));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..48_u32 {
            // In turn: ana's slot at 10:00, the patient "pat" at 10:00 with
            // a provider of its own, a slot of its own.
            let (group, a) = match i % 3 {
                0 => (
                    0,
                    appointment("ana", &format!("p{i}"), "2031-03-03T10:00:00Z"),
                ),
                1 => (
                    1,
                    appointment(&format!("b{i}"), "pat", "2031-03-03T10:00:00Z"),
                ),
                _ => {
                    let start = format!("2031-03-0{}T{:02}:00:00Z", 4 + i / 24, i % 24);
                    (2, appointment("ana", &format!("p{i}"), &start))
                }
            };
            let store = Arc::clone(&store);
            tasks.spawn(async move { (group, batched(&store, &a).await) });
        }
        let results = tasks.join_all().await;
        let count = |group: u32, outcome: Outcome| {
            results
                .iter()
                .filter(|r| **r == (group, Some(outcome)))
                .count()
        };
        assert_eq!(count(0, Outcome::Written), 1);
        assert_eq!(count(0, Outcome::SlotTaken), 15);
        assert_eq!(count(1, Outcome::Written), 1);
        assert_eq!(count(1, Outcome::PatientBusy), 15);
        assert_eq!(count(2, Outcome::Written), 16);
        assert_eq!(outbox_len(&store).await, 18);
    }
}
