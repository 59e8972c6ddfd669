//! Contract suites: one per port, written once and run unchanged against every
//! adapter of that port (the way object_store's `integration.rs` is run by
//! every backend).
//!
//! Each suite is an `async fn` taking the adapter as the port's trait object
//! and panics, naming the case, on the first broken promise. The suites only
//! touch records they create themselves — provider, patient and appointment
//! ids, idempotency keys and lock keys all carry a random suffix — so they can
//! run against a shared database that already holds data, and several suites
//! can run against one store at once. The one exception is noted where it
//! matters: exact outbox counts are only checked when the outbox starts empty.
//!
//! Instants in the fixtures are millisecond-precise, the precision the
//! service produces and every store must round-trip exactly.
//!
//! - [`providers::provider_store_contract`] checks a
//!   [`cita_core::providers::ProviderStore`].
//! - [`appointments::appointment_store_contract`] checks a
//!   [`cita_core::booking::AppointmentStore`] together with its
//!   [`cita_core::events::Outbox`]: the two share one store.
//! - [`idempotency::idempotency_store_contract`] checks a
//!   [`cita_core::booking::IdempotencyStore`].
//! - [`country::country_store_contract`] checks a
//!   [`cita_core::country::CountryStore`].
//! - [`lock::slot_lock_contract`] checks a [`cita_core::booking::SlotLock`].
//! - [`lost_answer::lost_answer_contract`] checks that a provider,
//!   appointment and idempotency store together let a retry find a booking
//!   whose answer a crash lost.

pub mod appointments;
pub mod country;
pub mod idempotency;
pub mod lock;
pub mod lost_answer;
pub mod providers;

pub use appointments::appointment_store_contract;
pub use country::country_store_contract;
pub use idempotency::idempotency_store_contract;
pub use lock::slot_lock_contract;
pub use lost_answer::lost_answer_contract;
pub use providers::provider_store_contract;

use cita_core::booking::{Appointment, AppointmentStatus};
use cita_core::events::{EventEnvelope, EventType};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use cita_core::slots::BufferMinutes;
use jiff::{SignedDuration, Timestamp};

/// `prefix-<32 random hex digits>`: unique per call, a valid provider or
/// patient id (at most 64 characters for prefixes up to 31 characters).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn provider_id() -> ProviderId {
    ProviderId::parse(&unique("contract-provider")).expect("valid provider id")
}

fn patient_id() -> PatientId {
    PatientId::parse(&unique("contract-patient")).expect("valid patient id")
}

/// The present instant truncated to the millisecond, as the service keeps it.
/// Fixtures use the real time for `created_at`/`updated_at` so that outbox
/// entries written by concurrent suites still get older in write order.
fn now_ms() -> Timestamp {
    Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("in range")
}

/// A fixed day far in the future; appointment times are minutes from it.
/// Overlaps only matter within one provider or patient, and those are unique
/// per run, so a fixed day does not make runs interfere.
fn day() -> Timestamp {
    "2031-03-03T00:00:00Z".parse().expect("valid instant")
}

/// `day()` plus `minutes`.
fn at(minutes: i64) -> Timestamp {
    day() + SignedDuration::from_mins(minutes)
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

/// A pending version-1 appointment of `minutes` starting at `start`, with
/// `buffer` minutes kept free after it (timestamps: now, to the millisecond).
pub fn appointment(
    provider: &ProviderId,
    patient: &PatientId,
    start: Timestamp,
    minutes: i64,
    buffer: u32,
) -> Appointment {
    let now = now_ms();
    Appointment {
        id: AppointmentId::new(),
        provider_id: provider.clone(),
        patient_id: patient.clone(),
        country: CountryCode::PE,
        start,
        end: start + mins(minutes),
        buffer: BufferMinutes::new(buffer).expect("valid buffer"),
        status: AppointmentStatus::Pending,
        version: Version::FIRST,
        notes: None,
        cancel_reason: None,
        created_at: now,
        updated_at: now,
    }
}

/// The event of a change, as the service writes it: occurred when the
/// appointment was last updated.
fn event(kind: EventType, a: &Appointment) -> EventEnvelope {
    EventEnvelope::for_appointment(kind, a, a.updated_at)
}
