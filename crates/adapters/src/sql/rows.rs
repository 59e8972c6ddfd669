//! One row struct per model, decoded alike by every dialect (each column
//! has the same Rust type everywhere: text, 64-bit integers, [`Instant`],
//! [`Uuid`]), and one conversion from each to its domain type. A dialect
//! whose column is named or typed otherwise aliases or casts it in its
//! `SELECT` (`schedule::text AS schedule`).

use anyhow::Context as _;
use cita_core::booking::{
    Appointment, CancelReason, Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState,
    Notes,
};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;
use cita_core::providers::{Provider, ProviderName};
use cita_core::slots::BufferMinutes;

use super::driver::{Driver, FromSql, Param};
use super::{Instant, Uuid};
use crate::{codec_common as codec, schedule_json};

/// A provider's row, as `provider_columns!` selects it.
pub(crate) struct ProviderRow {
    id: String,
    name: String,
    country: String,
    /// The whole [`Schedule`](cita_core::slots::Schedule) as the JSON of [`schedule_json`].
    schedule: String,
    version: i64,
    created_at: Instant,
    updated_at: Instant,
}

impl FromSql for ProviderRow {
    fn from_sql<D: Driver>(row: &D::Row) -> sqlx::Result<Self> {
        Ok(Self {
            id: D::text(row, 0)?,
            name: D::text(row, 1)?,
            country: D::text(row, 2)?,
            schedule: D::text(row, 3)?,
            version: D::int(row, 4)?,
            created_at: D::instant(row, 5)?,
            updated_at: D::instant(row, 6)?,
        })
    }
}

impl TryFrom<ProviderRow> for Provider {
    type Error = anyhow::Error;

    fn try_from(r: ProviderRow) -> anyhow::Result<Self> {
        let schedule = schedule_json::decode(&r.schedule, &r.id)?;
        Ok(Provider {
            id: codec::parse_provider_id(&r.id)?,
            name: ProviderName::parse(&r.name)
                .with_context(|| format!("provider {}: invalid name", r.id))?,
            country: codec::parse_country(&r.country)?,
            schedule,
            version: codec::parse_version(r.version)?,
            created_at: r.created_at.into(),
            updated_at: r.updated_at.into(),
        })
    }
}

/// An idempotency key's row: its key, fingerprint, outcome (NULL while
/// the key is in progress), creation instant and appointment id, in this
/// order.
pub(crate) struct IdempotencyRow {
    idempotency_key: String,
    fingerprint: String,
    outcome: Option<String>,
    created_at: Instant,
    appointment_id: Option<Uuid>,
}

impl FromSql for IdempotencyRow {
    fn from_sql<D: Driver>(row: &D::Row) -> sqlx::Result<Self> {
        Ok(Self {
            idempotency_key: D::text(row, 0)?,
            fingerprint: D::text(row, 1)?,
            outcome: D::opt_text(row, 2)?,
            created_at: D::instant(row, 3)?,
            appointment_id: D::opt_uuid(row, 4)?,
        })
    }
}

impl TryFrom<IdempotencyRow> for IdempotencyRecord {
    type Error = anyhow::Error;

    fn try_from(r: IdempotencyRow) -> anyhow::Result<Self> {
        let key = r.idempotency_key;
        let state = match r.outcome {
            None => IdempotencyState::InProgress,
            Some(json) => IdempotencyState::Done(
                serde_json::from_str(&json)
                    .with_context(|| format!("idempotency key {key}: unreadable outcome"))?,
            ),
        };
        let appointment = r
            .appointment_id
            .map(|u| {
                AppointmentId::from_uuid(u.0)
                    .with_context(|| format!("idempotency key {key}: invalid appointment id"))
            })
            .transpose()?;
        Ok(IdempotencyRecord {
            key: IdempotencyKey::parse(&key)
                .with_context(|| format!("stored idempotency key {key:?} is invalid"))?,
            fingerprint: Fingerprint(r.fingerprint),
            state,
            created_at: r.created_at.into(),
            appointment,
        })
    }
}

/// An appointment encoded for its row, borrowing its texts: the
/// parameters of every dialect's appointment `INSERT` and `UPDATE`, in
/// [`Self::params`]' order.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) struct AppointmentColumns<'a> {
    pub(crate) id: Uuid,
    pub(crate) provider_id: &'a str,
    pub(crate) patient_id: &'a str,
    pub(crate) country: &'a str,
    pub(crate) start_at: Instant,
    pub(crate) end_at: Instant,
    pub(crate) buffer_minutes: i32,
    pub(crate) hold_until: Instant,
    pub(crate) status: &'static str,
    pub(crate) version: i64,
    pub(crate) notes: Option<&'a str>,
    pub(crate) cancel_reason: Option<&'a str>,
    pub(crate) created_at: Instant,
    pub(crate) updated_at: Instant,
    /// Whether the row holds time (and so is checked for overlaps).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) active: bool,
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
impl<'a> AppointmentColumns<'a> {
    pub(crate) fn of(a: &'a Appointment) -> anyhow::Result<Self> {
        let (_, hold_end) = a.provider_hold();
        Ok(Self {
            id: Uuid(a.id.as_uuid()),
            provider_id: a.provider_id.as_str(),
            patient_id: a.patient_id.as_str(),
            country: a.country.as_str(),
            start_at: Instant::of(a.start),
            end_at: Instant::of(a.end),
            buffer_minutes: i32::try_from(a.buffer.get()).context("buffer out of range")?,
            hold_until: Instant::of(hold_end),
            status: codec::status(a.status),
            version: super::version(a.version)?,
            notes: a.notes.as_ref().map(Notes::as_str),
            cancel_reason: a.cancel_reason.as_ref().map(CancelReason::as_str),
            created_at: Instant::of(a.created_at),
            updated_at: Instant::of(a.updated_at),
            active: a.status.is_active(),
        })
    }

    /// The columns as parameters: id, provider, patient, country, start,
    /// end, buffer, hold end, status, version, notes, cancel reason,
    /// created, updated.
    pub(crate) fn params(&self) -> [Param<'_>; 14] {
        [
            Param::Uuid(self.id),
            Param::Text(self.provider_id),
            Param::Text(self.patient_id),
            Param::Text(self.country),
            Param::Instant(self.start_at),
            Param::Instant(self.end_at),
            Param::Int32(self.buffer_minutes),
            Param::Instant(self.hold_until),
            Param::Text(self.status),
            Param::Int(self.version),
            Param::OptText(self.notes),
            Param::OptText(self.cancel_reason),
            Param::Instant(self.created_at),
            Param::Instant(self.updated_at),
        ]
    }
}

/// An appointment id as its column value.
pub(crate) fn uuid_of(id: Option<AppointmentId>) -> Option<Uuid> {
    id.map(|id| Uuid(id.as_uuid()))
}

/// The columns every appointment read selects, in [`AppointmentRow`]'s
/// order (the row is decoded by position: looking each column up by name
/// was a visible share of decoding a range).
macro_rules! appointment_columns {
    () => {
        "id, provider_id, patient_id, country, start_at, end_at, buffer_minutes, status, \
         version, notes, cancel_reason, created_at, updated_at"
    };
}
pub(crate) use appointment_columns;

/// An appointment's row, as [`appointment_columns!`] selects it.
pub(crate) struct AppointmentRow {
    id: Uuid,
    provider_id: String,
    patient_id: String,
    country: String,
    start_at: Instant,
    end_at: Instant,
    buffer_minutes: i32,
    status: String,
    version: i64,
    notes: Option<String>,
    cancel_reason: Option<String>,
    created_at: Instant,
    updated_at: Instant,
}

impl FromSql for AppointmentRow {
    fn from_sql<D: Driver>(row: &D::Row) -> sqlx::Result<Self> {
        Ok(Self {
            id: D::uuid(row, 0)?,
            provider_id: D::text(row, 1)?,
            patient_id: D::text(row, 2)?,
            country: D::text(row, 3)?,
            start_at: D::instant(row, 4)?,
            end_at: D::instant(row, 5)?,
            buffer_minutes: D::int32(row, 6)?,
            status: D::text(row, 7)?,
            version: D::int(row, 8)?,
            notes: D::opt_text(row, 9)?,
            cancel_reason: D::opt_text(row, 10)?,
            created_at: D::instant(row, 11)?,
            updated_at: D::instant(row, 12)?,
        })
    }
}

impl TryFrom<AppointmentRow> for Appointment {
    type Error = anyhow::Error;

    fn try_from(r: AppointmentRow) -> anyhow::Result<Self> {
        let id = AppointmentId::from_uuid(r.id.0)
            .with_context(|| format!("stored appointment id {} is invalid", r.id.0))?;
        let buffer = u32::try_from(r.buffer_minutes)
            .ok()
            .and_then(|b| BufferMinutes::new(b).ok())
            .with_context(|| format!("appointment {id}: invalid buffer {}", r.buffer_minutes))?;
        Ok(Appointment {
            id,
            provider_id: codec::parse_provider_id(&r.provider_id)?,
            patient_id: codec::parse_patient_id(&r.patient_id)?,
            country: codec::parse_country(&r.country)?,
            start: r.start_at.into(),
            end: r.end_at.into(),
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
            created_at: r.created_at.into(),
            updated_at: r.updated_at.into(),
        })
    }
}

/// A country's record of an appointment (`country_appointments`), as
/// `snapshot_columns!` selects it.
pub(crate) struct SnapshotRow {
    id: Uuid,
    provider_id: String,
    patient_id: String,
    country: String,
    start_at: Instant,
    end_at: Instant,
    status: String,
    version: i64,
    notes: Option<String>,
    cancel_reason: Option<String>,
    created_at: Instant,
    updated_at: Instant,
}

impl FromSql for SnapshotRow {
    fn from_sql<D: Driver>(row: &D::Row) -> sqlx::Result<Self> {
        Ok(Self {
            id: D::uuid(row, 0)?,
            provider_id: D::text(row, 1)?,
            patient_id: D::text(row, 2)?,
            country: D::text(row, 3)?,
            start_at: D::instant(row, 4)?,
            end_at: D::instant(row, 5)?,
            status: D::text(row, 6)?,
            version: D::int(row, 7)?,
            notes: D::opt_text(row, 8)?,
            cancel_reason: D::opt_text(row, 9)?,
            created_at: D::instant(row, 10)?,
            updated_at: D::instant(row, 11)?,
        })
    }
}

impl TryFrom<SnapshotRow> for AppointmentSnapshot {
    type Error = anyhow::Error;

    fn try_from(r: SnapshotRow) -> anyhow::Result<Self> {
        Ok(AppointmentSnapshot {
            id: AppointmentId::from_uuid(r.id.0)
                .with_context(|| format!("stored appointment id {} is invalid", r.id.0))?,
            provider_id: codec::parse_provider_id(&r.provider_id)?,
            patient_id: codec::parse_patient_id(&r.patient_id)?,
            country_iso: codec::parse_country(&r.country)?,
            start: r.start_at.into(),
            end: r.end_at.into(),
            status: codec::parse_status(&r.status)?,
            version: codec::parse_version(r.version)?,
            notes: r.notes,
            cancel_reason: r.cancel_reason,
            created_at: r.created_at.into(),
            updated_at: r.updated_at.into(),
        })
    }
}
