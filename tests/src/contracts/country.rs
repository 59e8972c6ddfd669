//! The [`CountryStore`] contract: idempotent by (id, version), newest wins.

use std::sync::Arc;

use cita_core::booking::AppointmentStatus;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::{AppointmentId, Version};
use cita_core::routing::CountryCode;
use jiff::SignedDuration;

use super::{at, mins, now_ms, patient_id, provider_id};

/// Concurrent writers of different versions in the race case.
const RACERS: u64 = 16;

/// Runs every case of the [`CountryStore`] contract against `store`:
///
/// - an unknown id reads as `Ok(None)`;
/// - a new snapshot → `Applied`; the same version again → `Duplicate`; a newer
///   one → `Applied`; an older one arriving late → `Stale` and the newer one
///   is kept; a duplicate's or stale write's content is ignored;
/// - `get` returns exactly the snapshot recorded (every status, notes and
///   cancel reason present or absent, millisecond instants);
/// - 16 concurrent writers of versions 1..=16 leave version 16; its writer
///   is told `Applied`, and nobody `Duplicate`.
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn country_store_contract(store: Arc<dyn CountryStore>) {
    unknown_is_none(store.as_ref()).await;
    versions(store.as_ref()).await;
    round_trips(store.as_ref()).await;
    racing_versions(&store).await;
}

fn v(n: u64) -> Version {
    Version::new(n).expect("valid version")
}

fn snapshot(version: u64) -> AppointmentSnapshot {
    let created = now_ms() - SignedDuration::from_millis(60_001);
    AppointmentSnapshot {
        id: AppointmentId::new(),
        provider_id: provider_id(),
        patient_id: patient_id(),
        country_iso: CountryCode::PE,
        start: at(600),
        end: at(630),
        status: AppointmentStatus::Pending,
        version: v(version),
        notes: Some("primera consulta".into()),
        cancel_reason: None,
        created_at: created,
        updated_at: created,
    }
}

/// The same appointment at a later version, changed the way versions change.
fn bumped(s: &AppointmentSnapshot, version: u64) -> AppointmentSnapshot {
    AppointmentSnapshot {
        version: v(version),
        start: s.start + mins(60 * i64::try_from(version).unwrap_or(1)),
        end: s.end + mins(60 * i64::try_from(version).unwrap_or(1)),
        updated_at: s.updated_at + SignedDuration::from_millis(i64::try_from(version).unwrap_or(1)),
        ..s.clone()
    }
}

async fn record(store: &dyn CountryStore, s: &AppointmentSnapshot) -> CountryWrite {
    store.record(s).await.expect("record succeeds")
}

async fn get(store: &dyn CountryStore, id: AppointmentId) -> Option<AppointmentSnapshot> {
    store.get(id).await.expect("get succeeds")
}

async fn unknown_is_none(store: &dyn CountryStore) {
    assert_eq!(
        get(store, AppointmentId::new()).await,
        None,
        "an unknown appointment reads as None"
    );
}

async fn versions(store: &dyn CountryStore) {
    let s1 = snapshot(1);
    assert_eq!(
        record(store, &s1).await,
        CountryWrite::Applied,
        "a new snapshot"
    );
    assert_eq!(get(store, s1.id).await.as_ref(), Some(&s1), "it reads back");
    assert_eq!(
        record(store, &s1).await,
        CountryWrite::Duplicate,
        "the same version again"
    );
    let mut s1_changed = s1.clone();
    s1_changed.notes = Some("different content, same version".into());
    assert_eq!(
        record(store, &s1_changed).await,
        CountryWrite::Duplicate,
        "the same version with other content is a duplicate"
    );
    assert_eq!(
        get(store, s1.id).await.as_ref(),
        Some(&s1),
        "a duplicate changes nothing"
    );

    let s3 = bumped(&s1, 3);
    assert_eq!(
        record(store, &s3).await,
        CountryWrite::Applied,
        "a newer version"
    );
    let s2 = bumped(&s1, 2);
    assert_eq!(
        record(store, &s2).await,
        CountryWrite::Stale,
        "an older version arriving late"
    );
    assert_eq!(
        record(store, &s1).await,
        CountryWrite::Stale,
        "the first version arriving again after a newer one"
    );
    assert_eq!(
        get(store, s1.id).await.as_ref(),
        Some(&s3),
        "the newer version is kept"
    );
    assert_eq!(record(store, &s3).await, CountryWrite::Duplicate);
    let mut s4 = bumped(&s1, 4);
    s4.status = AppointmentStatus::Cancelled;
    s4.cancel_reason = Some("cancelled".into());
    assert_eq!(record(store, &s4).await, CountryWrite::Applied);
    assert_eq!(
        get(store, s1.id).await,
        Some(s4),
        "the newest version is kept"
    );
}

async fn round_trips(store: &dyn CountryStore) {
    let mut full = snapshot(5);
    full.country_iso = CountryCode::CL;
    full.status = AppointmentStatus::Cancelled;
    full.notes = Some("notas — ñ \"q\" 👍\nsegunda línea".into());
    full.cancel_reason = Some("motivo: enfermedad 😷".into());
    full.start = at(600) + SignedDuration::from_millis(7);
    full.end = full.start + mins(45);
    full.updated_at = full.created_at + SignedDuration::from_millis(3_600_999);
    let mut bare = snapshot(1);
    bare.notes = None;
    let mut confirmed = snapshot(2);
    confirmed.status = AppointmentStatus::Confirmed;
    for s in [full, bare, confirmed] {
        assert_eq!(record(store, &s).await, CountryWrite::Applied);
        let got = get(store, s.id).await.expect("recorded snapshot exists");
        assert_eq!(got.start, s.start, "round trip: start to the millisecond");
        assert_eq!(got.created_at, s.created_at, "round trip: created_at");
        assert_eq!(got.updated_at, s.updated_at, "round trip: updated_at");
        assert_eq!(got, s, "round trip: the whole snapshot");
    }
}

async fn racing_versions(store: &Arc<dyn CountryStore>) {
    let base = snapshot(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(
        usize::try_from(RACERS).unwrap_or(16),
    ));
    let tasks: Vec<_> = (1..=RACERS)
        .map(|n| {
            let s = if n == 1 {
                base.clone()
            } else {
                bumped(&base, n)
            };
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                (n, store.record(&s).await.expect("record succeeds"))
            })
        })
        .collect();
    for t in tasks {
        let (n, w) = t.await.expect("racing task does not panic");
        if n == RACERS {
            assert_eq!(
                w,
                CountryWrite::Applied,
                "the newest version always applies"
            );
        } else {
            assert_ne!(w, CountryWrite::Duplicate, "no version was written twice");
        }
    }
    assert_eq!(
        get(store.as_ref(), base.id).await,
        Some(bumped(&base, RACERS)),
        "concurrent writers leave the newest version"
    );
}
