//! The [`ProviderStore`] contract: versioned upserts and exact round trips.

use std::sync::Arc;

use cita_core::ids::Version;
use cita_core::providers::{Provider, ProviderName, ProviderStore, ProviderWriteError};
use cita_core::routing::CountryCode;
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WallTime, Zone,
};
use jiff::SignedDuration;
use jiff::civil::{Weekday, date};

use super::{now_ms, provider_id};

/// Runs every case of the [`ProviderStore`] contract against `store`:
///
/// - a provider that does not exist reads as `Ok(None)`;
/// - `put` with `expected: None` creates; again with `None` → `VersionConflict`;
/// - `put` with the stored version replaces; with any other version (stale,
///   or for a provider that does not exist) → `VersionConflict`, nothing changed;
/// - `get` returns exactly what was put: name, country, version, timestamps to
///   the millisecond, and the whole schedule (zone, slot, buffer, notice,
///   horizon, several intervals per weekday, `24:00` ends, date overrides
///   including a closed day), as well as the all-defaults schedule.
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn provider_store_contract(store: Arc<dyn ProviderStore>) {
    unknown_provider_is_none(store.as_ref()).await;
    versioned_put(store.as_ref()).await;
    round_trips_every_field(store.as_ref()).await;
    round_trips_a_default_schedule(store.as_ref()).await;
}

fn t(s: &str) -> WallTime {
    WallTime::parse(s).expect("valid wall time")
}

fn hours(intervals: &[(&str, &str)]) -> DayHours {
    DayHours::new(
        intervals
            .iter()
            .map(|(a, b)| LocalInterval::new(t(a), t(b)).expect("valid interval"))
            .collect(),
    )
    .expect("non-overlapping intervals")
}

/// A provider using every feature of a schedule.
fn rich_provider() -> Provider {
    let mut schedule = Schedule::new(Zone::parse("America/Santiago").expect("known zone"));
    schedule.slot = SlotMinutes::new(45).expect("valid");
    schedule.buffer = BufferMinutes::new(15).expect("valid");
    schedule.min_notice = NoticeMinutes::new(120).expect("valid");
    schedule.horizon = HorizonDays::new(30).expect("valid");
    schedule.weekly.set(
        Weekday::Monday,
        hours(&[("09:00", "13:00"), ("14:00", "18:30")]),
    );
    schedule.weekly.set(
        Weekday::Wednesday,
        hours(&[("00:00", "02:00"), ("08:15", "12:00"), ("20:00", "24:00")]),
    );
    schedule
        .weekly
        .set(Weekday::Saturday, hours(&[("10:00", "11:00")]));
    schedule
        .overrides
        .insert(date(2031, 12, 25), DayHours::closed());
    schedule.overrides.insert(
        date(2031, 12, 24),
        hours(&[("09:00", "12:00"), ("12:00", "13:00")]),
    );
    schedule
        .overrides
        .insert(date(2032, 2, 29), hours(&[("07:00", "24:00")]));
    let created = now_ms() - SignedDuration::from_millis(86_400_123);
    Provider {
        id: provider_id(),
        name: ProviderName::parse("Dra. Ñusta Pérez-O'Higgins \"Ana\" 👩‍⚕️").expect("valid name"),
        country: CountryCode::CL,
        schedule,
        version: Version::FIRST,
        created_at: created,
        updated_at: created,
    }
}

async fn unknown_provider_is_none(store: &dyn ProviderStore) {
    let got = store.get(&provider_id()).await.expect("get succeeds");
    assert_eq!(got, None, "a provider never written reads as None");
}

async fn versioned_put(store: &dyn ProviderStore) {
    let v1 = rich_provider();
    store
        .put(&v1, None)
        .await
        .expect("put with expected None creates");
    assert_eq!(
        store.get(&v1.id).await.expect("get succeeds").as_ref(),
        Some(&v1),
        "the created provider reads back"
    );

    let again = store.put(&v1, None).await;
    assert!(
        matches!(again, Err(ProviderWriteError::VersionConflict)),
        "put with expected None over an existing provider: VersionConflict, got {again:?}"
    );

    let mut v2 = v1.clone();
    v2.name = ProviderName::parse("Renamed").expect("valid name");
    v2.schedule.slot = SlotMinutes::new(20).expect("valid");
    v2.version = Version::FIRST.next();
    v2.updated_at = now_ms();
    store
        .put(&v2, Some(Version::FIRST))
        .await
        .expect("put with the stored version replaces");
    assert_eq!(
        store.get(&v1.id).await.expect("get succeeds").as_ref(),
        Some(&v2),
        "the replacement reads back"
    );

    let mut stale = v2.clone();
    stale.name = ProviderName::parse("Stale write").expect("valid name");
    stale.version = Version::FIRST.next();
    let r = store.put(&stale, Some(Version::FIRST)).await;
    assert!(
        matches!(r, Err(ProviderWriteError::VersionConflict)),
        "put with a stale expected version: VersionConflict, got {r:?}"
    );
    let ahead = store
        .put(&stale, Some(Version::new(7).expect("valid version")))
        .await;
    assert!(
        matches!(ahead, Err(ProviderWriteError::VersionConflict)),
        "put with a version ahead of the stored one: VersionConflict, got {ahead:?}"
    );
    assert_eq!(
        store.get(&v1.id).await.expect("get succeeds").as_ref(),
        Some(&v2),
        "refused writes change nothing"
    );

    let mut missing = rich_provider();
    missing.version = Version::FIRST.next();
    let r = store.put(&missing, Some(Version::FIRST)).await;
    assert!(
        matches!(r, Err(ProviderWriteError::VersionConflict)),
        "put with an expected version for a provider that does not exist: VersionConflict, got {r:?}"
    );
    assert_eq!(
        store.get(&missing.id).await.expect("get succeeds"),
        None,
        "a refused create writes nothing"
    );
}

async fn round_trips_every_field(store: &dyn ProviderStore) {
    let p = rich_provider();
    store.put(&p, None).await.expect("put succeeds");
    let got = store
        .get(&p.id)
        .await
        .expect("get succeeds")
        .expect("provider exists");
    // Field by field first, so a failure names the field.
    assert_eq!(got.id, p.id, "id");
    assert_eq!(got.name, p.name, "name");
    assert_eq!(got.country, p.country, "country");
    assert_eq!(got.version, p.version, "version");
    assert_eq!(
        got.created_at, p.created_at,
        "created_at (millisecond precision)"
    );
    assert_eq!(
        got.updated_at, p.updated_at,
        "updated_at (millisecond precision)"
    );
    assert_eq!(got.schedule.zone, p.schedule.zone, "zone");
    assert_eq!(got.schedule.slot, p.schedule.slot, "slot");
    assert_eq!(got.schedule.buffer, p.schedule.buffer, "buffer");
    assert_eq!(got.schedule.min_notice, p.schedule.min_notice, "min notice");
    assert_eq!(got.schedule.horizon, p.schedule.horizon, "horizon");
    assert_eq!(got.schedule.weekly, p.schedule.weekly, "weekly hours");
    assert_eq!(got.schedule.overrides, p.schedule.overrides, "overrides");
    assert_eq!(got, p, "the whole provider");
}

async fn round_trips_a_default_schedule(store: &dyn ProviderStore) {
    let now = now_ms();
    let p = Provider {
        id: provider_id(),
        name: ProviderName::parse("D").expect("valid name"),
        country: CountryCode::PE,
        schedule: Schedule::new(Zone::utc()),
        version: Version::FIRST,
        created_at: now,
        updated_at: now,
    };
    store.put(&p, None).await.expect("put succeeds");
    assert_eq!(
        store.get(&p.id).await.expect("get succeeds"),
        Some(p),
        "a provider with every day closed and no overrides round-trips"
    );
}
