use std::sync::Arc;

use anyhow::Context as _;
use cita_core::booking::{Appointment, AppointmentWriteError};
use cita_core::events::EventEnvelope;
use cita_core::ids::Version;
use sqlx::{PgPool, Postgres};

use super::codec::{self, Failure, Instant, Uuid};
use super::group_commit::{self, PgBatch, PgRow};
use super::{PostgresDatabase, WRITE_ATTEMPTS};
use crate::sql::driver::Sql;
use crate::sql::group_commit::GroupCommit;
use crate::sql::reads::select_appointments;
pub(super) use crate::sql::rows::AppointmentColumns as Columns;

/// Appointments and their outbox in PostgreSQL.
///
/// # Why overlaps cannot slip through
///
/// The table's two exclusion constraints refuse any committed state with
/// two overlapping active appointments of one provider (`[start, end +
/// buffer)`) or of one patient (`[start, end)`); see the module
/// documentation for how PostgreSQL enforces them under concurrency and
/// why each write first takes its provider's and patient's advisory locks.
/// There is no check-then-write in the adapter: the `INSERT` or `UPDATE`
/// either passes the constraints or fails with SQLSTATE 23P01, which names
/// the constraint and so the refusal. The appointment row and its outbox
/// row are written by one statement (data-modifying CTEs: the locks, the
/// row, its event), so one round trip and one implicit transaction: any
/// error rolls all of it back.
///
/// # Group commit
///
/// Concurrent inserts of active appointments share one call, one
/// transaction and one commit (the shared group commit of the `sql` module,
/// over the batch write of the private `group_commit` module and migration
/// `0006_insert_batch.sql`); each caller still gets its own answer. Clones
/// of a store share its queue.
#[derive(Debug, Clone)]
pub struct PostgresAppointmentStore {
    db: PostgresDatabase,
    pool: PgPool,
    inserts: Arc<GroupCommit<PgBatch>>,
}

impl PostgresAppointmentStore {
    /// A store over `db`'s pool.
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            db: db.clone(),
            pool: db.pool().clone(),
            inserts: Arc::new(GroupCommit::new(PgBatch {
                pool: db.pool().clone(),
            })),
        }
    }
}

/// An event encoded for its outbox row.
#[derive(Clone)]
pub(super) struct EventRow {
    pub(super) event_id: Uuid,
    pub(super) appointment_id: Uuid,
    pub(super) envelope: String,
}

impl EventRow {
    fn of(event: &EventEnvelope) -> anyhow::Result<Self> {
        Ok(Self {
            event_id: codec::event_id(event.event_id),
            appointment_id: codec::appointment_id(event.appointment_id),
            envelope: serde_json::to_string(event).context("encoding an event")?,
        })
    }
}

/// The advisory locks of an active row's provider (`$2`) and patient
/// (`$3`), provider first: the materialised CTEs fix the order (the
/// patient's lock is taken from the provider's row). The two-key form keeps
/// Cita's locks apart from single-`bigint` ones (sqlx's migrator uses
/// those); the first key is the class, "CITP" and "CITX" in ASCII, the
/// second the id's `hashtext`. Locks taken in a statement outside an
/// explicit transaction are released when it commits.
macro_rules! owner_locks {
    () => {
        "provider_lock AS MATERIALIZED \
            (SELECT pg_advisory_xact_lock(1128878160, hashtext($2))), \
         patient_lock AS MATERIALIZED \
            (SELECT pg_advisory_xact_lock(1128878168, hashtext($3)) FROM provider_lock), "
    };
}

/// Writes the change's outbox row (`$15` event id, `$16` its appointment,
/// `$17` envelope; its time is the row's `updated_at`, `$14`) for each row
/// `written` returned, if `$15` is not null; the statement answers how many
/// rows it wrote.
macro_rules! event_and_count {
    () => {
        "event AS (INSERT INTO outbox (event_id, appointment_id, envelope, created_at) \
            SELECT $15, $16, $17::jsonb, $14 FROM written WHERE $15::uuid IS NOT NULL) \
         SELECT count(*) FROM written"
    };
}

/// Inserts an active appointment (`$1` … `$14`) after its owners' locks,
/// and its event.
const INSERT: &str = concat!(
    "WITH ",
    owner_locks!(),
    "written AS (INSERT INTO appointments \
        (id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, hold_until, \
         status, version, notes, cancel_reason, created_at, updated_at) \
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM patient_lock \
        RETURNING id), ",
    event_and_count!()
);

/// The row update with its version check (`$18` is the expected version).
macro_rules! update_row {
    ($after_locks:literal) => {
        concat!(
            "written AS (UPDATE appointments SET provider_id = $2, patient_id = $3, \
                country = $4, start_at = $5, end_at = $6, buffer_minutes = $7, \
                hold_until = $8, status = $9, version = $10, notes = $11, \
                cancel_reason = $12, created_at = $13, updated_at = $14 \
             WHERE id = $1 AND version = $18",
            $after_locks,
            " RETURNING id), "
        )
    };
}

/// Updates an active row after its owners' locks (the `EXISTS` reads the
/// locks' CTE before the first row is changed), and writes its event.
const UPDATE_ACTIVE: &str = concat!(
    "WITH ",
    owner_locks!(),
    update_row!(" AND EXISTS (SELECT 1 FROM patient_lock)"),
    event_and_count!()
);

/// Updates a row that holds no time any more (a cancellation): it enters
/// neither constraint's index, so it never waits on another writer and
/// takes no lock.
const UPDATE_INACTIVE: &str = concat!("WITH ", update_row!(""), event_and_count!());

/// Another active appointment of the provider `$1` whose hold meets
/// `[$2, $3)`, other than `$4`; answered by the provider's exclusion index.
const PROVIDER_CLASH: &str = "SELECT 1 FROM appointments \
    WHERE provider_id = $1 AND holds_time \
      AND tstzrange(start_at, hold_until, '[)') && tstzrange($2, $3, '[)') AND id <> $4 \
    LIMIT 1";

pub(super) const GET: &str = select_appointments!("id = $1");

/// Listing filters, all bound so the SQL stays static. `from` and `after`
/// are one lower bound: "start ≥ from" is the position `(from, nil UUID)`
/// (every UUIDv7 sorts after the nil UUID), and the later of the two
/// positions is bound as `($3, $4)`. The row comparison
/// `(start_at, id) > ($3, $4)` is a range the index on `(…, start_at, id)`
/// answers directly, so a later page starts where the previous one ended.
/// A missing `from`/`until` is the earliest `timestamptz` / the latest
/// instant jiff knows (`sql::reads::list`).
macro_rules! list_sql {
    ($owner:literal) => {
        select_appointments!(
            $owner,
            " AND (start_at, id) > ($3, $4) AND start_at < $5 \
              AND ($6::text IS NULL OR status = $6) \
            ORDER BY start_at, id LIMIT $7"
        )
    };
}

/// By provider (`$1`), and by patient too when `$2` is not NULL.
pub(super) const LIST_BY_PROVIDER: &str =
    list_sql!("provider_id = $1 AND ($2::text IS NULL OR patient_id = $2)");
/// By patient (`$2`); `$1` is NULL.
pub(super) const LIST_BY_PATIENT: &str = list_sql!("patient_id = $2 AND $1::text IS NULL");

/// Active appointments of `$1` whose `[start_at, end_at)` meets `[$3, $4)`;
/// `$2` (= `$3` − the longest appointment) bounds the range on the partial
/// index of active rows by `(provider_id, start_at)`.
pub(super) const ACTIVE_IN_RANGE: &str = select_appointments!(
    "provider_id = $1 AND holds_time \
      AND start_at > $2 AND start_at < $4 AND end_at > $3 \
    ORDER BY start_at, id"
);

impl PostgresAppointmentStore {
    /// One attempt at a write: `sql` with the row, its event (or nulls)
    /// and, for an update, the expected version; answers the rows written.
    async fn try_write(
        &self,
        sql: &'static str,
        c: &Columns<'_>,
        e: Option<&EventRow>,
        expected: Option<i64>,
        what: &'static str,
    ) -> Result<i64, Failure> {
        let mut query = Sql::new(sql)
            .bind::<Postgres>(&c.params())
            .bind(e.map(|e| e.event_id))
            .bind(e.map(|e| e.appointment_id))
            .bind(e.map(|e| e.envelope.as_str()));
        if let Some(expected) = expected {
            query = query.bind(expected);
        }
        query
            .fetch_one(&self.pool)
            .await
            .and_then(|row| sqlx::Row::try_get::<i64, _>(&row, 0))
            .map_err(|err| codec::classify(err, what))
    }

    /// Runs `attempt` until it is not a deadlock victim (at most
    /// [`WRITE_ATTEMPTS`] times), and turns its failure into the port's error.
    async fn with_retries<T, F, Fut>(
        &self,
        a: &Appointment,
        mut attempt: F,
    ) -> Result<T, AppointmentWriteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries = 1;
        loop {
            match attempt().await {
                Ok(t) => return Ok(t),
                Err(Failure::Refused(refusal)) => return Err(self.confirm(refusal, a).await),
                Err(Failure::Transient(e)) if tries < WRITE_ATTEMPTS => {
                    tracing::debug!(error = %format!("{e:#}"), tries, "retrying an appointment write");
                    tries += 1;
                }
                Err(Failure::Transient(e) | Failure::Other(e)) => {
                    return Err(AppointmentWriteError::Unexpected(e));
                }
            }
        }
    }

    /// The provider is checked first: a `PatientBusy` from the constraints
    /// becomes `SlotTaken` when the provider is taken too (see the module
    /// documentation: only OID order makes PostgreSQL report the provider's
    /// constraint first).
    async fn confirm(
        &self,
        refusal: AppointmentWriteError,
        a: &Appointment,
    ) -> AppointmentWriteError {
        if !matches!(refusal, AppointmentWriteError::PatientBusy) {
            return refusal;
        }
        let (start, hold_end) = a.provider_hold();
        let taken: Result<Option<i32>, _> = sqlx::query_scalar(PROVIDER_CLASH)
            .bind(a.provider_id.as_str())
            .bind(Instant::of(start))
            .bind(Instant::of(hold_end))
            .bind(codec::appointment_id(a.id))
            .fetch_optional(&self.pool)
            .await;
        match taken {
            Ok(Some(_)) => AppointmentWriteError::SlotTaken,
            Ok(None) => refusal,
            Err(e) => AppointmentWriteError::Unexpected(
                anyhow::Error::new(e).context("checking the provider's appointments"),
            ),
        }
    }
}

crate::sql::reads::appointment_store!(PostgresAppointmentStore);

impl PostgresAppointmentStore {
    async fn write_new(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        let event = EventRow::of(event)?;
        if event.appointment_id != columns.id {
            return Err(anyhow::anyhow!(
                "inserting appointment {}: its event names appointment {}",
                appointment.id,
                event.appointment_id.0
            )
            .into());
        }
        if !columns.active {
            // A cancelled row holds no time: nothing to check or to batch.
            let written = self
                .with_retries(appointment, || {
                    self.try_write(
                        INSERT,
                        &columns,
                        Some(&event),
                        None,
                        "inserting an appointment",
                    )
                })
                .await?;
            return if written == 1 {
                Ok(())
            } else {
                Err(anyhow::anyhow!("the insert wrote {written} rows").into())
            };
        }
        let row = PgRow {
            appointment: appointment.clone(),
            event: event.clone(),
        };
        if let Some(answer) = self.inserts.insert(row).await.answer() {
            return answer;
        }
        // Its batch was rolled back: write it on its own.
        self.with_retries(appointment, || async {
            group_commit::insert_alone(&self.pool, appointment, &event)
                .await
                .map_err(|e| codec::classify(e, "inserting an appointment"))
        })
        .await?
        .into_result()
    }

    async fn write_change(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        let columns = Columns::of(appointment)?;
        let expected = codec::version(expected)?;
        let event = event.map(EventRow::of).transpose()?;
        let sql = if columns.active {
            UPDATE_ACTIVE
        } else {
            UPDATE_INACTIVE
        };
        let updated = self
            .with_retries(appointment, || {
                self.try_write(
                    sql,
                    &columns,
                    event.as_ref(),
                    Some(expected),
                    "updating an appointment",
                )
            })
            .await?;
        if updated == 1 {
            Ok(())
        } else {
            Err(AppointmentWriteError::VersionConflict)
        }
    }
}
