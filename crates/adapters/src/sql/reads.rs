//! What every dialect's appointment store does alike: its reads (one
//! appointment, a listing, a provider's active appointments in a range)
//! and its outbox. Only writes differ (how overlaps are refused), so
//! [`appointment_store!`] writes the port implementations once over a
//! dialect store's `write_new` and `write_change`.

use anyhow::Context as _;
use cita_core::booking::{Appointment, AppointmentQuery};
use cita_core::events::{EventEnvelope, OutboxBacklog, OutboxEntry};
use cita_core::ids::{AppointmentId, EventId, ProviderId};
use cita_core::slots::MAX_APPOINTMENT;
use jiff::Timestamp;

use super::dialect::{Dialect, Handle as _};
use super::driver::{Driver, FromSql as _, Param, Sql};
use super::rows::AppointmentRow;
use super::{Instant, Uuid};
use crate::codec_common::status;

/// An appointment store's reads. `get` takes the id. `list_by_provider`
/// and `list_by_patient` take the provider (NULL for a patient's list), the
/// patient (NULL for all of a provider's), the lower position `(start, id)`
/// to list after, the exclusive upper start, the status (NULL for any) and
/// the limit. `active_in_range` takes the provider, `from` minus the
/// longest appointment (which bounds the index range), `from` and `until`.
/// All return [`AppointmentRow`]'s columns, in `(start, id)` order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppointmentSql {
    pub(crate) get: Sql,
    pub(crate) list_by_provider: Sql,
    pub(crate) list_by_patient: Sql,
    pub(crate) active_in_range: Sql,
}

/// An outbox's statements. `unpublished` takes the limit and returns the
/// envelope's JSON text and the creation instant, oldest first;
/// `mark_published` takes a JSON array of event ids; `backlog` returns the
/// count and the oldest entry's creation instant (NULL when empty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutboxSql {
    pub(crate) unpublished: Sql,
    pub(crate) mark_published: Sql,
    pub(crate) backlog: Sql,
}

/// The statement that writes an outbox entry: the event id, the
/// appointment id, the envelope's JSON text and the change's instant.
pub(crate) const PUSH_EVENT: &str =
    "INSERT INTO outbox (event_id, appointment_id, envelope, created_at) VALUES (?, ?, ?, ?)";

/// Writes `event` to the outbox on `conn` (inside the transaction that
/// writes its appointment); `at` is the change's time (the appointment's
/// `updated_at`), as in every store. SQLite and MySQL share the statement
/// ([`PUSH_EVENT`]); PostgreSQL writes the entry in its appointment's own
/// statement.
#[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
pub(crate) async fn push_event<DB: Driver>(
    conn: &mut DB::Connection,
    event: &EventEnvelope,
    at: Timestamp,
) -> anyhow::Result<()> {
    let envelope = serde_json::to_string(event).context("encoding an event")?;
    let params = [
        Param::Uuid(Uuid(event.event_id.as_uuid())),
        Param::Uuid(Uuid(event.appointment_id.as_uuid())),
        Param::Text(&envelope),
        Param::Instant(Instant::of(at)),
    ];
    DB::execute(conn, Sql::new(PUSH_EVENT).bind(&params))
        .await
        .context("writing an outbox entry")?;
    Ok(())
}

/// `SELECT` of [`AppointmentRow`]'s columns from `appointments`, then
/// `WHERE` and the given parts.
macro_rules! select_appointments {
    ($($part:expr),+ $(,)?) => {
        concat!(
            "SELECT ",
            $crate::sql::rows::appointment_columns!(),
            " FROM appointments WHERE ",
            $($part),+
        )
    };
}
pub(crate) use select_appointments;

/// The earliest instant every dialect stores (PostgreSQL's `timestamptz`
/// starts in 4713 BC): the start of a listing without `from`.
fn earliest() -> Timestamp {
    Timestamp::from_second(-210_866_803_200).expect("within jiff's range")
}

async fn appointments<D: Dialect>(
    db: &D,
    sql: Sql,
    params: &[Param<'_>],
    what: &'static str,
) -> anyhow::Result<Vec<Appointment>> {
    let mut conn = db.read().await?;
    let rows = D::Db::fetch_all(conn.conn(), sql.bind(params))
        .await
        .context(what)?;
    rows.iter()
        .map(|r| Appointment::try_from(AppointmentRow::from_sql::<D::Db>(r)?))
        .collect()
}

pub(crate) async fn get<D: Dialect>(
    db: &D,
    id: AppointmentId,
) -> anyhow::Result<Option<Appointment>> {
    let params = [Param::Uuid(Uuid(id.as_uuid()))];
    let found = appointments(db, D::APPOINTMENTS.get, &params, "reading an appointment").await?;
    Ok(found.into_iter().next())
}

pub(crate) async fn list<D: Dialect>(
    db: &D,
    query: &AppointmentQuery,
) -> anyhow::Result<Vec<Appointment>> {
    let sql = if query.provider.is_some() {
        D::APPOINTMENTS.list_by_provider
    } else {
        D::APPOINTMENTS.list_by_patient
    };
    // "start ≥ from" is the position (from, nil UUID): every UUIDv7 sorts
    // after it, as bytes and as canonical text alike.
    let from = (
        Instant::of(query.from.unwrap_or_else(earliest)),
        Uuid(uuid::Uuid::nil()),
    );
    let after = query
        .after
        .map(|(t, id)| (Instant::of(t), Uuid(id.as_uuid())));
    let (lo_start, lo_id) = after.map_or(from, |after| after.max(from));
    let params = [
        Param::OptText(query.provider.as_ref().map(ProviderId::as_str)),
        Param::OptText(query.patient.as_ref().map(|p| p.as_str())),
        Param::Instant(lo_start),
        Param::Uuid(lo_id),
        Param::Instant(Instant::of(query.until.unwrap_or(Timestamp::MAX))),
        Param::OptText(query.status.map(status)),
        Param::Int(i64::try_from(query.limit).unwrap_or(i64::MAX)),
    ];
    appointments(db, sql, &params, "listing appointments").await
}

pub(crate) async fn active_in_range<D: Dialect>(
    db: &D,
    provider: &ProviderId,
    from: Timestamp,
    until: Timestamp,
) -> anyhow::Result<Vec<Appointment>> {
    let params = [
        Param::Text(provider.as_str()),
        Param::Instant(Instant::of(from - MAX_APPOINTMENT)),
        Param::Instant(Instant::of(from)),
        Param::Instant(Instant::of(until)),
    ];
    let what = "reading a provider's appointments";
    appointments(db, D::APPOINTMENTS.active_in_range, &params, what).await
}

pub(crate) async fn unpublished<D: Dialect>(
    db: &D,
    limit: usize,
) -> anyhow::Result<Vec<OutboxEntry>> {
    let mut conn = db.read().await?;
    let query = D::OUTBOX
        .unpublished
        .bind(&[Param::Int(i64::try_from(limit).unwrap_or(i64::MAX))]);
    let rows = D::Db::fetch_all(conn.conn(), query)
        .await
        .context("reading the outbox")?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEntry {
                event: serde_json::from_str(&D::Db::text(r, 0)?)
                    .context("unreadable outbox envelope")?,
                created_at: D::Db::instant(r, 1)?.into(),
            })
        })
        .collect()
}

pub(crate) async fn mark_published<D: Dialect>(db: &D, ids: &[EventId]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ids
        .iter()
        .map(|id| id.as_uuid().hyphenated().to_string())
        .collect();
    let ids = serde_json::to_string(&ids).context("encoding event ids")?;
    let mut conn = db.write().await?;
    D::Db::execute(
        conn.conn(),
        D::OUTBOX.mark_published.bind(&[Param::Text(&ids)]),
    )
    .await
    .context("marking outbox entries published")?;
    Ok(())
}

pub(crate) async fn backlog<D: Dialect>(db: &D) -> anyhow::Result<OutboxBacklog> {
    let mut conn = db.read().await?;
    let row = D::Db::fetch_optional(conn.conn(), D::OUTBOX.backlog.bind(&[]))
        .await
        .context("counting the outbox")?
        .context("a count without its row")?;
    Ok(OutboxBacklog {
        pending: u64::try_from(D::Db::int(&row, 0)?).context("negative count")?,
        oldest: D::Db::opt_instant(&row, 1)?.map(Timestamp::from),
    })
}

/// Implements [`AppointmentStore`](cita_core::booking::AppointmentStore)
/// and [`Outbox`](cita_core::events::Outbox) for a dialect's appointment
/// store `$store`, which has a field `db` (its [`Dialect`]) and the
/// inherent methods `write_new` (as `insert`) and `write_change` (as
/// `update`): the reads are this module's.
macro_rules! appointment_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl cita_core::booking::AppointmentStore for $store {
            async fn insert(
                &self,
                appointment: &cita_core::booking::Appointment,
                event: &cita_core::events::EventEnvelope,
            ) -> Result<(), cita_core::booking::AppointmentWriteError> {
                self.write_new(appointment, event).await
            }

            async fn update<'a>(
                &self,
                appointment: &cita_core::booking::Appointment,
                expected: cita_core::ids::Version,
                event: Option<&'a cita_core::events::EventEnvelope>,
            ) -> Result<(), cita_core::booking::AppointmentWriteError> {
                self.write_change(appointment, expected, event).await
            }

            async fn get(
                &self,
                id: cita_core::ids::AppointmentId,
            ) -> anyhow::Result<Option<cita_core::booking::Appointment>> {
                $crate::sql::reads::get(&self.db, id).await
            }

            async fn list(
                &self,
                query: &cita_core::booking::AppointmentQuery,
            ) -> anyhow::Result<Vec<cita_core::booking::Appointment>> {
                $crate::sql::reads::list(&self.db, query).await
            }

            async fn active_in_range(
                &self,
                provider: &cita_core::ids::ProviderId,
                from: jiff::Timestamp,
                until: jiff::Timestamp,
            ) -> anyhow::Result<Vec<cita_core::booking::Appointment>> {
                $crate::sql::reads::active_in_range(&self.db, provider, from, until).await
            }
        }

        #[async_trait::async_trait]
        impl cita_core::events::Outbox for $store {
            async fn unpublished(
                &self,
                limit: usize,
            ) -> anyhow::Result<Vec<cita_core::events::OutboxEntry>> {
                $crate::sql::reads::unpublished(&self.db, limit).await
            }

            async fn mark_published(&self, ids: &[cita_core::ids::EventId]) -> anyhow::Result<()> {
                $crate::sql::reads::mark_published(&self.db, ids).await
            }

            async fn backlog(&self) -> anyhow::Result<cita_core::events::OutboxBacklog> {
                $crate::sql::reads::backlog(&self.db).await
            }
        }
    };
}
pub(crate) use appointment_store;
