//! The contract suites against the PostgreSQL adapters, each on a fresh
//! database of the server named by `TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`; its role must be allowed
//! to create databases). Without the variable the tests say they were
//! skipped and pass, except in CI (`CI=true`), where a missing server is a
//! failure.
//!
//! Every test creates `cita_test_<random>` through that URL and drops it
//! when it ends (a guard does it even when the test panics), so runs and
//! tests never share data. A database, not a schema: the `btree_gist`
//! extension is per database and lives in one schema, so tests sharing a
//! database would share (and drop) it.
#![cfg(feature = "postgres")]

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use cita_adapters::postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use cita_adapters::postgres::sqlx::{self, AssertSqlSafe, PgPool};
use cita_adapters::postgres::{
    PoolSettings, PostgresAppointmentStore, PostgresCountryStore, PostgresDatabase,
    PostgresIdempotencyStore, PostgresProviderStore,
};
use cita_core::booking::{Appointment, AppointmentStatus, AppointmentStore, AppointmentWriteError};
use cita_core::events::{EventEnvelope, EventType, Outbox};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore};
use cita_core::routing::CountryCode;
use cita_core::slots::{BufferMinutes, Schedule, Zone};
use cita_tests::contracts;
use cita_tests::servers::server_url;
use jiff::{SignedDuration, Timestamp};

/// A freshly created database, migrated, dropped when this is dropped.
struct Scratch {
    db: PostgresDatabase,
    options: PgConnectOptions,
    admin: PgConnectOptions,
    name: String,
}

/// Enough connections for the races to be real races, few enough that the
/// tests of one run (two at a time by default) stay well inside the
/// server's `max_connections` (100 by default).
fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 16,
        acquire_timeout: Duration::from_secs(30),
        ..PoolSettings::default()
    }
}

async fn admin_pool(admin: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin.clone())
        .await
        .expect("the TEST_POSTGRES_URL server accepts connections")
}

impl Scratch {
    async fn new(test: &str) -> Option<Self> {
        let url = server_url("TEST_POSTGRES_URL", test)?;
        let admin = PgConnectOptions::from_str(&url).expect("TEST_POSTGRES_URL parses");
        let name = format!("cita_test_{}", uuid::Uuid::new_v4().simple());
        let pool = admin_pool(&admin).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("the test role may create databases");
        pool.close().await;
        let options = admin.clone().database(&name);
        let scratch = Self {
            // A failed connect drops the database itself: there is no guard yet.
            db: match PostgresDatabase::connect_with(options.clone(), settings()).await {
                Ok(db) => db,
                Err(e) => {
                    drop_database(&admin, &name);
                    panic!("connecting to and migrating {name}: {e:#}");
                }
            },
            options,
            admin,
            name,
        };
        Some(scratch)
    }

    /// Another, independent pool on the same database: another process.
    async fn second_pool(&self) -> PostgresDatabase {
        PostgresDatabase::connect_with(self.options.clone(), settings())
            .await
            .expect("a second pool connects and finds the schema migrated")
    }
}

/// Drops `name` from a thread of its own with its own runtime: this runs in
/// `Drop`, possibly while a test's runtime is unwinding.
fn drop_database(admin: &PgConnectOptions, name: &str) {
    let (admin, sql) = (
        admin.clone(),
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let pool = admin_pool(&admin).await;
            let dropped = sqlx::query(AssertSqlSafe(sql)).execute(&pool).await;
            pool.close().await;
            dropped.map(|_| ())
        })
    })
    .join();
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("could not drop test database {name}: {e}"),
        Err(_) => eprintln!("could not drop test database {name}: the dropping thread panicked"),
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop_database(&self.admin, &self.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_store() {
    let Some(s) = Scratch::new("provider_store").await else {
        return;
    };
    contracts::provider_store_contract(Arc::new(PostgresProviderStore::new(&s.db))).await;
    contracts::provider_store_contract(Arc::new(PostgresProviderStore::cached(&s.db))).await;
}

/// The whole suite, the 64-way races of one slot and of one patient included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_and_outbox() {
    let Some(s) = Scratch::new("appointment_store_and_outbox").await else {
        return;
    };
    let store = Arc::new(PostgresAppointmentStore::new(&s.db));
    contracts::appointment_store_contract(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store() {
    let Some(s) = Scratch::new("idempotency_store").await else {
        return;
    };
    contracts::idempotency_store_contract(Arc::new(PostgresIdempotencyStore::new(&s.db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_finds_the_booking_whose_answer_was_lost() {
    let Some(s) = Scratch::new("lost_answer").await else {
        return;
    };
    contracts::lost_answer_contract(
        Arc::new(PostgresProviderStore::cached(&s.db)),
        Arc::new(PostgresAppointmentStore::new(&s.db)),
        Arc::new(PostgresIdempotencyStore::new(&s.db)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn country_store() {
    let Some(s) = Scratch::new("country_store").await else {
        return;
    };
    contracts::country_store_contract(Arc::new(PostgresCountryStore::new(&s.db))).await;
}

/// Two pools on one database behave like two processes: the database, not
/// the pool, refuses overlaps and orders the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_shared_by_two_pools() {
    let Some(s) = Scratch::new("appointment_store_shared_by_two_pools").await else {
        return;
    };
    let other = s.second_pool().await;
    let a = Arc::new(PostgresAppointmentStore::new(&s.db));
    let b = Arc::new(PostgresAppointmentStore::new(&other));
    contracts::appointment_store_contract(a, b).await;
}

#[tokio::test]
async fn connect_pings_and_migrating_again_changes_nothing() {
    let Some(s) = Scratch::new("connect_pings_and_migrating_again_changes_nothing").await else {
        return;
    };
    s.db.ping().await.expect("ping");
    let again = s.second_pool().await;
    again.ping().await.expect("ping on a second pool");
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(s.db.pool())
        .await
        .expect("the migrations table");
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/adapters/migrations/postgres"
    ))
    .expect("the migrations folder")
    .filter(|f| {
        f.as_ref()
            .is_ok_and(|f| f.path().extension().is_some_and(|e| e == "sql"))
    })
    .count();
    assert!(files >= 5, "the migrations folder holds the migrations");
    assert_eq!(
        migrations,
        i64::try_from(files).expect("a few files"),
        "each migration applied once"
    );
    let timed = PostgresDatabase::connect_with(
        s.options.clone(),
        PoolSettings {
            statement_timeout: Some(Duration::from_millis(1500)),
            ..settings()
        },
    )
    .await
    .expect("connects with a statement timeout");
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(timed.pool())
        .await
        .expect("SHOW");
    assert_eq!(timeout, "1500ms", "the pool's statement timeout is set");
    timed.close().await;
    let url = format!(
        "postgres://nobody@{}:{}/{}",
        s.options.get_host(),
        s.options.get_port(),
        s.name
    );
    let refused = PostgresDatabase::connect(&url, settings()).await;
    assert!(refused.is_err(), "an unknown role is refused: {refused:?}");
    assert!(
        PostgresDatabase::connect("mysql://x", settings())
            .await
            .is_err(),
        "another scheme is refused"
    );
}

/// A tiny xorshift generator: the tests crate has no `rand`, and a seed
/// printed on failure makes a run reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Rounds of the mixed race, each on its own providers and patients.
const ROUNDS: usize = 4;
/// Concurrent inserts per round.
const RACERS: usize = 64;

/// Concurrent inserts of overlapping times of mixed lengths and buffers, at
/// three providers and for eight patients, starting anywhere within one
/// hour: afterwards a direct query finds no two active appointments of one
/// provider whose holds overlap and none of one patient whose times
/// overlap; every refusal is explained by an appointment that was stored,
/// and the outbox holds exactly the winners' events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mixed_inserts_never_leave_an_overlap() {
    let Some(s) = Scratch::new("concurrent_mixed_inserts_never_leave_an_overlap").await else {
        return;
    };
    let store: Arc<dyn AppointmentStore> = Arc::new(PostgresAppointmentStore::new(&s.db));
    let outbox = PostgresAppointmentStore::new(&s.db);
    let seed = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    ) | 1;
    let mut rng = Rng(seed);
    let day: Timestamp = "2031-03-03T09:00:00Z".parse().expect("valid instant");
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("in range");

    for round in 0..ROUNDS {
        let providers: Vec<ProviderId> = (0..3)
            .map(|i| ProviderId::parse(&format!("race-{round}-p{i}-{seed:x}")).expect("valid id"))
            .collect();
        let patients: Vec<PatientId> = (0..8)
            .map(|i| PatientId::parse(&format!("race-{round}-x{i}-{seed:x}")).expect("valid id"))
            .collect();
        let candidates: Vec<Appointment> = (0..RACERS)
            .map(|_| {
                let start = day + SignedDuration::from_mins(rng.below(60) as i64);
                let minutes = [15, 30, 45, 60][rng.below(4) as usize];
                let buffer = [0, 5, 10][rng.below(3) as usize];
                Appointment {
                    id: AppointmentId::new(),
                    provider_id: providers[rng.below(3) as usize].clone(),
                    patient_id: patients[rng.below(8) as usize].clone(),
                    country: CountryCode::PE,
                    start,
                    end: start + SignedDuration::from_mins(minutes),
                    buffer: BufferMinutes::new(buffer).expect("valid buffer"),
                    status: AppointmentStatus::Pending,
                    version: Version::FIRST,
                    notes: None,
                    cancel_reason: None,
                    created_at: now,
                    updated_at: now,
                }
            })
            .collect();

        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let tasks: Vec<_> = candidates
            .iter()
            .cloned()
            .map(|a| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let ev = EventEnvelope::for_appointment(EventType::Requested, &a, a.updated_at);
                    barrier.wait().await;
                    let r = store.insert(&a, &ev).await;
                    (r, ev)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(RACERS);
        for t in tasks {
            results.push(t.await.expect("racing task does not panic"));
        }

        let case = format!("seed {seed:#x}, round {round}");
        let winners: Vec<&Appointment> = candidates
            .iter()
            .zip(&results)
            .filter(|(_, (r, _))| r.is_ok())
            .map(|(a, _)| a)
            .collect();
        assert!(!winners.is_empty(), "{case}: someone wins");
        for (a, (r, _)) in candidates.iter().zip(&results) {
            match r {
                Ok(()) => {}
                // The store also applies the refused row's own buffer after
                // a winner's end (`Appointment::blocks_booking`).
                Err(AppointmentWriteError::SlotTaken) => assert!(
                    winners
                        .iter()
                        .any(|w| w.provider_id == a.provider_id && w.blocks_booking(a)),
                    "{case}: SlotTaken for {a:?} without an overlap at its provider"
                ),
                Err(AppointmentWriteError::PatientBusy) => assert!(
                    winners
                        .iter()
                        .any(|w| w.patient_id == a.patient_id && w.patient_overlaps(a)),
                    "{case}: PatientBusy for {a:?} without a stored overlap of its patient"
                ),
                Err(e) => panic!("{case}: unexpected result {e:?}"),
            }
            assert_eq!(
                store.get(a.id).await.expect("get succeeds").is_some(),
                r.is_ok(),
                "{case}: exactly the winners are stored"
            );
        }
        let pending: Vec<_> = outbox
            .unpublished(100_000)
            .await
            .expect("unpublished succeeds")
            .into_iter()
            .map(|e| e.event.event_id)
            .collect();
        for (r, ev) in &results {
            assert_eq!(
                pending.contains(&ev.event_id),
                r.is_ok(),
                "{case}: exactly the winners' events are in the outbox"
            );
        }
    }

    // Straight from the table, whatever the adapter believes.
    let clashes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT 'provider', a.id::text, b.id::text FROM appointments a \
           JOIN appointments b ON a.provider_id = b.provider_id AND a.id < b.id \
          WHERE a.status <> 'cancelled' AND b.status <> 'cancelled' \
            AND a.start_at < b.hold_until AND b.start_at < a.hold_until \
         UNION ALL \
         SELECT 'patient', a.id::text, b.id::text FROM appointments a \
           JOIN appointments b ON a.patient_id = b.patient_id AND a.id < b.id \
          WHERE a.status <> 'cancelled' AND b.status <> 'cancelled' \
            AND a.start_at < b.end_at AND b.start_at < a.end_at",
    )
    .fetch_all(s.db.pool())
    .await
    .expect("the overlap query runs");
    assert!(
        clashes.is_empty(),
        "seed {seed:#x}: overlapping active appointments: {clashes:?}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(s.db.pool())
        .await
        .expect("count");
    assert!(
        stored >= ROUNDS as i64,
        "seed {seed:#x}: every round stored some"
    );
}

/// Concurrent inserts share batches; a row the database refuses for a
/// reason of its own (here a duplicate id, a primary-key violation) rolls
/// its batch back, and then every row of it is written on its own: the
/// others are written, that one fails alone and writes nothing.
#[tokio::test]
async fn a_failing_row_does_not_take_its_batch_down() {
    let Some(s) = Scratch::new("a_failing_row_does_not_take_its_batch_down").await else {
        return;
    };
    let store = Arc::new(PostgresAppointmentStore::new(&s.db));
    let day: Timestamp = "2031-05-05T09:00:00Z".parse().expect("instant");
    let fresh = |i: i64| {
        contracts::appointment(
            &ProviderId::parse(&format!("batch-p{i}")).expect("id"),
            &PatientId::parse(&format!("batch-x{i}")).expect("id"),
            day + SignedDuration::from_mins(30 * i),
            30,
            0,
        )
    };
    let first = fresh(0);
    let ev = EventEnvelope::for_appointment(EventType::Requested, &first, first.updated_at);
    store.insert(&first, &ev).await.expect("the first insert");
    let mut rows: Vec<Appointment> = (1..16).map(fresh).collect();
    // Another provider, patient and time, but the first one's id.
    let mut duplicate = fresh(20);
    duplicate.id = first.id;
    rows.insert(7, duplicate.clone());
    let tasks: Vec<_> = rows
        .iter()
        .cloned()
        .map(|a| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let ev = EventEnvelope::for_appointment(EventType::Requested, &a, a.updated_at);
                (store.insert(&a, &ev).await, ev.event_id)
            })
        })
        .collect();
    let mut written = 0;
    let mut failed_events = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (Ok(()), _) => written += 1,
            (Err(AppointmentWriteError::Unexpected(_)), event) => failed_events.push(event),
            (Err(e), _) => panic!("unexpected refusal: {e}"),
        }
    }
    assert_eq!(written, 15, "every row but the duplicate is written");
    assert_eq!(failed_events.len(), 1, "the duplicate alone fails");
    assert_eq!(
        store.get(first.id).await.expect("get"),
        Some(first.clone()),
        "the first appointment is unchanged"
    );
    let pending = contracts::appointments::pending_events(store.as_ref()).await;
    assert_eq!(
        pending.len(),
        16,
        "the first insert's event and the 15 others'"
    );
    assert!(
        !pending.contains(&failed_events[0]),
        "the duplicate's event is not in the outbox"
    );
}

/// Waits (up to 10 s) until `pool`'s database has `n` sessions listening
/// for provider changes.
async fn listeners(admin: &PgPool, database: &str, n: i64) {
    for _ in 0..200 {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%cita_provider_changed%'",
        )
        .bind(database)
        .fetch_one(admin)
        .await
        .expect("pg_stat_activity");
        if listening == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} listening sessions on {database}");
}

/// Reads `id` through `store` until `done` says yes (up to 10 s).
async fn until_read(
    store: &PostgresProviderStore,
    id: &ProviderId,
    what: &str,
    done: impl Fn(&Provider) -> bool,
) {
    for _ in 0..200 {
        let p = store
            .get(id)
            .await
            .expect("get")
            .expect("the provider exists");
        if done(&p) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not seen within 10 s");
}

/// Reads `id` once more after the notifications of earlier writes have
/// surely arrived, so that the answer is kept (a read that overlaps a
/// notification is not).
async fn settle(store: &PostgresProviderStore, id: &ProviderId) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .get(id)
        .await
        .expect("get")
        .expect("the provider exists");
}

/// Runs `sql` with the providers' change trigger off: PostgreSQL announces
/// nothing.
async fn change_quietly(pool: &PgPool, sql: &'static str) {
    for step in [
        "ALTER TABLE providers DISABLE TRIGGER providers_notify_changed",
        sql,
        "ALTER TABLE providers ENABLE TRIGGER providers_notify_changed",
    ] {
        sqlx::query(step).execute(pool).await.expect(step);
    }
}

/// A cached store (another process's, on its own pool) keeps what it read,
/// sees another process's change once PostgreSQL announces it, and forgets
/// everything when its listening connection is lost (changes announced
/// meanwhile were not heard).
#[tokio::test]
async fn cached_providers_follow_other_processes() {
    let Some(s) = Scratch::new("cached_providers_follow_other_processes").await else {
        return;
    };
    let writer = PostgresProviderStore::new(&s.db);
    let other = s.second_pool().await;
    let cached = PostgresProviderStore::cached(&other);
    let admin = admin_pool(&s.admin).await;
    listeners(&admin, &s.name, 1).await;

    let id = ProviderId::parse("cached-provider").expect("id");
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("now");
    let v1 = Provider {
        id: id.clone(),
        name: ProviderName::parse("Cached").expect("name"),
        country: CountryCode::PE,
        schedule: Schedule::new(Zone::parse("America/Lima").expect("zone")),
        version: Version::FIRST,
        created_at: now,
        updated_at: now,
    };
    writer.put(&v1, None).await.expect("create");
    until_read(&cached, &id, "the created provider", |p| p == &v1).await;
    settle(&cached, &id).await;

    // A change PostgreSQL does not announce (its trigger off) is not seen:
    // the provider is served from the cache.
    change_quietly(
        s.db.pool(),
        "UPDATE providers SET name = 'Changed quietly' WHERE id = 'cached-provider'",
    )
    .await;
    let read = cached.get(&id).await.expect("get").expect("exists");
    assert_eq!(read, v1, "served from the cache");

    // An announced change by another process is seen.
    let mut v2 = writer.get(&id).await.expect("get").expect("exists");
    v2.version = Version::new(2).expect("version");
    writer
        .put(&v2, Some(Version::FIRST))
        .await
        .expect("replace");
    until_read(&cached, &id, "the announced change", |p| p == &v2).await;
    settle(&cached, &id).await;

    // Lost connection: a quiet change, then the listener's session is
    // killed; once it is back the cache starts empty.
    change_quietly(
        s.db.pool(),
        "UPDATE providers SET name = 'Changed while deaf' WHERE id = 'cached-provider'",
    )
    .await;
    assert_eq!(
        cached.get(&id).await.expect("get").expect("exists"),
        v2,
        "still served from the cache"
    );
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN%cita_provider_changed%'",
    )
    .bind(&s.name)
    .execute(&admin)
    .await
    .expect("terminate the listener");
    until_read(
        &cached,
        &id,
        "the change made while the listener was lost",
        |p| p.name.as_str() == "Changed while deaf",
    )
    .await;
    listeners(&admin, &s.name, 1).await;
    admin.close().await;
}
