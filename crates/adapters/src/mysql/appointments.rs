use anyhow::Context as _;
use cita_core::booking::{Appointment, AppointmentWriteError};
use cita_core::events::EventEnvelope;
use cita_core::ids::Version;
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use jiff::SignedDuration;
use sqlx::{MySql, MySqlConnection, MySqlPool, Transaction};

use super::{MySqlDatabase, codec};
use crate::sql::Uuid;
use crate::sql::dialect::retrying;
use crate::sql::driver::Sql;
use crate::sql::reads::{push_event, select_appointments};
use crate::sql::rows::AppointmentColumns as Columns;

/// Appointments and their outbox in a MySQL / MariaDB database.
///
/// # Why overlaps cannot slip through
///
/// MySQL has no exclusion constraint, so the store makes the writers of one
/// provider, and the writers of one patient, take turns. A write that leaves
/// the appointment active runs, in one transaction:
///
/// 1. `SELECT … FOR UPDATE` of the provider's row in `booking_locks`, then
///    of the patient's row (a row missing on first use is created by a
///    separate statement that commits at once, and the transaction
///    starts over);
/// 2. for an update, `SELECT version … FOR UPDATE` of the appointment;
/// 3. the overlap queries: the provider's active appointments whose hold
///    `[start, end + buffer)` meets the new hold (→ `SlotTaken`), then the
///    patient's whose `[start, end)` meets the new time (→ `PatientBusy`);
/// 4. the appointment row and its outbox row, then `COMMIT`.
///
/// Every transaction that can make an appointment of provider P active, or
/// move one, holds P's lock row from step 1 until it commits or rolls back;
/// likewise for patient X. So when a writer reaches step 3, every other
/// writer of P or X has either committed already or is waiting in step 1:
/// nothing can commit between the check and the write, and the check is
/// exact for ranges of any lengths (the lock is on the owner, not on a slot,
/// so a 15-minute and a 60-minute booking that overlap without sharing a
/// start still meet at the same row).
///
/// The check must also *see* everything committed before the lock was
/// granted. Under InnoDB's default REPEATABLE READ a transaction's plain
/// `SELECT`s read the snapshot taken at its first plain read; had one run
/// before step 1, the check would miss bookings committed while it waited.
/// Connections of this adapter run READ COMMITTED (see the module
/// documentation), where each statement reads a fresh snapshot taken when
/// it starts — after the lock is held — so the overlap queries are plain,
/// non-locking reads and take no gap locks on the indexes other providers
/// use.
///
/// Writes that leave the appointment cancelled skip steps 1 and 3: they
/// only free time. A concurrent check that still sees the row active can
/// only refuse more than necessary, never accept an overlap.
///
/// # Why it does not deadlock
///
/// Locks are taken in one global order: one provider row, then one patient
/// row (the two kinds never share a row), then the one appointment row being
/// updated, then only rows the transaction inserts itself. A transaction
/// never waits for a lock that precedes one it holds, so no cycle of waits
/// can form. Should InnoDB still pick a victim (or a lock wait time out),
/// the whole transaction is retried (see the module documentation).
///
/// The overlap queries read the indexes of active rows on
/// `(owner, start_at)` for appointments starting within the longest possible
/// hold (8 h + 4 h of buffer) before the new time's end, so their cost
/// follows the neighbourhood of the new time, not the history.
#[derive(Debug, Clone)]
pub struct MySqlAppointmentStore {
    db: MySqlDatabase,
    pool: MySqlPool,
}

impl MySqlAppointmentStore {
    /// A store over `db`'s pool.
    pub fn new(db: &MySqlDatabase) -> Self {
        Self {
            db: db.clone(),
            pool: db.pool().clone(),
        }
    }
}

/// The longest time one appointment can hold its provider.
const MAX_HOLD: SignedDuration =
    SignedDuration::from_secs(MAX_APPOINTMENT.as_secs() + BufferMinutes::MAX as i64 * 60);

/// Writes `columns` with `sql`: [`INSERT`] or [`UPDATE`].
async fn write(conn: &mut MySqlConnection, sql: Sql, columns: &Columns<'_>) -> anyhow::Result<()> {
    sql.bind::<MySql>(&columns.params())
        .execute(conn)
        .await
        .context("writing an appointment")?;
    Ok(())
}

/// [`UPDATE`]'s parameter order: every column but the id, then the id.
const UPDATE_ORDER: &[u8] = &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 1];

const INSERT: &str = "INSERT INTO appointments \
    (id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, hold_until, \
     status, version, notes, cancel_reason, created_at, updated_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPDATE: &str = "UPDATE appointments SET provider_id = ?, patient_id = ?, country = ?, \
    start_at = ?, end_at = ?, buffer_minutes = ?, hold_until = ?, status = ?, \
    version = ?, notes = ?, cancel_reason = ?, created_at = ?, updated_at = ? \
    WHERE id = ?";

/// The two kinds of `booking_locks` rows, in the order they are locked.
const PROVIDER_LOCK: &str = "provider";
const PATIENT_LOCK: &str = "patient";

/// Locks one owner's row until the transaction ends (no row: not locked).
const LOCK_OWNER: &str = "SELECT owner FROM booking_locks WHERE kind = ? AND owner = ? FOR UPDATE";

/// Creates both owners' rows if missing (an existing one is left as it is);
/// run on its own, outside the booking's transaction, so the locks it takes
/// end with the statement. (Inside the transaction, two bookings that both
/// found a row missing would each keep a lock on it from this statement and
/// then deadlock when both ask for `FOR UPDATE`.)
const CREATE_LOCKS: &str = "INSERT INTO booking_locks (kind, owner) VALUES (?, ?), (?, ?) \
    ON DUPLICATE KEY UPDATE owner = owner";

/// Another active appointment of the provider whose `[start_at, hold_until)`
/// meets the new hold. Parameters: the provider; the new start minus the
/// longest hold (which bounds the index range); the new hold's end; the new
/// start; the appointment's own id.
const PROVIDER_CLASH: &str = "SELECT id FROM appointments \
    WHERE active_provider = ? AND start_at > ? AND start_at < ? AND hold_until > ? AND id <> ? \
    LIMIT 1";

/// As [`PROVIDER_CLASH`], for a new booking: also an active appointment
/// of the provider that starts before the new hold's end and ends after
/// the new start minus the new buffer (`Appointment::blocks_booking`'s
/// rule). Parameters as for [`PROVIDER_CLASH`], then the new start minus
/// the new buffer.
const PROVIDER_CLASH_FOR_BOOKING: &str = "SELECT id FROM appointments \
    WHERE active_provider = ? AND start_at > ? AND start_at < ? \
      AND (hold_until > ? OR end_at > ?) AND id <> ? \
    LIMIT 1";

/// Another active appointment of the patient whose `[start_at, end_at)`
/// meets the new time. Parameters as for [`PROVIDER_CLASH`], with the
/// patient, the longest appointment and the new end.
const PATIENT_CLASH: &str = "SELECT id FROM appointments \
    WHERE active_patient = ? AND start_at > ? AND start_at < ? AND end_at > ? AND id <> ? \
    LIMIT 1";

const LOCK_VERSION: &str = "SELECT version FROM appointments WHERE id = ? FOR UPDATE";

pub(super) const GET: &str = select_appointments!("id = ?");

/// Listing filters, all bound so the SQL stays static. `from` and `after`
/// are one lower bound: "start ≥ from" is the position `(from, nil UUID)`
/// (every UUIDv7's text sorts after it), and the later of the two positions is
/// bound as `(s, i)`: `start_at > s OR (start_at = s AND id > i)`, two
/// ranges of the index on `(owner, start_at, id)`, so a later page starts
/// where the previous one ended instead of scanning from the beginning.
/// A missing `from`/`until` is the earliest instant every dialect stores /
/// the latest instant jiff knows. The status filter is bound twice
/// (`? IS NULL OR status = ?`), then the limit.
macro_rules! list_sql {
    ($owner:literal) => {
        select_appointments!(
            $owner,
            " AND (start_at > ? OR (start_at = ? AND id > ?)) AND start_at < ? \
              AND (? IS NULL OR status = ?) \
            ORDER BY start_at, id LIMIT ?"
        )
    };
}

/// By provider, and by patient too when the patient (bound twice) is not NULL.
pub(super) const LIST_BY_PROVIDER: &str =
    list_sql!("provider_id = ? AND (? IS NULL OR patient_id = ?)");
/// By patient.
pub(super) const LIST_BY_PATIENT: &str = list_sql!("patient_id = ?");

/// Active appointments of the provider whose `[start_at, end_at)` meets
/// `[from, until)`. Parameters: the provider; `from` minus the longest
/// appointment (which bounds the index range); `until`; `from`. Two active
/// appointments of one provider never share a start (they would overlap),
/// so ordering by `start_at` alone is the (start, id) order, and the index
/// of active rows serves it.
pub(super) const ACTIVE_IN_RANGE: &str = select_appointments!(
    "active_provider = ? AND start_at > ? AND start_at < ? AND end_at > ? \
    ORDER BY start_at"
);

/// Starts a transaction holding the provider's and then the patient's lock
/// row (see [`MySqlAppointmentStore`]). A row missing on first use is created
/// outside the transaction, which then starts over.
async fn begin_locked(
    pool: &MySqlPool,
    a: &Appointment,
) -> anyhow::Result<Transaction<'static, MySql>> {
    let (provider, patient) = (a.provider_id.as_str(), a.patient_id.as_str());
    let mut created = false;
    loop {
        let mut tx = pool.begin().await.context("starting a transaction")?;
        let mut held = true;
        for (kind, owner) in [(PROVIDER_LOCK, provider), (PATIENT_LOCK, patient)] {
            let row = sqlx::query(LOCK_OWNER)
                .bind(kind)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await
                .with_context(|| format!("locking the {kind}'s bookings"))?;
            if row.is_none() {
                held = false;
                break;
            }
        }
        if held {
            return Ok(tx);
        }
        // Lock rows are never deleted: once created, the next round holds both.
        anyhow::ensure!(!created, "booking lock rows vanished after being created");
        tx.rollback().await.context("rolling back")?;
        sqlx::query(CREATE_LOCKS)
            .bind(PROVIDER_LOCK)
            .bind(provider)
            .bind(PATIENT_LOCK)
            .bind(patient)
            .execute(pool)
            .await
            .context("creating booking lock rows")?;
        created = true;
    }
}

/// Refuses `a` if it would overlap another active appointment: its provider
/// first (buffers included; for a new booking, `Appointment::blocks_booking`),
/// then its patient. Run only with both owners' lock rows held.
async fn clash(
    conn: &mut MySqlConnection,
    a: &Appointment,
    id: Uuid,
    new_booking: bool,
) -> anyhow::Result<Option<AppointmentWriteError>> {
    let (start, hold_end) = a.provider_hold();
    let provider = if new_booking {
        sqlx::query(PROVIDER_CLASH_FOR_BOOKING)
            .bind(a.provider_id.as_str())
            .bind(codec::millis(start - MAX_HOLD))
            .bind(codec::millis(hold_end))
            .bind(codec::millis(start))
            .bind(codec::millis(start - a.buffer.duration()))
            .bind(id)
    } else {
        sqlx::query(PROVIDER_CLASH)
            .bind(a.provider_id.as_str())
            .bind(codec::millis(start - MAX_HOLD))
            .bind(codec::millis(hold_end))
            .bind(codec::millis(start))
            .bind(id)
    }
    .fetch_optional(&mut *conn)
    .await
    .context("checking the provider's appointments")?;
    if provider.is_some() {
        return Ok(Some(AppointmentWriteError::SlotTaken));
    }
    let patient = sqlx::query(PATIENT_CLASH)
        .bind(a.patient_id.as_str())
        .bind(codec::millis(a.start - MAX_APPOINTMENT))
        .bind(codec::millis(a.end))
        .bind(codec::millis(a.start))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("checking the patient's appointments")?;
    Ok(patient.map(|_| AppointmentWriteError::PatientBusy))
}

impl MySqlAppointmentStore {
    /// One attempt of [`AppointmentStore::insert`]. Every error return
    /// drops the transaction, which rolls it back.
    async fn try_insert(
        &self,
        a: &Appointment,
        columns: &Columns<'_>,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        let mut tx = if a.status.is_active() {
            let mut tx = begin_locked(&self.pool, a).await?;
            if let Some(refusal) = clash(&mut tx, a, columns.id, true).await? {
                tx.rollback().await.context("rolling back")?;
                return Err(refusal);
            }
            tx
        } else {
            self.pool.begin().await.context("starting a transaction")?
        };
        write(&mut tx, Sql::new(INSERT), columns).await?;
        push_event::<sqlx::MySql>(&mut tx, event, a.updated_at).await?;
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }

    /// One attempt of [`AppointmentStore::update`].
    async fn try_update(
        &self,
        a: &Appointment,
        columns: &Columns<'_>,
        expected: i64,
        event: Option<&EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        let active = a.status.is_active();
        let mut tx = if active {
            begin_locked(&self.pool, a).await?
        } else {
            self.pool.begin().await.context("starting a transaction")?
        };
        let stored: Option<i64> = sqlx::query_scalar(LOCK_VERSION)
            .bind(columns.id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading an appointment's version")?;
        if stored != Some(expected) {
            tx.rollback().await.context("rolling back")?;
            return Err(AppointmentWriteError::VersionConflict);
        }
        if active && let Some(refusal) = clash(&mut tx, a, columns.id, false).await? {
            tx.rollback().await.context("rolling back")?;
            return Err(refusal);
        }
        write(&mut tx, Sql::ordered(UPDATE, UPDATE_ORDER), columns).await?;
        if let Some(event) = event {
            push_event::<sqlx::MySql>(&mut tx, event, a.updated_at).await?;
        }
        tx.commit().await.context("committing an appointment")?;
        Ok(())
    }
}

crate::sql::reads::appointment_store!(MySqlAppointmentStore);

impl MySqlAppointmentStore {
    async fn write_new(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        retrying::<MySqlDatabase, _, _, _, _>("inserting an appointment", || {
            self.try_insert(appointment, &columns, event)
        })
        .await
    }

    async fn write_change(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        let expected = codec::version(expected)?;
        retrying::<MySqlDatabase, _, _, _, _>("updating an appointment", || {
            self.try_update(appointment, &columns, expected, event)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use cita_core::booking::AppointmentStore as _;
    use cita_core::ids::{AppointmentId, ProviderId};

    use cita_core::booking::AppointmentStatus;
    use cita_core::events::EventType;
    use cita_core::ids::PatientId;
    use cita_core::routing::CountryCode;
    use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
    use sqlx::{AssertSqlSafe, Connection as _, Executor as _, Row as _};

    use super::super::MySqlPoolSettings;
    use super::*;
    use jiff::Timestamp;

    /// The server of `TEST_MYSQL_URL`, or `None` when the test should skip
    /// (never in CI).
    fn server() -> Option<String> {
        match std::env::var("TEST_MYSQL_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "TEST_MYSQL_URL is required in CI"
                );
                println!("skipped: TEST_MYSQL_URL is not set");
                None
            }
        }
    }

    async fn admin(server: &str, statement: String) {
        let mut conn = sqlx::MySqlConnection::connect(server).await.unwrap();
        conn.execute(AssertSqlSafe(statement)).await.unwrap();
        conn.close().await.unwrap();
    }

    /// The index MySQL's plan for `sql` reads `table` through, and how.
    async fn plan(db: &MySqlDatabase, sql: &str, params: &[&str], table: &str) -> String {
        let mut q = sqlx::query(AssertSqlSafe(format!("EXPLAIN {sql}")));
        for p in params {
            q = q.bind(*p);
        }
        let rows: Vec<MySqlRow> = q.fetch_all(db.pool()).await.unwrap();
        rows.iter()
            .filter(|r| r.get::<Option<String>, _>("table").as_deref() == Some(table))
            .map(|r| {
                format!(
                    "{} {}",
                    r.get::<Option<String>, _>("type").unwrap_or_default(),
                    r.get::<Option<String>, _>("key").unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[tokio::test]
    async fn overlap_checks_ranges_and_the_outbox_use_the_indexes() {
        let Some(server) = server() else { return };
        let name = format!("cita_test_{}", uuid::Uuid::new_v4().simple());
        admin(&server, format!("CREATE DATABASE {name}")).await;
        let options = MySqlConnectOptions::from_str(&server)
            .unwrap()
            .database(&name);
        let db = MySqlDatabase::connect_with(options, &MySqlPoolSettings::default())
            .await
            .unwrap();
        // Enough rows, some cancelled, over many providers and patients, for
        // the optimizer's statistics to mean something.
        let store = MySqlAppointmentStore::new(&db);
        let day: Timestamp = "2031-03-03T00:00:00Z".parse().unwrap();
        for i in 0..400_i64 {
            let provider = ProviderId::parse(&format!("p{}", i % 40)).unwrap();
            let patient = PatientId::parse(&format!("x{i}")).unwrap();
            let start = day + SignedDuration::from_hours(i / 40);
            let mut a = Appointment {
                id: AppointmentId::new(),
                provider_id: provider,
                patient_id: patient,
                country: CountryCode::PE,
                start,
                end: start + SignedDuration::from_mins(30),
                buffer: BufferMinutes::new(0).unwrap(),
                status: AppointmentStatus::Pending,
                version: Version::FIRST,
                notes: None,
                cancel_reason: None,
                created_at: day,
                updated_at: day,
            };
            if i % 3 == 0 {
                a.status = AppointmentStatus::Cancelled;
            }
            let ev = EventEnvelope::for_appointment(EventType::Requested, &a, a.updated_at);
            store.insert(&a, &ev).await.unwrap();
        }
        for table in ["appointments", "outbox"] {
            sqlx::query(AssertSqlSafe(format!("ANALYZE TABLE {table}")))
                .fetch_all(db.pool())
                .await
                .unwrap();
        }
        // A neighbourhood of real rows: the bounds the stores bind around
        // 05:00, and an id that exists (a missing one makes MySQL answer
        // "impossible WHERE" without a plan).
        let at = |h: i64| (codec::millis(day) + h * 3_600_000).to_string();
        let (lo, t, hi) = (at(-7), at(5), at(6));
        let (lo, t, hi) = (lo.as_str(), t.as_str(), hi.as_str());
        let some_id: String = sqlx::query_scalar("SELECT id FROM appointments LIMIT 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
        let id = some_id.as_str();
        // (query, parameters, table, the access the plan must use on it)
        let cases: [(&str, Vec<&str>, &str, &str); 7] = [
            (
                PROVIDER_CLASH,
                vec!["p1", lo, hi, t, id],
                "appointments",
                "range appointments_provider_active",
            ),
            (
                PATIENT_CLASH,
                vec!["x201", lo, hi, t, id],
                "appointments",
                "range appointments_patient_active",
            ),
            (
                ACTIVE_IN_RANGE,
                vec!["p1", lo, hi, t],
                "appointments",
                "range appointments_provider_active",
            ),
            (
                LIST_BY_PROVIDER,
                vec![
                    "p1", "x201", "x201", t, t, id, hi, "pending", "pending", "10",
                ],
                "appointments",
                "range appointments_provider_list",
            ),
            (
                LIST_BY_PATIENT,
                vec!["x201", t, t, id, hi, "pending", "pending", "10"],
                "appointments",
                "range appointments_patient_list",
            ),
            (LOCK_VERSION, vec![id], "appointments", "const PRIMARY"),
            (
                <MySqlDatabase as crate::sql::dialect::Dialect>::OUTBOX
                    .mark_published
                    .text,
                vec![r#"["00000000-0000-0000-0000-000000000000"]"#],
                "outbox",
                "eq_ref outbox_event",
            ),
        ];
        let mut wrong = Vec::new();
        for (sql, params, table, expected) in cases {
            let got = plan(&db, sql, &params, table).await;
            if got != expected {
                wrong.push(format!("{sql}\n  expected {expected}, got {got}"));
            }
        }
        db.close().await;
        admin(&server, format!("DROP DATABASE {name}")).await;
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
