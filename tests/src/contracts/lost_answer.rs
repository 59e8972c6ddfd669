//! A booking whose answer was lost: the process died after the appointment
//! was committed and before its idempotency record was completed. The
//! client's correct retry (same key, same body) must get the booking back
//! (a replayed 201), within the lease and after it, and never a second
//! appointment or a `slot_taken` for its own slot. Run with the real
//! appointment, provider and idempotency stores of each adapter.
//!
//! The crash is reproduced exactly: the first attempt runs through an
//! idempotency store whose `complete` and `release` never reach the store
//! (the process was gone by then), so the record stays as a crash leaves
//! it; the retries run through a fresh service on the same stores, as a
//! restarted process would.

use std::sync::Arc;

use async_trait::async_trait;
use cita_adapters::clock::ManualClock;
use cita_core::booking::{
    AppointmentQuery, AppointmentStore, BookRequest, BookingService, Fingerprint, IdempotencyKey,
    IdempotencyStore, IdempotentOutcome, Replay, Reservation,
};
use cita_core::clock::Clock;
use cita_core::ids::AppointmentId;
use cita_core::providers::{ProviderDraft, ProviderName, ProviderStore};
use cita_core::routing::{CountryCode, CountryRouter};
use cita_core::slots::{DayHours, LocalInterval, Schedule, WallTime, Zone};
use jiff::{SignedDuration, Timestamp};

use super::{patient_id, provider_id, unique};

/// The idempotency store of a process that dies right after the booking's
/// commit: reservations reach the store, answers never do.
struct DiesBeforeAnswering(Arc<dyn IdempotencyStore>);

#[async_trait]
impl IdempotencyStore for DiesBeforeAnswering {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        self.0
            .reserve(key, fingerprint, appointment, now, ttl, lease)
            .await
    }

    async fn complete(&self, _: &IdempotencyKey, _: &IdempotentOutcome) -> anyhow::Result<()> {
        Ok(())
    }

    async fn release(&self, _: &IdempotencyKey) -> anyhow::Result<()> {
        Ok(())
    }
}

/// 2031-03-03 (a Monday), 08:00 UTC: the clock of every service here.
fn t0() -> Timestamp {
    "2031-03-03T08:00:00Z".parse().expect("valid instant")
}

/// A UTC schedule open 09:00–17:00 every day, 30-minute slots.
fn schedule() -> Schedule {
    let hours = DayHours::new(vec![
        LocalInterval::new(
            WallTime::from_hm(9, 0).expect("a time"),
            WallTime::from_hm(17, 0).expect("a time"),
        )
        .expect("start before end"),
    ])
    .expect("one interval");
    let mut s = Schedule::new(Zone::utc());
    for day in [
        jiff::civil::Weekday::Monday,
        jiff::civil::Weekday::Tuesday,
        jiff::civil::Weekday::Wednesday,
        jiff::civil::Weekday::Thursday,
        jiff::civil::Weekday::Friday,
        jiff::civil::Weekday::Saturday,
        jiff::civil::Weekday::Sunday,
    ] {
        s.weekly.set(day, hours.clone());
    }
    s
}

/// Runs the case against the stores; `lease` is the service's idempotency
/// lease (Cita's default, 30 s).
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn lost_answer_contract(
    providers: Arc<dyn ProviderStore>,
    appointments: Arc<dyn AppointmentStore>,
    idempotency: Arc<dyn IdempotencyStore>,
) {
    let clock = Arc::new(ManualClock::new(t0()));
    let service = |idempotency: Arc<dyn IdempotencyStore>| {
        BookingService::new(
            Arc::clone(&providers),
            Arc::clone(&appointments),
            idempotency,
            CountryRouter::default(),
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
    };
    let provider = provider_id();
    service(Arc::clone(&idempotency))
        .set_provider(
            provider.clone(),
            ProviderDraft {
                name: ProviderName::parse("Dra. Contrato").expect("a valid name"),
                country: CountryCode::PE,
                schedule: schedule(),
            },
        )
        .await
        .expect("the provider is stored");
    let lease = service(Arc::clone(&idempotency))
        .settings()
        .idempotency_lease;

    // Within the lease, and once it has passed.
    for (case, (slot, retry_after)) in [
        (
            "within the lease",
            ("2031-03-04T10:00:00Z", SignedDuration::from_secs(1)),
        ),
        (
            "after the lease",
            ("2031-03-04T11:00:00Z", lease + SignedDuration::from_secs(1)),
        ),
    ] {
        let patient = patient_id();
        let key = IdempotencyKey::parse(&unique("lost-answer")).expect("a valid key");
        let mut request = BookRequest {
            provider_id: provider.clone(),
            patient_id: patient.clone(),
            start: slot.parse().expect("valid instant"),
            country: Some(CountryCode::PE),
            notes: None,
            idempotency: None,
        };
        request.idempotency = Some((key.clone(), request.fingerprint()));

        let (crashed, _) = service(Arc::new(DiesBeforeAnswering(Arc::clone(&idempotency))))
            .book(request.clone())
            .await;
        let first = crashed.expect("the first attempt books");

        clock.advance(retry_after);
        let (retry, replay) = service(Arc::clone(&idempotency))
            .book(request.clone())
            .await;
        assert_eq!(
            replay,
            Replay::Replayed,
            "{case}: the retry is answered as a replay"
        );
        let replayed =
            retry.unwrap_or_else(|e| panic!("{case}: the retry gets the booking back, not {e:?}"));
        assert_eq!(replayed.id, first.id, "{case}: the same appointment");
        assert_eq!(replayed.start, first.start, "{case}");

        // The answer is remembered now: a further retry replays it too.
        clock.advance(SignedDuration::from_secs(1));
        let (again, replay) = service(Arc::clone(&idempotency)).book(request).await;
        assert_eq!(
            replay,
            Replay::Replayed,
            "{case}: a further retry is a replay"
        );
        assert_eq!(again.expect("replayed").id, first.id, "{case}");

        let query = AppointmentQuery::new(Some(patient), None, 10).expect("an owner");
        let stored = appointments.list(&query).await.expect("listing works");
        assert_eq!(
            stored.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![first.id],
            "{case}: exactly one appointment was made"
        );
    }
}
