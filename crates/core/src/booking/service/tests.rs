//! The use cases over mockall-generated ports: adapter failures, lock outages
//! and contention, version conflicts and idempotent replays, the paths real
//! adapters rarely show. Fixtures are real domain values: a provider in
//! America/Lima working 09:00–13:00 and 14:00–18:00 every day, and a clock
//! stopped on Friday 2026-11-20 whose sleeps return at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use jiff::{SignedDuration, Timestamp};

use super::{BookingObserver, BookingService, BookingSettings, POLL, Replay};
use crate::booking::{
    Appointment, AppointmentStatus, AppointmentWriteError, AvailabilityError, AvailabilityQuery,
    BookError, BookRefusal, BookRequest, CancelError, CancelReason, CancelRequest, Fingerprint,
    IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotentOutcome, LockKey, LockToken,
    MockAppointmentStore, MockIdempotencyStore, MockSlotLock, RescheduleError, RescheduleRequest,
    Reservation, SetProviderError,
};
use crate::clock::MockClock;
use crate::events::{AppointmentSnapshot, EventType};
use crate::ids::{AppointmentId, PatientId, ProviderId, Version};
use crate::providers::{
    MockProviderStore, Provider, ProviderDraft, ProviderName, ProviderWriteError,
};
use crate::routing::{CountryCode, CountryRouter};
use crate::slots::{
    BufferMinutes, DayHours, LocalInterval, Schedule, WEEKDAYS, WallTime, WeeklyHours, Zone,
};

// ---------------------------------------------------------------- fixtures

fn at(s: &str) -> Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

/// Friday 2026-11-20, 07:00 in Lima.
fn now() -> Timestamp {
    at("2026-11-20T12:00:00Z")
}

/// Monday 2026-11-23, 09:00 in Lima: the day's first slot.
fn slot() -> Timestamp {
    at("2026-11-23T14:00:00Z")
}

/// The same Monday, 10:00 in Lima.
fn later_slot() -> Timestamp {
    at("2026-11-23T15:00:00Z")
}

fn version(n: u64) -> Version {
    Version::new(n).expect("versions start at 1")
}

fn schedule() -> Schedule {
    let wall = |s: &str| WallTime::parse(s).expect("HH:MM");
    let interval = |a, b| LocalInterval::new(wall(a), wall(b)).expect("start before end");
    let day = DayHours::new(vec![interval("09:00", "13:00"), interval("14:00", "18:00")])
        .expect("no overlap");
    let mut weekly = WeeklyHours::default();
    for weekday in WEEKDAYS {
        weekly.set(weekday, day.clone());
    }
    Schedule {
        weekly,
        ..Schedule::new(Zone::parse("America/Lima").expect("a bundled zone"))
    }
}

fn provider_id() -> ProviderId {
    ProviderId::parse("ana").expect("a valid id")
}

fn patient_id() -> PatientId {
    PatientId::parse("p-12345").expect("a valid id")
}

fn provider() -> Provider {
    let created = now() - SignedDuration::from_hours(30 * 24);
    Provider {
        id: provider_id(),
        name: ProviderName::parse("Dra. Ana Torres").expect("a valid name"),
        country: CountryCode::PE,
        schedule: schedule(),
        version: Version::FIRST,
        created_at: created,
        updated_at: created,
    }
}

fn draft() -> ProviderDraft {
    ProviderDraft {
        name: ProviderName::parse("Dra. Ana Torres").expect("a valid name"),
        country: CountryCode::PE,
        schedule: schedule(),
    }
}

/// A pending appointment at [`slot`], version 1, booked yesterday.
fn booked() -> Appointment {
    let created = now() - SignedDuration::from_hours(24);
    Appointment {
        id: AppointmentId::new(),
        provider_id: provider_id(),
        patient_id: patient_id(),
        country: CountryCode::PE,
        start: slot(),
        end: slot() + SignedDuration::from_mins(30),
        buffer: BufferMinutes::default(),
        status: AppointmentStatus::Pending,
        version: Version::FIRST,
        notes: None,
        cancel_reason: None,
        created_at: created,
        updated_at: created,
    }
}

/// `a` as a concurrent reschedule left it: at 16:00 Lima, one version on.
fn moved_elsewhere(a: &Appointment) -> Appointment {
    let start = at("2026-11-23T21:00:00Z");
    a.reschedule(
        start,
        start + SignedDuration::from_mins(30),
        a.buffer,
        now(),
    )
    .expect("not cancelled")
}

fn request() -> BookRequest {
    BookRequest {
        provider_id: provider_id(),
        patient_id: patient_id(),
        start: slot(),
        country: Some(CountryCode::PE),
        notes: None,
        idempotency: None,
    }
}

/// `request` under an idempotency key, fingerprinted by its fields.
fn keyed(request: BookRequest, key: &str) -> BookRequest {
    let fingerprint = request.fingerprint();
    BookRequest {
        idempotency: Some((
            IdempotencyKey::parse(key).expect("a valid key"),
            fingerprint,
        )),
        ..request
    }
}

fn store_failure(message: &'static str) -> AppointmentWriteError {
    AppointmentWriteError::Unexpected(anyhow!(message))
}

/// Remembers what the service reported.
#[derive(Default)]
struct Recorder {
    lock_outages: Mutex<Vec<String>>,
    idempotency_outages: Mutex<Vec<String>>,
}

impl BookingObserver for Recorder {
    fn lock_unavailable(&self, error: &anyhow::Error) {
        self.lock_outages
            .lock()
            .expect("not poisoned")
            .push(error.to_string());
    }

    fn idempotency_unavailable(&self, error: &anyhow::Error) {
        self.idempotency_outages
            .lock()
            .expect("not poisoned")
            .push(error.to_string());
    }
}

impl Recorder {
    fn lock_outages(&self) -> Vec<String> {
        self.lock_outages.lock().expect("not poisoned").clone()
    }

    fn idempotency_outages(&self) -> Vec<String> {
        self.idempotency_outages
            .lock()
            .expect("not poisoned")
            .clone()
    }
}

/// The mocked ports of one test. Expectations are set on the fields, then
/// [`Ports::service`] builds the service; every mock checks its `times`
/// when the service is dropped.
struct Ports {
    providers: MockProviderStore,
    appointments: MockAppointmentStore,
    idempotency: MockIdempotencyStore,
    lock: Option<MockSlotLock>,
    settings: BookingSettings,
    observer: Arc<Recorder>,
    sleeps: Arc<AtomicUsize>,
}

impl Ports {
    fn new() -> Self {
        Self {
            providers: MockProviderStore::new(),
            appointments: MockAppointmentStore::new(),
            idempotency: MockIdempotencyStore::new(),
            lock: None,
            settings: BookingSettings::default(),
            observer: Arc::new(Recorder::default()),
            sleeps: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The provider store knows [`provider`] (read any number of times).
    fn provider_found(&mut self) {
        self.providers
            .expect_get()
            .withf(|id| *id == provider_id())
            .returning(|_| Ok(Some(provider())));
    }

    /// The provider has no active appointments anywhere.
    fn no_appointments_in_range(&mut self) {
        self.appointments
            .expect_active_in_range()
            .returning(|_, _, _| Ok(Vec::new()));
    }

    fn service(self) -> BookingService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        let sleeps = Arc::clone(&self.sleeps);
        clock.expect_sleep().returning(move |_| {
            sleeps.fetch_add(1, Ordering::SeqCst);
        });
        let service = BookingService::new(
            Arc::new(self.providers),
            Arc::new(self.appointments),
            Arc::new(self.idempotency),
            CountryRouter::default(),
            Arc::new(clock),
        )
        .with_settings(self.settings)
        .with_observer(self.observer);
        match self.lock {
            Some(lock) => service.with_lock(Arc::new(lock)),
            None => service,
        }
    }
}

// ------------------------------------------------- stores failing mid-way

#[tokio::test]
async fn book_insert_failure_is_unexpected_and_releases_the_idempotency_key() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(store_failure("connection reset by peer")));
    let request = keyed(request(), "k-insert-fails");
    let fingerprint = request.fingerprint();
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .withf(move |key, fp, _, at, ttl, _| {
            key.as_str() == "k-insert-fails"
                && *fp == fingerprint
                && *at == now()
                && *ttl == SignedDuration::from_hours(24)
        })
        .returning(|_, _, _, _, _, _| Ok(Reservation::Reserved { replaced: None }));
    // A 5xx is never remembered: the key is released, not completed.
    ports.idempotency.expect_complete().times(0);
    ports
        .idempotency
        .expect_release()
        .times(1)
        .withf(|key| key.as_str() == "k-insert-fails")
        .returning(|_| Ok(()));
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Fresh);
    match outcome {
        Err(BookError::Unexpected(e)) => assert_eq!(e.to_string(), "connection reset by peer"),
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn book_provider_store_failure_attempts_no_write() {
    let mut ports = Ports::new();
    ports
        .providers
        .expect_get()
        .times(1)
        .returning(|_| Err(anyhow!("providers table unreachable")));
    ports.appointments.expect_active_in_range().times(0);
    ports.appointments.expect_insert().times(0);
    let mut lock = MockSlotLock::new();
    lock.expect_try_acquire().times(0);
    ports.lock = Some(lock);
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    match outcome {
        Err(BookError::Unexpected(e)) => assert_eq!(e.to_string(), "providers table unreachable"),
        other => panic!("expected Unexpected, got {other:?}"),
    }
}

#[tokio::test]
async fn availability_appointment_store_failure_is_unexpected() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports
        .appointments
        .expect_active_in_range()
        .times(1)
        .returning(|_, _, _| Err(anyhow!("read timeout")));
    let service = ports.service();

    let result = service
        .availability(AvailabilityQuery {
            provider_id: provider_id(),
            from: jiff::civil::date(2026, 11, 23),
            to: None,
            display: None,
        })
        .await;

    assert!(
        matches!(result, Err(AvailabilityError::Unexpected(ref e)) if e.to_string() == "read timeout"),
        "{result:?}"
    );
}

#[tokio::test]
async fn reschedule_update_failure_is_unexpected() {
    let mut ports = Ports::new();
    let current = booked();
    let id = current.id;
    let own = current.clone();
    ports
        .appointments
        .expect_get()
        .times(1)
        .withf(move |i| *i == id)
        .returning(move |_| Ok(Some(current.clone())));
    ports.provider_found();
    // Its own slot is in range and must not count as taken.
    ports
        .appointments
        .expect_active_in_range()
        .returning(move |_, _, _| Ok(vec![own.clone()]));
    ports
        .appointments
        .expect_update()
        .times(1)
        .withf(|moved, expected, event| {
            *expected == Version::FIRST
                && moved.version == version(2)
                && moved.start == later_slot()
                && event.is_some_and(|e| e.event_type == EventType::Rescheduled)
        })
        .returning(|_, _, _| Err(store_failure("deadlock detected")));
    let service = ports.service();

    let result = service
        .reschedule(RescheduleRequest {
            id,
            start: later_slot(),
            expected: None,
        })
        .await;

    assert!(
        matches!(result, Err(RescheduleError::Unexpected(ref e)) if e.to_string() == "deadlock detected"),
        "{result:?}"
    );
}

#[tokio::test]
async fn reschedule_provider_store_failure_attempts_no_write() {
    let mut ports = Ports::new();
    let current = booked();
    let id = current.id;
    ports
        .appointments
        .expect_get()
        .returning(move |_| Ok(Some(current.clone())));
    ports
        .providers
        .expect_get()
        .times(1)
        .returning(|_| Err(anyhow!("providers table unreachable")));
    ports.appointments.expect_update().times(0);
    let service = ports.service();

    let result = service
        .reschedule(RescheduleRequest {
            id,
            start: later_slot(),
            expected: None,
        })
        .await;

    assert!(
        matches!(result, Err(RescheduleError::Unexpected(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn cancel_update_failure_is_unexpected() {
    let mut ports = Ports::new();
    let current = booked();
    let id = current.id;
    ports
        .appointments
        .expect_get()
        .times(1)
        .returning(move |_| Ok(Some(current.clone())));
    ports
        .appointments
        .expect_update()
        .times(1)
        .withf(|cancelled, expected, event| {
            *expected == Version::FIRST
                && cancelled.status == AppointmentStatus::Cancelled
                && cancelled.version == version(2)
                && event.is_some_and(|e| e.event_type == EventType::Cancelled)
        })
        .returning(|_, _, _| Err(store_failure("disk I/O error")));
    let service = ports.service();

    let result = service
        .cancel(CancelRequest {
            id,
            reason: None,
            expected: None,
        })
        .await;

    assert!(
        matches!(result, Err(CancelError::Unexpected(ref e)) if e.to_string() == "disk I/O error"),
        "{result:?}"
    );
}

#[tokio::test]
async fn set_provider_put_failure_is_unexpected() {
    let mut ports = Ports::new();
    ports
        .providers
        .expect_get()
        .times(1)
        .returning(|_| Ok(None));
    ports
        .providers
        .expect_put()
        .times(1)
        .withf(|p, expected| {
            expected.is_none() && p.version == Version::FIRST && p.id == provider_id()
        })
        .returning(|_, _| Err(ProviderWriteError::Unexpected(anyhow!("disk full"))));
    let service = ports.service();

    let result = service.set_provider(provider_id(), draft()).await;

    assert!(
        matches!(result, Err(SetProviderError::Unexpected(ref e)) if e.to_string() == "disk full"),
        "{result:?}"
    );
}

#[tokio::test]
async fn set_provider_get_failure_attempts_no_write() {
    let mut ports = Ports::new();
    ports
        .providers
        .expect_get()
        .times(1)
        .returning(|_| Err(anyhow!("providers table unreachable")));
    ports.providers.expect_put().times(0);
    let service = ports.service();

    let result = service.set_provider(provider_id(), draft()).await;

    assert!(
        matches!(result, Err(SetProviderError::Unexpected(_))),
        "{result:?}"
    );
}

// ------------------------------------------------------ version conflicts

#[tokio::test]
async fn set_provider_retries_a_version_conflict_against_the_reloaded_version() {
    let mut ports = Ports::new();
    let reads = AtomicUsize::new(0);
    // Absent at first; a concurrent request creates it before our write.
    ports
        .providers
        .expect_get()
        .times(2)
        .returning(move |_| Ok((reads.fetch_add(1, Ordering::SeqCst) > 0).then(provider)));
    let expectations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&expectations);
    ports
        .providers
        .expect_put()
        .times(2)
        .returning(move |_, expected| {
            seen.lock().expect("not poisoned").push(expected);
            match expected {
                None => Err(ProviderWriteError::VersionConflict),
                Some(_) => Ok(()),
            }
        });
    let service = ports.service();

    let outcome = service
        .set_provider(provider_id(), draft())
        .await
        .expect("the retry replaces the provider");

    assert!(!outcome.created);
    assert_eq!(outcome.provider.version, version(2));
    assert_eq!(outcome.provider.created_at, provider().created_at);
    assert_eq!(
        *expectations.lock().expect("not poisoned"),
        vec![None, Some(Version::FIRST)]
    );
}

/// An appointment store whose `get` answers `first`, then `second` for
/// every later read.
fn reads_then_changes(ports: &mut Ports, first: Appointment, second: Appointment) {
    let reads = AtomicUsize::new(0);
    ports.appointments.expect_get().returning(move |id| {
        assert_eq!(id, first.id);
        Ok(Some(if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            first.clone()
        } else {
            second.clone()
        }))
    });
}

/// `update` refuses the first write with a version conflict and accepts
/// later ones; returns the `expected` version of every write attempted.
fn conflicts_once(ports: &mut Ports, times: usize) -> Arc<Mutex<Vec<Version>>> {
    let expectations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&expectations);
    ports
        .appointments
        .expect_update()
        .times(times)
        .returning(move |_, expected, _| {
            let mut seen = seen.lock().expect("not poisoned");
            seen.push(expected);
            if seen.len() == 1 {
                Err(AppointmentWriteError::VersionConflict)
            } else {
                Ok(())
            }
        });
    expectations
}

#[tokio::test]
async fn reschedule_reloads_and_retries_after_a_version_conflict() {
    let mut ports = Ports::new();
    let first = booked();
    let id = first.id;
    let second = moved_elsewhere(&first);
    reads_then_changes(&mut ports, first, second);
    ports.provider_found();
    ports.no_appointments_in_range();
    let expectations = conflicts_once(&mut ports, 2);
    let service = ports.service();

    let outcome = service
        .reschedule(RescheduleRequest {
            id,
            start: later_slot(),
            expected: None,
        })
        .await
        .expect("the retry wins");

    assert!(outcome.changed);
    assert_eq!(outcome.appointment.start, later_slot());
    assert_eq!(outcome.appointment.version, version(3));
    assert_eq!(outcome.appointment.status, AppointmentStatus::Pending);
    assert_eq!(
        *expectations.lock().expect("not poisoned"),
        vec![version(1), version(2)]
    );
}

#[tokio::test]
async fn reschedule_with_if_match_answers_version_mismatch_after_a_conflict() {
    let mut ports = Ports::new();
    let first = booked();
    let id = first.id;
    let second = moved_elsewhere(&first);
    reads_then_changes(&mut ports, first, second);
    ports.provider_found();
    ports.no_appointments_in_range();
    let expectations = conflicts_once(&mut ports, 1);
    let service = ports.service();

    let result = service
        .reschedule(RescheduleRequest {
            id,
            start: later_slot(),
            expected: Some(Version::FIRST),
        })
        .await;

    assert!(
        matches!(result, Err(RescheduleError::VersionMismatch { current }) if current == version(2)),
        "{result:?}"
    );
    assert_eq!(
        *expectations.lock().expect("not poisoned"),
        vec![version(1)]
    );
}

#[tokio::test]
async fn cancel_reloads_and_retries_after_a_version_conflict() {
    let mut ports = Ports::new();
    let first = booked();
    let id = first.id;
    let second = moved_elsewhere(&first);
    let moved_start = second.start;
    reads_then_changes(&mut ports, first, second);
    let expectations = conflicts_once(&mut ports, 2);
    let service = ports.service();

    let outcome = service
        .cancel(CancelRequest {
            id,
            reason: Some(CancelReason::parse("travelling").expect("short")),
            expected: None,
        })
        .await
        .expect("the retry wins");

    assert!(outcome.changed);
    assert_eq!(outcome.appointment.status, AppointmentStatus::Cancelled);
    assert_eq!(outcome.appointment.version, version(3));
    // It cancelled what it reloaded, not the stale copy.
    assert_eq!(outcome.appointment.start, moved_start);
    assert_eq!(
        outcome
            .appointment
            .cancel_reason
            .as_ref()
            .map(CancelReason::as_str),
        Some("travelling")
    );
    assert_eq!(
        *expectations.lock().expect("not poisoned"),
        vec![version(1), version(2)]
    );
}

#[tokio::test]
async fn cancel_with_if_match_answers_version_mismatch_after_a_conflict() {
    let mut ports = Ports::new();
    let first = booked();
    let id = first.id;
    let second = moved_elsewhere(&first);
    reads_then_changes(&mut ports, first, second);
    let expectations = conflicts_once(&mut ports, 1);
    let service = ports.service();

    let result = service
        .cancel(CancelRequest {
            id,
            reason: None,
            expected: Some(Version::FIRST),
        })
        .await;

    assert!(
        matches!(result, Err(CancelError::VersionMismatch { current }) if current == version(2)),
        "{result:?}"
    );
    assert_eq!(
        *expectations.lock().expect("not poisoned"),
        vec![version(1)]
    );
}

// ------------------------------------------------------------- slot lock

#[tokio::test]
async fn lock_outage_books_through_the_store_and_tells_the_observer() {
    let mut ports = Ports::new();
    let mut lock = MockSlotLock::new();
    lock.expect_try_acquire()
        .times(1)
        .returning(|_, _, _| Err(anyhow!("redis: connection refused")));
    // Never taken, so never released.
    lock.expect_release().times(0);
    ports.lock = Some(lock);
    ports.provider_found();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .withf(|a, event| {
            a.start == slot()
                && a.status == AppointmentStatus::Pending
                && event.event_type == EventType::Requested
                && event.appointment_id == a.id
        })
        .returning(|_, _| Ok(()));
    let observer = Arc::clone(&ports.observer);
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    let snapshot = outcome.expect("booked without the lock");
    assert_eq!(snapshot.start, slot());
    assert_eq!(snapshot.version, Version::FIRST);
    assert_eq!(observer.lock_outages(), vec!["redis: connection refused"]);
}

#[tokio::test]
async fn lock_held_elsewhere_waits_lock_wait_then_the_store_decides() {
    let mut ports = Ports::new();
    ports.settings.lock_wait = POLL * 4;
    let mut lock = MockSlotLock::new();
    // The first try, then one per POLL until lock_wait has passed.
    lock.expect_try_acquire()
        .times(5)
        .returning(|_, _, _| Ok(false));
    lock.expect_release().times(0);
    ports.lock = Some(lock);
    ports.provider_found();
    // The racing booking is not visible yet; only the store's write sees it.
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(AppointmentWriteError::SlotTaken));
    let observer = Arc::clone(&ports.observer);
    let sleeps = Arc::clone(&ports.sleeps);
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    assert!(
        matches!(outcome, Err(BookError::SlotTaken)),
        "{:?}",
        outcome
    );
    assert_eq!(sleeps.load(Ordering::SeqCst), 4);
    // A busy lock is contention, not an outage.
    assert!(observer.lock_outages().is_empty());
}

#[tokio::test]
async fn lock_is_released_with_the_token_that_took_it_after_booking() {
    let mut ports = Ports::new();
    let journal = Arc::new(Mutex::new(Vec::new()));
    let taken: Arc<Mutex<Option<(LockKey, LockToken)>>> = Arc::default();
    let released: Arc<Mutex<Option<(LockKey, LockToken)>>> = Arc::default();
    let mut lock = MockSlotLock::new();
    let (j, t) = (Arc::clone(&journal), Arc::clone(&taken));
    lock.expect_try_acquire()
        .times(1)
        .withf(|key, _, ttl| {
            key.provider == provider_id()
                && key.start == slot()
                && *ttl == BookingSettings::default().lock_ttl
        })
        .returning(move |key, token, _| {
            j.lock().expect("not poisoned").push("acquire");
            *t.lock().expect("not poisoned") = Some((key.clone(), token.clone()));
            Ok(true)
        });
    let (j, r) = (Arc::clone(&journal), Arc::clone(&released));
    lock.expect_release().times(1).returning(move |key, token| {
        j.lock().expect("not poisoned").push("release");
        *r.lock().expect("not poisoned") = Some((key.clone(), token.clone()));
        Ok(())
    });
    ports.lock = Some(lock);
    ports.provider_found();
    ports.appointments.expect_active_in_range().times(0);
    let j = Arc::clone(&journal);
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(move |_, _| {
            j.lock().expect("not poisoned").push("insert");
            Ok(())
        });
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    assert!(outcome.is_ok(), "{:?}", outcome);
    assert_eq!(
        *journal.lock().expect("not poisoned"),
        vec!["acquire", "insert", "release"]
    );
    let taken = taken.lock().expect("not poisoned").clone();
    assert!(taken.is_some());
    assert_eq!(taken, *released.lock().expect("not poisoned"));
}

#[tokio::test]
async fn lock_is_released_when_the_insert_fails() {
    let mut ports = Ports::new();
    let mut lock = MockSlotLock::new();
    lock.expect_try_acquire()
        .times(1)
        .returning(|_, _, _| Ok(true));
    lock.expect_release()
        .times(1)
        .withf(|key, _| key.provider == provider_id() && key.start == slot())
        .returning(|_, _| Ok(()));
    ports.lock = Some(lock);
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(store_failure("connection reset by peer")));
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    assert!(
        matches!(outcome, Err(BookError::Unexpected(_))),
        "{:?}",
        outcome
    );
}

// ------------------------------------------------------------ idempotency

/// The idempotency store already holds `key` for `fingerprint` in `state`.
fn existing(ports: &mut Ports, fingerprint: Fingerprint, state: IdempotencyState) {
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .returning(move |key, _, _, _, _, _| {
            Ok(Reservation::Existing(Box::new(IdempotencyRecord {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
                state: state.clone(),
                created_at: now() - SignedDuration::from_hours(1),
                appointment: None,
            })))
        });
    ports.idempotency.expect_complete().times(0);
    ports.idempotency.expect_release().times(0);
}

/// Nothing may be read or written besides the idempotency store.
fn no_booking_attempted(ports: &mut Ports) {
    ports.providers.expect_get().times(0);
    ports.appointments.expect_active_in_range().times(0);
    ports.appointments.expect_insert().times(0);
}

#[tokio::test]
async fn idempotency_key_reused_with_another_request_books_nothing() {
    let mut ports = Ports::new();
    let earlier = AppointmentSnapshot::from(&booked());
    existing(
        &mut ports,
        Fingerprint("another body".to_owned()),
        IdempotencyState::Done(IdempotentOutcome::Booked {
            appointment: earlier,
        }),
    );
    no_booking_attempted(&mut ports);
    let service = ports.service();

    let (outcome, replay) = service.book(keyed(request(), "k-reused")).await;

    assert_eq!(replay, Replay::Fresh);
    assert!(
        matches!(outcome, Err(BookError::IdempotencyKeyReused)),
        "{:?}",
        outcome
    );
}

#[tokio::test]
async fn idempotent_replay_answers_the_stored_booking_without_the_stores() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-replay");
    let stored = AppointmentSnapshot::from(&booked());
    existing(
        &mut ports,
        request.fingerprint(),
        IdempotencyState::Done(IdempotentOutcome::Booked {
            appointment: stored.clone(),
        }),
    );
    no_booking_attempted(&mut ports);
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Replayed);
    assert_eq!(outcome.expect("the stored booking"), stored);
}

#[tokio::test]
async fn idempotent_replay_of_a_refusal_answers_the_same_refusal() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-replay-refusal");
    let earliest = now() - SignedDuration::from_mins(10);
    existing(
        &mut ports,
        request.fingerprint(),
        IdempotencyState::Done(IdempotentOutcome::Refused {
            refusal: BookRefusal::TooSoon { earliest },
        }),
    );
    no_booking_attempted(&mut ports);
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Replayed);
    assert!(
        matches!(outcome, Err(BookError::TooSoon { earliest: e }) if e == earliest),
        "{:?}",
        outcome
    );
}

#[tokio::test]
async fn a_refusal_is_remembered_under_its_key() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(AppointmentWriteError::PatientBusy));
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(Reservation::Reserved { replaced: None }));
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .withf(|key, outcome| {
            key.as_str() == "k-busy"
                && *outcome
                    == IdempotentOutcome::Refused {
                        refusal: BookRefusal::PatientBusy,
                    }
        })
        .returning(|_, _| Ok(()));
    ports.idempotency.expect_release().times(0);
    let service = ports.service();

    let (outcome, replay) = service.book(keyed(request(), "k-busy")).await;

    assert_eq!(replay, Replay::Fresh);
    assert!(
        matches!(outcome, Err(BookError::PatientBusy)),
        "{:?}",
        outcome
    );
}

#[tokio::test]
async fn a_booking_is_remembered_under_its_key() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(Reservation::Reserved { replaced: None }));
    let remembered: Arc<Mutex<Option<IdempotentOutcome>>> = Arc::default();
    let r = Arc::clone(&remembered);
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .returning(move |_, outcome| {
            *r.lock().expect("not poisoned") = Some(outcome.clone());
            Ok(())
        });
    ports.idempotency.expect_release().times(0);
    let service = ports.service();

    let (outcome, _) = service.book(keyed(request(), "k-ok")).await;

    let snapshot = outcome.expect("booked");
    assert_eq!(
        *remembered.lock().expect("not poisoned"),
        Some(IdempotentOutcome::Booked {
            appointment: snapshot
        })
    );
}

#[tokio::test]
async fn a_booking_stands_when_its_key_cannot_be_completed() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(Reservation::Reserved { replaced: None }));
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .returning(|_, _| Err(anyhow!("idempotency table unreachable")));
    // The store's own overlap checks guard a retry once the lease lapses.
    ports.idempotency.expect_release().times(0);
    let observer = Arc::clone(&ports.observer);
    let service = ports.service();

    let (outcome, _) = service.book(keyed(request(), "k-complete-fails")).await;

    assert_eq!(outcome.expect("booked").start, slot());
    assert_eq!(
        observer.idempotency_outages(),
        vec!["idempotency table unreachable"]
    );
    assert!(observer.lock_outages().is_empty());
}

// ------------------------------- retries after a crash lost the answer

/// The record a crashed attempt of `request` left: reserved, never
/// answered, for the appointment `id`.
fn unanswered(request: &BookRequest, id: AppointmentId, age: SignedDuration) -> IdempotencyRecord {
    let (key, fingerprint) = request.idempotency.clone().expect("a keyed request");
    IdempotencyRecord {
        key,
        fingerprint,
        state: IdempotencyState::InProgress,
        created_at: now() - age,
        appointment: Some(id),
    }
}

/// The appointment store holds `appointment` (read by id only).
fn stored(ports: &mut Ports, appointment: &Appointment) {
    let a = appointment.clone();
    ports
        .appointments
        .expect_get()
        .withf(move |id| *id == a.id)
        .times(1)
        .return_once(move |_| Ok(Some(a)));
}

#[tokio::test]
async fn a_retry_within_the_lease_replays_the_booking_a_crash_left_unanswered() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-crash-in-lease");
    let earlier = booked();
    let record = unanswered(&request, earlier.id, SignedDuration::from_secs(2));
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .return_once(move |_, _, _, _, _, _| Ok(Reservation::Existing(Box::new(record))));
    stored(&mut ports, &earlier);
    let expected = IdempotentOutcome::Booked {
        appointment: AppointmentSnapshot::from(&earlier),
    };
    let remembered = expected.clone();
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .withf(move |key, outcome| key.as_str() == "k-crash-in-lease" && *outcome == remembered)
        .returning(|_, _| Ok(()));
    no_booking_attempted(&mut ports);
    let sleeps = Arc::clone(&ports.sleeps);
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Replayed);
    assert_eq!(
        outcome.expect("the earlier booking"),
        AppointmentSnapshot::from(&earlier)
    );
    assert_eq!(sleeps.load(Ordering::SeqCst), 0, "nothing to wait for");
}

#[tokio::test]
async fn a_retry_after_the_lease_replays_the_booking_a_crash_left_unanswered() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-crash-after-lease");
    let earlier = booked();
    let record = unanswered(&request, earlier.id, SignedDuration::from_secs(60));
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .return_once(move |_, _, _, _, _, _| {
            Ok(Reservation::Reserved {
                replaced: Some(Box::new(record)),
            })
        });
    stored(&mut ports, &earlier);
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .returning(|_, _| Ok(()));
    ports.idempotency.expect_release().times(0);
    no_booking_attempted(&mut ports);
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Replayed);
    assert_eq!(outcome.expect("the earlier booking").id, earlier.id);
}

#[tokio::test]
async fn a_retry_books_when_the_abandoned_attempt_booked_nothing() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-crash-before-insert");
    let never = AppointmentId::new();
    let record = unanswered(&request, never, SignedDuration::from_secs(60));
    let reserved_id: Arc<Mutex<Option<AppointmentId>>> = Arc::default();
    let r = Arc::clone(&reserved_id);
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .return_once(move |_, _, id, _, _, _| {
            *r.lock().expect("not poisoned") = id;
            Ok(Reservation::Reserved {
                replaced: Some(Box::new(record)),
            })
        });
    ports
        .appointments
        .expect_get()
        .withf(move |id| *id == never)
        .times(1)
        .returning(|_| Ok(None));
    ports.provider_found();
    ports.no_appointments_in_range();
    let inserted: Arc<Mutex<Option<AppointmentId>>> = Arc::default();
    let i = Arc::clone(&inserted);
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(move |a, _| {
            *i.lock().expect("not poisoned") = Some(a.id);
            Ok(())
        });
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .returning(|_, _| Ok(()));
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Fresh);
    let booked = outcome.expect("booked anew");
    assert_eq!(Some(booked.id), *inserted.lock().expect("not poisoned"));
    assert_eq!(
        Some(booked.id),
        *reserved_id.lock().expect("not poisoned"),
        "the appointment has the id its reservation named"
    );
}

#[tokio::test]
async fn a_duplicate_waiting_for_a_live_attempt_looks_for_its_booking_twice_only() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-waiting");
    let record = unanswered(&request, AppointmentId::new(), SignedDuration::from_secs(1));
    ports
        .idempotency
        .expect_reserve()
        .returning(move |_, _, _, _, _, _| Ok(Reservation::Existing(Box::new(record.clone()))));
    // Once when the record is first seen, once before giving up: not on
    // every poll.
    ports
        .appointments
        .expect_get()
        .times(2)
        .returning(|_| Ok(None));
    ports.idempotency.expect_complete().times(0);
    ports.idempotency.expect_release().times(0);
    no_booking_attempted(&mut ports);
    let sleeps = Arc::clone(&ports.sleeps);
    let service = ports.service();

    let (outcome, _) = service.book(request).await;

    assert!(
        matches!(outcome, Err(BookError::Unexpected(_))),
        "{:?}",
        outcome
    );
    assert!(sleeps.load(Ordering::SeqCst) > 2, "it polled the record");
}

#[tokio::test]
async fn another_request_under_an_abandoned_key_does_not_take_its_booking() {
    let mut ports = Ports::new();
    let request = keyed(request(), "k-crash-other-body");
    let mut record = unanswered(
        &request,
        AppointmentId::new(),
        SignedDuration::from_secs(60),
    );
    record.fingerprint = Fingerprint("another body".to_owned());
    ports
        .idempotency
        .expect_reserve()
        .times(1)
        .return_once(move |_, _, _, _, _, _| {
            Ok(Reservation::Reserved {
                replaced: Some(Box::new(record)),
            })
        });
    ports.appointments.expect_get().times(0);
    ports.provider_found();
    ports.no_appointments_in_range();
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    ports
        .idempotency
        .expect_complete()
        .times(1)
        .returning(|_, _| Ok(()));
    let service = ports.service();

    let (outcome, replay) = service.book(request).await;

    assert_eq!(replay, Replay::Fresh);
    assert!(outcome.is_ok(), "{:?}", outcome);
}

// ------------------------------------------------- overlaps are the store's

#[tokio::test]
async fn book_reads_no_appointments_and_leaves_overlaps_to_the_store() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.appointments.expect_active_in_range().times(0);
    ports
        .appointments
        .expect_insert()
        .times(1)
        .withf(|a, e| a.start == slot() && e.event_type == EventType::Requested)
        .returning(|_, _| Ok(()));
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    assert!(outcome.is_ok(), "{:?}", outcome);
}

#[tokio::test]
async fn book_answers_the_stores_refusal() {
    let mut ports = Ports::new();
    ports.provider_found();
    ports.appointments.expect_active_in_range().times(0);
    ports
        .appointments
        .expect_insert()
        .times(1)
        .returning(|_, _| Err(AppointmentWriteError::SlotTaken));
    let service = ports.service();

    let (outcome, _) = service.book(request()).await;

    assert!(
        matches!(outcome, Err(BookError::SlotTaken)),
        "{:?}",
        outcome
    );
}
