//! One row struct per model, decoded alike by every dialect (each column
//! has the same Rust type everywhere: text, 64-bit integers, [`Instant`],
//! [`Uuid`]), and one conversion from each to its domain type. A dialect
//! whose column is named or typed otherwise aliases or casts it in its
//! `SELECT` (`schedule::text AS schedule`).

use anyhow::Context as _;
use cita_core::booking::{Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState};
use cita_core::ids::AppointmentId;
use cita_core::providers::{Provider, ProviderName};

use super::{Instant, Uuid};
use crate::{codec_common as codec, schedule_json};

/// A provider's row.
#[derive(sqlx::FromRow)]
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

/// An idempotency key's row; `outcome` is NULL while the key is in progress.
#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub(crate) idempotency_key: String,
    pub(crate) fingerprint: String,
    pub(crate) outcome: Option<String>,
    pub(crate) created_at: Instant,
    pub(crate) appointment_id: Option<Uuid>,
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

/// An appointment id as its column value.
pub(crate) fn uuid_of(id: Option<AppointmentId>) -> Option<Uuid> {
    id.map(|id| Uuid(id.as_uuid()))
}
