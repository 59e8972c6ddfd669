//! The contract suites against the MySQL / MariaDB adapters, each on a
//! fresh database of the server at `TEST_MYSQL_URL` (e.g.
//! `mysql://root@127.0.0.1:3306/mysql`; the database named there is only
//! used to connect as an administrator). Every test creates
//! `cita_test_<random>` (a country store's ends in `_pe`, like seed 000's
//! country databases) and drops it at the end, pass or fail.
//!
//! Without `TEST_MYSQL_URL` the tests say they were skipped and pass,
//! unless `CI=true`: in CI a missing server is a failure.
#![cfg(feature = "mysql")]

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;

use cita_adapters::mysql::sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use cita_adapters::mysql::sqlx::{self, Connection as _, Executor as _};
use cita_adapters::mysql::{
    MySqlAppointmentStore, MySqlCountryStore, MySqlDatabase, MySqlIdempotencyStore,
    MySqlPoolSettings, MySqlProviderStore,
};
use cita_core::booking::{Appointment, AppointmentStatus, AppointmentStore};
use cita_core::events::{EventEnvelope, EventType};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore as _};
use cita_core::routing::CountryCode;
use cita_core::slots::{BufferMinutes, Schedule, Zone};
use cita_tests::contracts;
use cita_tests::races::{below, pick, race, tally};
use cita_tests::servers::server_url;
use jiff::{SignedDuration, Timestamp};

/// Runs one statement on an administrator connection to the server (the
/// URL's own database).
async fn admin(server: &str, statement: String) {
    let mut conn = MySqlConnection::connect(server)
        .await
        .expect("TEST_MYSQL_URL accepts connections");
    conn.execute(sqlx::AssertSqlSafe(statement.clone()))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    conn.close().await.expect("closing the admin connection");
}

/// Runs `body` on a fresh migrated database named `cita_test_<random><suffix>`,
/// then drops the database whether `body` passed or panicked (and then
/// panics with `body`'s panic).
async fn with_database<F, Fut>(test: &str, suffix: &str, body: F)
where
    F: FnOnce(MySqlDatabase, MySqlConnectOptions) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = server_url("TEST_MYSQL_URL", test) else {
        return;
    };
    // `[a-z0-9_]` only, so safe to splice into DDL.
    let name = format!("cita_test_{}{suffix}", uuid::Uuid::new_v4().simple());
    admin(&server, format!("CREATE DATABASE {name}")).await;
    let options = MySqlConnectOptions::from_str(&server)
        .expect("TEST_MYSQL_URL parses")
        .database(&name);
    let outcome: Result<(), Box<dyn Any + Send>> =
        match MySqlDatabase::connect_with(options.clone(), &settings()).await {
            Ok(db) => {
                let outcome = tokio::spawn(body(db.clone(), options)).await;
                db.close().await;
                outcome.map_err(tokio::task::JoinError::into_panic)
            }
            Err(e) => Err(Box::new(format!("connecting to {name}: {e:#}"))),
        };
    admin(&server, format!("DROP DATABASE IF EXISTS {name}")).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Enough connections that 64 racing writers really overlap on the server.
fn settings() -> MySqlPoolSettings {
    MySqlPoolSettings {
        max_connections: 24,
        ..MySqlPoolSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_store() {
    with_database("provider_store", "", |db, _| async move {
        contracts::provider_store_contract(Arc::new(MySqlProviderStore::new(&db))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_and_outbox() {
    with_database("appointment_store_and_outbox", "", |db, _| async move {
        let store = Arc::new(MySqlAppointmentStore::new(&db));
        contracts::appointment_store_contract(store.clone(), store).await;
    })
    .await;
}

/// Two pools on one database behave like two processes sharing it: the
/// lock rows, not the pool, serialise their writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_shared_by_two_pools() {
    with_database(
        "appointment_store_shared_by_two_pools",
        "",
        |db, options| async move {
            let other = MySqlDatabase::connect_with(options, &settings())
                .await
                .expect("second pool connects");
            let a = Arc::new(MySqlAppointmentStore::new(&db));
            let b = Arc::new(MySqlAppointmentStore::new(&other));
            contracts::appointment_store_contract(a, b).await;
            other.close().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store() {
    with_database("idempotency_store", "", |db, _| async move {
        contracts::idempotency_store_contract(Arc::new(MySqlIdempotencyStore::new(&db))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_finds_the_booking_whose_answer_was_lost() {
    with_database("lost_answer", "", |db, _| async move {
        contracts::lost_answer_contract(
            Arc::new(MySqlProviderStore::new(&db)),
            Arc::new(MySqlAppointmentStore::new(&db)),
            Arc::new(MySqlIdempotencyStore::new(&db)),
        )
        .await;
    })
    .await;
}

/// On a database named like a country's own (`…_pe`, as `cita_pe`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn country_store() {
    with_database("country_store", "_pe", |db, _| async move {
        contracts::country_store_contract(Arc::new(MySqlCountryStore::new(&db))).await;
    })
    .await;
}

#[tokio::test]
async fn connect_reruns_migrations_and_pings() {
    with_database(
        "connect_reruns_migrations_and_pings",
        "",
        |db, options| async move {
            db.ping().await.expect("ping answers");
            let again = MySqlDatabase::connect_with(options, &MySqlPoolSettings::default())
                .await
                .expect("a migrated database connects again");
            again.ping().await.expect("ping answers");
            let id = ProviderId::parse("nobody").expect("valid id");
            let got = MySqlProviderStore::new(&again)
                .get(&id)
                .await
                .expect("the schema is there");
            assert!(got.is_none());
            again.close().await;

            // What the stores rely on is set on every connection.
            let (timeout, mode): (u64, String) =
                sqlx::query_as("SELECT @@SESSION.innodb_lock_wait_timeout, @@SESSION.sql_mode")
                    .fetch_one(db.pool())
                    .await
                    .expect("session variables");
            assert_eq!(timeout, 5, "the lock wait timeout of the settings");
            assert!(mode.contains("STRICT_ALL_TABLES"), "strict mode: {mode}");
            // MySQL 8 and MariaDB 11.1+ name it `transaction_isolation`,
            // older MariaDB only `tx_isolation`.
            let isolation: String =
                match sqlx::query_scalar("SELECT @@SESSION.transaction_isolation")
                    .fetch_one(db.pool())
                    .await
                {
                    Ok(level) => level,
                    Err(_) => sqlx::query_scalar("SELECT @@SESSION.tx_isolation")
                        .fetch_one(db.pool())
                        .await
                        .expect("isolation level"),
                };
            assert_eq!(isolation, "READ-COMMITTED");

            let bad = MySqlDatabase::connect("not a url", &MySqlPoolSettings::default()).await;
            assert!(bad.is_err(), "an unusable URL is an error");
            let refused = MySqlDatabase::connect(
                "mysql://cita:secret-password@127.0.0.1:1/cita_pe",
                &MySqlPoolSettings {
                    acquire_timeout: std::time::Duration::from_secs(2),
                    ..MySqlPoolSettings::default()
                },
            )
            .await
            .expect_err("nothing listens on port 1");
            let message = format!("{refused:#}");
            assert!(
                message.contains("127.0.0.1:1/cita_pe") && !message.contains("secret-password"),
                "the error names the server, never the password: {message}"
            );
        },
    )
    .await;
}

/// MySQL reports rows *changed* unless the client asks for rows *matched*:
/// a versioned write of identical content must not look like a conflict.
#[tokio::test]
async fn a_versioned_put_of_identical_content_is_not_a_conflict() {
    with_database(
        "a_versioned_put_of_identical_content_is_not_a_conflict",
        "",
        |db, _| async move {
            let store = MySqlProviderStore::new(&db);
            let now =
                Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("in range");
            let p = Provider {
                id: ProviderId::parse("same-content").expect("valid id"),
                name: ProviderName::parse("Same").expect("valid name"),
                country: CountryCode::PE,
                schedule: Schedule::new(Zone::utc()),
                version: Version::FIRST,
                created_at: now,
                updated_at: now,
            };
            store.put(&p, None).await.expect("create");
            store
                .put(&p, Some(Version::FIRST))
                .await
                .expect("the same row again at the stored version is a write, not a conflict");
            assert_eq!(store.get(&p.id).await.expect("get"), Some(p));
        },
    )
    .await;
}

/// How many writers race in each round of [`no_two_active_appointments_overlap_after_racing_writes`].
const RACERS: usize = 64;

/// Every pair of active rows that overlap for their provider (holds:
/// `[start, end + buffer)`, computed here from the primary columns, not
/// from the adapter's `hold_until`) or for their patient (`[start, end)`),
/// straight from the table.
async fn overlapping_pairs(db: &MySqlDatabase) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT a.id, b.id FROM appointments a JOIN appointments b ON a.id < b.id \
         WHERE a.status <> 'cancelled' AND b.status <> 'cancelled' AND ( \
           (a.provider_id = b.provider_id \
             AND a.start_at < b.end_at + b.buffer_minutes * 60000 \
             AND b.start_at < a.end_at + a.buffer_minutes * 60000) \
           OR (a.patient_id = b.patient_id AND a.start_at < b.end_at AND b.start_at < a.end_at))",
    )
    .fetch_all(db.pool())
    .await
    .expect("the overlap query runs")
}

async fn active_count(db: &MySqlDatabase) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM appointments WHERE status <> 'cancelled'")
        .fetch_one(db.pool())
        .await
        .expect("the count runs")
}

/// Lock rows per owner must hold for ranges of any lengths, not only equal
/// slots: rounds of 64 concurrent inserts of 15/30/45/60-minute
/// appointments (0/5/10 minutes of buffer) at random minutes of one hour,
/// for 3 providers and 8 patients, then 64 concurrent reschedules and
/// cancellations of what was booked. After each round a query straight on
/// the table finds no two active appointments that overlap for a provider
/// or a patient, and exactly the accepted writes are active.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_two_active_appointments_overlap_after_racing_writes() {
    with_database(
        "no_two_active_appointments_overlap_after_racing_writes",
        "",
        |db, _| async move {
            let store: Arc<dyn AppointmentStore> = Arc::new(MySqlAppointmentStore::new(&db));
            let hour: Timestamp = "2031-03-03T10:00:00Z".parse().expect("valid instant");
            let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond())
                .expect("in range");
            let mut booked: Vec<Appointment> = Vec::new();
            for round in 0..3 {
                let providers: Vec<ProviderId> = (0..3)
                    .map(|i| ProviderId::parse(&format!("race-{round}-provider-{i}")).expect("id"))
                    .collect();
                let patients: Vec<PatientId> = (0..8)
                    .map(|i| PatientId::parse(&format!("race-{round}-patient-{i}")).expect("id"))
                    .collect();
                let candidates: Vec<Appointment> = (0..RACERS)
                    .map(|_| {
                        let start = hour + SignedDuration::from_mins(i64::try_from(below(60)).expect("fits"));
                        let minutes = pick(&[15_i64, 30, 45, 60]);
                        Appointment {
                            id: AppointmentId::new(),
                            provider_id: pick(&providers),
                            patient_id: pick(&patients),
                            country: CountryCode::PE,
                            start,
                            end: start + SignedDuration::from_mins(minutes),
                            buffer: BufferMinutes::new(pick(&[0, 5, 10])).expect("valid"),
                            status: AppointmentStatus::Pending,
                            version: Version::FIRST,
                            notes: None,
                            cancel_reason: None,
                            created_at: now,
                            updated_at: now,
                        }
                    })
                    .collect();
                let s = Arc::clone(&store);
                let results = race(candidates.clone(), move |a: Appointment| {
                    let s = Arc::clone(&s);
                    async move {
                        let ev = EventEnvelope::for_appointment(EventType::Requested, &a, a.updated_at);
                        s.insert(&a, &ev).await
                    }
                })
                .await;
                let counts = tally(&results);
                assert!(counts.get("ok").copied().unwrap_or(0) >= 3, "round {round}: every provider's first booking can win: {counts:?}");
                assert!(counts.get("ok").copied().unwrap_or(0) < RACERS, "round {round}: the race had losers: {counts:?}");
                let winners: Vec<Appointment> = candidates
                    .into_iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|(a, _)| a)
                    .collect();
                booked.extend(winners.iter().cloned());
                assert_eq!(
                    overlapping_pairs(&db).await,
                    vec![],
                    "round {round}: no two active appointments overlap after racing inserts ({counts:?})"
                );
                assert_eq!(
                    active_count(&db).await,
                    i64::try_from(booked.len()).expect("fits"),
                    "round {round}: exactly the accepted inserts are stored"
                );

                // Move (or cancel) every booking at once, to random times of the same hour.
                let moves: Vec<(Appointment, Appointment)> = (0..RACERS)
                    .map(|i| {
                        let from = winners[i % winners.len()].clone();
                        let to = if below(8) == 0 {
                            from.cancel(None, from.updated_at + SignedDuration::from_millis(1))
                                .expect("not cancelled")
                        } else {
                            let start = hour + SignedDuration::from_mins(i64::try_from(below(60)).expect("fits"));
                            from.reschedule(
                                start,
                                start + SignedDuration::from_mins(pick(&[15_i64, 30, 45, 60])),
                                BufferMinutes::new(pick(&[0, 5, 10])).expect("valid"),
                                from.updated_at + SignedDuration::from_millis(1),
                            )
                            .expect("not cancelled")
                        };
                        (from, to)
                    })
                    .collect();
                let s = Arc::clone(&store);
                let results = race(moves.clone(), move |(from, to): (Appointment, Appointment)| {
                    let s = Arc::clone(&s);
                    async move {
                        let kind = if to.status.is_active() { EventType::Rescheduled } else { EventType::Cancelled };
                        let ev = EventEnvelope::for_appointment(kind, &to, to.updated_at);
                        s.update(&to, from.version, Some(&ev)).await
                    }
                })
                .await;
                let counts = tally(&results);
                assert_eq!(
                    overlapping_pairs(&db).await,
                    vec![],
                    "round {round}: no two active appointments overlap after racing moves ({counts:?})"
                );
                // Several moves of one booking race; at most one of them wins.
                let mut won: BTreeMap<AppointmentId, Appointment> = BTreeMap::new();
                for ((_, to), r) in moves.into_iter().zip(&results) {
                    if r.is_ok() {
                        assert!(won.insert(to.id, to).is_none(), "round {round}: two moves of one version both won");
                    }
                }
                for a in &mut booked {
                    if let Some(to) = won.remove(&a.id) {
                        *a = to;
                    }
                    assert_eq!(
                        store.get(a.id).await.expect("get").as_ref(),
                        Some(&*a),
                        "round {round}: every booking is as its last accepted write left it"
                    );
                }
                booked.retain(|a| a.status.is_active());
                assert_eq!(
                    active_count(&db).await,
                    i64::try_from(booked.len()).expect("fits"),
                    "round {round}: exactly the accepted writes are active"
                );
            }
        },
    )
    .await;
}
