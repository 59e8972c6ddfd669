//! The [`IdempotencyStore`] contract: atomic reservation, exact replay of
//! answers, release, and expiry by ttl and lease.

use std::sync::Arc;

use cita_core::booking::{
    AppointmentStatus, BookRefusal, Fingerprint, IdempotencyKey, IdempotencyRecord,
    IdempotencyState, IdempotencyStore, IdempotentOutcome, Reservation,
};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::{AppointmentId, Version};
use cita_core::routing::CountryCode;
use jiff::{SignedDuration, Timestamp};

use super::{at, mins, now_ms, patient_id, provider_id, unique};

/// Cita's settings: answers are replayed for 24 hours, an unanswered
/// reservation is abandoned after 30 seconds.
const TTL: SignedDuration = SignedDuration::from_hours(24);
const LEASE: SignedDuration = SignedDuration::from_secs(30);
const MS: SignedDuration = SignedDuration::from_millis(1);

/// Concurrent reservations of one key in the race case.
const RACERS: usize = 16;

/// Runs every case of the [`IdempotencyStore`] contract against `store`:
///
/// - a free key → `Reserved`; reserving it again (any fingerprint) →
///   `Existing` with the key, the *first* fingerprint, `InProgress` and the
///   first reservation's time;
/// - after `complete`, reserving → `Existing(Done(outcome))` with the outcome
///   exactly as stored: `Booked` with a full snapshot (notes, cancel reason,
///   millisecond instants) and every `Refused` variant;
/// - `release` frees an in-progress key (the next reserve gets `Reserved`),
///   keeps an answered one, and ignores an unknown one;
/// - an answer older than `ttl`, or a reservation older than `lease`, counts
///   as absent and is replaced by the new reservation (one millisecond
///   younger still counts); an answer older than `lease` but younger than
///   `ttl` still counts;
/// - the appointment id given to a reservation is kept with it (and shown
///   by `Existing`); a reservation that replaces an expired record returns
///   that record exactly as it was (`replaced`), in progress or answered;
/// - 16 concurrent reservations of one key → exactly one `Reserved`; every
///   other caller sees the winner's fingerprint in progress.
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn idempotency_store_contract(store: Arc<dyn IdempotencyStore>) {
    reserve_then_existing(store.as_ref()).await;
    appointments_are_kept_and_replaced_records_returned(store.as_ref()).await;
    answers_round_trip(store.as_ref()).await;
    release(store.as_ref()).await;
    lease_expiry(store.as_ref()).await;
    ttl_expiry(store.as_ref()).await;
    racing_reservations(&store).await;
}

fn key() -> IdempotencyKey {
    IdempotencyKey::parse(&unique("contract-key")).expect("valid key")
}

fn fp(s: &str) -> Fingerprint {
    Fingerprint(format!("{s}|{}", uuid::Uuid::new_v4()))
}

async fn reserve(
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    now: Timestamp,
) -> Reservation {
    store
        .reserve(key, fingerprint, None, now, TTL, LEASE)
        .await
        .expect("reserve succeeds")
}

/// A reservation of a key that was free.
fn reserved() -> Reservation {
    Reservation::Reserved { replaced: None }
}

fn record(
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    state: IdempotencyState,
    created_at: Timestamp,
) -> Box<IdempotencyRecord> {
    Box::new(IdempotencyRecord {
        key: key.clone(),
        fingerprint: fingerprint.clone(),
        state,
        created_at,
        appointment: None,
    })
}

fn existing(
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    state: IdempotencyState,
    created_at: Timestamp,
) -> Reservation {
    Reservation::Existing(record(key, fingerprint, state, created_at))
}

/// A reservation that replaced an expired record.
fn replacing(
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    state: IdempotencyState,
    created_at: Timestamp,
) -> Reservation {
    Reservation::Reserved {
        replaced: Some(record(key, fingerprint, state, created_at)),
    }
}

async fn reserve_then_existing(store: &dyn IdempotencyStore) {
    let (k, f1, f2) = (key(), fp("first"), fp("second"));
    let t0 = now_ms();
    assert_eq!(
        reserve(store, &k, &f1, t0).await,
        reserved(),
        "a free key is reserved"
    );
    assert_eq!(
        reserve(store, &k, &f2, t0 + MS).await,
        existing(&k, &f1, IdempotencyState::InProgress, t0),
        "a reserved key: Existing with the first fingerprint, in progress, first time"
    );
    assert_eq!(
        reserve(store, &k, &f1, t0 + 2 * MS).await,
        existing(&k, &f1, IdempotencyState::InProgress, t0),
        "a reserved key reserved again with the same fingerprint"
    );
    let other = key();
    assert_eq!(
        reserve(store, &other, &f1, t0).await,
        reserved(),
        "another key is independent"
    );
}

async fn appointments_are_kept_and_replaced_records_returned(store: &dyn IdempotencyStore) {
    let (k, f1, f2) = (key(), fp("first"), fp("second"));
    let (a1, a2, a3) = (
        AppointmentId::new(),
        AppointmentId::new(),
        AppointmentId::new(),
    );
    let with = |f: &Fingerprint, state, created_at, appointment| {
        Box::new(IdempotencyRecord {
            key: k.clone(),
            fingerprint: f.clone(),
            state,
            created_at,
            appointment,
        })
    };
    let claim = |f: Fingerprint, a: Option<AppointmentId>, now: Timestamp| {
        let k = k.clone();
        async move {
            store
                .reserve(&k, &f, a, now, TTL, LEASE)
                .await
                .expect("reserve succeeds")
        }
    };
    let t0 = now_ms();
    assert_eq!(claim(f1.clone(), Some(a1), t0).await, reserved());
    assert_eq!(
        claim(f2.clone(), Some(a2), t0 + MS).await,
        Reservation::Existing(with(&f1, IdempotencyState::InProgress, t0, Some(a1))),
        "the reservation keeps the appointment id it was given"
    );
    let t1 = t0 + LEASE;
    assert_eq!(
        claim(f1.clone(), Some(a3), t1).await,
        Reservation::Reserved {
            replaced: Some(with(&f1, IdempotencyState::InProgress, t0, Some(a1)))
        },
        "an abandoned reservation is returned, with its appointment id, when replaced"
    );
    let outcome = IdempotentOutcome::Refused {
        refusal: BookRefusal::SlotTaken,
    };
    store
        .complete(&k, &outcome)
        .await
        .expect("complete succeeds");
    assert_eq!(
        claim(f2.clone(), None, t1 + MS).await,
        Reservation::Existing(with(
            &f1,
            IdempotencyState::Done(outcome.clone()),
            t1,
            Some(a3)
        )),
        "the replacement holds its own appointment id"
    );
    let t2 = t1 + TTL;
    assert_eq!(
        claim(f2.clone(), None, t2).await,
        Reservation::Reserved {
            replaced: Some(with(&f1, IdempotencyState::Done(outcome), t1, Some(a3)))
        },
        "an expired answer is returned when replaced"
    );
    assert_eq!(
        claim(f1.clone(), Some(a1), t2 + MS).await,
        Reservation::Existing(with(&f2, IdempotencyState::InProgress, t2, None)),
        "a reservation without an appointment keeps none"
    );
}

fn snapshot() -> AppointmentSnapshot {
    let created = now_ms() - SignedDuration::from_millis(1_234_567);
    AppointmentSnapshot {
        id: AppointmentId::new(),
        provider_id: provider_id(),
        patient_id: patient_id(),
        country_iso: CountryCode::CL,
        start: at(600),
        end: at(600) + mins(45),
        status: AppointmentStatus::Cancelled,
        version: Version::new(3).expect("valid version"),
        notes: Some("notas — ñ \"q\" 👍\nsegunda línea".into()),
        cancel_reason: Some("motivo".into()),
        created_at: created,
        updated_at: created + SignedDuration::from_millis(999),
    }
}

fn outcomes() -> Vec<IdempotentOutcome> {
    let earliest = now_ms() + SignedDuration::from_millis(3_600_001);
    let mut minimal = snapshot();
    minimal.notes = None;
    minimal.cancel_reason = None;
    minimal.status = AppointmentStatus::Pending;
    minimal.version = Version::FIRST;
    let refused = |refusal| IdempotentOutcome::Refused { refusal };
    vec![
        IdempotentOutcome::Booked {
            appointment: snapshot(),
        },
        IdempotentOutcome::Booked {
            appointment: minimal,
        },
        refused(BookRefusal::ProviderNotFound),
        refused(BookRefusal::CountryNotServed {
            country: "AR".into(),
        }),
        refused(BookRefusal::CountryMismatch {
            provider: "PE".into(),
            given: "CL".into(),
        }),
        refused(BookRefusal::SlotNotOffered),
        refused(BookRefusal::TooSoon { earliest }),
        refused(BookRefusal::TooFar {
            latest: earliest + SignedDuration::from_hours(24 * 90),
        }),
        refused(BookRefusal::SlotTaken),
        refused(BookRefusal::PatientBusy),
    ]
}

async fn answers_round_trip(store: &dyn IdempotencyStore) {
    for outcome in outcomes() {
        let (k, f) = (key(), fp("answer"));
        let t0 = now_ms();
        assert_eq!(reserve(store, &k, &f, t0).await, reserved());
        store
            .complete(&k, &outcome)
            .await
            .expect("complete succeeds");
        assert_eq!(
            reserve(store, &k, &fp("retry"), t0 + SignedDuration::from_secs(5)).await,
            existing(&k, &f, IdempotencyState::Done(outcome.clone()), t0),
            "the answer is replayed exactly: {outcome:?}"
        );
    }
}

async fn release(store: &dyn IdempotencyStore) {
    let (k, f1, f2) = (key(), fp("first"), fp("second"));
    let t0 = now_ms();
    assert_eq!(reserve(store, &k, &f1, t0).await, reserved());
    store.release(&k).await.expect("release succeeds");
    assert_eq!(
        reserve(store, &k, &f2, t0 + MS).await,
        reserved(),
        "a released key is free"
    );
    assert_eq!(
        reserve(store, &k, &f1, t0 + 2 * MS).await,
        existing(&k, &f2, IdempotencyState::InProgress, t0 + MS),
        "the new reservation holds the key"
    );

    let answered = key();
    let outcome = IdempotentOutcome::Refused {
        refusal: BookRefusal::SlotTaken,
    };
    assert_eq!(reserve(store, &answered, &f1, t0).await, reserved());
    store
        .complete(&answered, &outcome)
        .await
        .expect("complete succeeds");
    store.release(&answered).await.expect("release succeeds");
    assert_eq!(
        reserve(store, &answered, &f2, t0 + MS).await,
        existing(&answered, &f1, IdempotencyState::Done(outcome), t0),
        "release keeps an answered key"
    );

    store
        .release(&key())
        .await
        .expect("releasing an unknown key succeeds");
}

async fn lease_expiry(store: &dyn IdempotencyStore) {
    let (k, f1, f2, f3) = (key(), fp("first"), fp("second"), fp("third"));
    let t0 = now_ms();
    assert_eq!(reserve(store, &k, &f1, t0).await, reserved());
    assert_eq!(
        reserve(store, &k, &f2, t0 + LEASE - MS).await,
        existing(&k, &f1, IdempotencyState::InProgress, t0),
        "a reservation one millisecond younger than the lease still holds"
    );
    let t1 = t0 + LEASE;
    assert_eq!(
        reserve(store, &k, &f2, t1).await,
        replacing(&k, &f1, IdempotencyState::InProgress, t0),
        "a reservation as old as the lease is abandoned and replaced"
    );
    assert_eq!(
        reserve(store, &k, &f3, t1 + MS).await,
        existing(&k, &f2, IdempotencyState::InProgress, t1),
        "the replacement has the new fingerprint and time"
    );
}

async fn ttl_expiry(store: &dyn IdempotencyStore) {
    let (k, f1, f2, f3) = (key(), fp("first"), fp("second"), fp("third"));
    let outcome = IdempotentOutcome::Refused {
        refusal: BookRefusal::PatientBusy,
    };
    let t0 = now_ms();
    assert_eq!(reserve(store, &k, &f1, t0).await, reserved());
    store
        .complete(&k, &outcome)
        .await
        .expect("complete succeeds");
    assert_eq!(
        reserve(store, &k, &f2, t0 + LEASE + SignedDuration::from_secs(1)).await,
        existing(&k, &f1, IdempotencyState::Done(outcome.clone()), t0),
        "an answer older than the lease (but not the ttl) still counts"
    );
    assert_eq!(
        reserve(store, &k, &f2, t0 + TTL - MS).await,
        existing(&k, &f1, IdempotencyState::Done(outcome.clone()), t0),
        "an answer one millisecond younger than the ttl still counts"
    );
    let t1 = t0 + TTL;
    assert_eq!(
        reserve(store, &k, &f2, t1).await,
        replacing(&k, &f1, IdempotencyState::Done(outcome), t0),
        "an answer as old as the ttl is forgotten and the key reserved anew"
    );
    assert_eq!(
        reserve(store, &k, &f3, t1 + MS).await,
        existing(&k, &f2, IdempotencyState::InProgress, t1),
        "the old answer is gone"
    );
}

async fn racing_reservations(store: &Arc<dyn IdempotencyStore>) {
    let k = key();
    let now = now_ms();
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, k, barrier) = (Arc::clone(store), k.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let f = fp(&format!("racer-{i}"));
                barrier.wait().await;
                let r = store
                    .reserve(&k, &f, None, now, TTL, LEASE)
                    .await
                    .expect("reserve succeeds");
                (f, r)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("racing task does not panic"));
    }
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| *r == reserved())
        .map(|(f, _)| f.clone())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "16 concurrent reservations of one key: exactly one Reserved"
    );
    for (_, r) in results.iter().filter(|(_, r)| *r != reserved()) {
        assert_eq!(
            r,
            &existing(&k, &winners[0], IdempotencyState::InProgress, now),
            "every loser sees the winner's reservation"
        );
    }
}
