//! The contract suites against the DynamoDB adapters, on the DynamoDB of
//! moto's server at `TEST_AWS_ENDPOINT_URL` (for example
//! `http://127.0.0.1:4566`). Without the variable the tests say they were
//! skipped and pass, except in CI (`CI=true`), where a missing server is a
//! failure.
//!
//! Every test uses its own tables, `cita-test-<random>-…`, and deletes them
//! when it ends (a guard does it even when the test panics). The server may
//! be shared with other suites running at the same time, so nothing here
//! ever resets it.
//!
//! # One request at a time per test
//!
//! moto applies a `TransactWriteItems` by snapshotting the tables it names
//! (a deep copy), writing item by item, and on a failed condition restoring
//! the snapshot. Its server handles requests on parallel threads without a
//! lock around that, so two transactions in flight at once can interleave:
//! a failing one restores a snapshot taken before the other committed and
//! silently erases that commit, and a plain read can see a write that is
//! then rolled back. (Run 64 threads of conditional transactions against
//! one item of a table holding a few hundred items: more than one commits.)
//! Real DynamoDB gives each request, and each transaction as a whole,
//! serializable isolation. The tests restore that property by letting each
//! test's client have one request in flight at a time ([`OneAtATime`]),
//! which is a legal schedule of what DynamoDB does; the adapter's
//! read–check–commit cycles, which span several requests, still interleave
//! freely across the racing tasks, which is what the races test.
#![cfg(feature = "dynamodb")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use cita_adapters::dynamodb::aws_config::{self, BehaviorVersion, SdkConfig};
use cita_adapters::dynamodb::aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use cita_adapters::dynamodb::aws_sdk_dynamodb::config::{
    ConfigBag, Credentials, Intercept, RuntimeComponents,
};
use cita_adapters::dynamodb::aws_sdk_dynamodb::error::BoxError;
use cita_adapters::dynamodb::aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use cita_adapters::dynamodb::aws_sdk_dynamodb::{self, Client};
use cita_adapters::dynamodb::{
    DynamoAppointmentStore, DynamoDatabase, DynamoIdempotencyStore, DynamoProviderStore,
    TableNames, TableState,
};
use cita_core::booking::{Appointment, AppointmentStatus, AppointmentStore, AppointmentWriteError};
use cita_core::events::{EventEnvelope, EventType, Outbox};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use cita_core::slots::BufferMinutes;
use cita_tests::contracts;
use cita_tests::races::{below, pick, race, tally};
use cita_tests::servers::server_url;
use jiff::{SignedDuration, Timestamp};

type Item = std::collections::HashMap<String, AttributeValue>;

/// Everything explicit, so nothing probes profiles or instance metadata.
async fn sdk_config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

/// Lets one request of a client be in flight at a time (see the module
/// documentation for why moto needs it), first come first served: a task
/// that just finished a request queues behind those already waiting, so
/// racing tasks' requests interleave as they would on a server that runs
/// them concurrently, instead of one task running its whole
/// read–check–commit cycle alone.
///
/// A ticket is taken before each attempt and the next one called after
/// it, which the SDK pairs on every path, failures included. Waiting blocks
/// a thread, so it happens in `block_in_place`: the runtime hands this
/// worker's other tasks to another thread meanwhile, and the request being
/// served keeps running. One task must never have two requests in flight
/// at once (it would wait for itself); the adapter never does that.
#[derive(Debug, Clone, Default)]
struct OneAtATime(Arc<(Mutex<Tickets>, Condvar)>);

/// A ticket lock's counters.
#[derive(Debug, Default)]
struct Tickets {
    /// The next ticket to hand out.
    next: u64,
    /// The ticket whose request may run.
    serving: u64,
}

impl Intercept for OneAtATime {
    fn name(&self) -> &'static str {
        "OneAtATime"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (tickets, called) = &*self.0;
        tokio::task::block_in_place(|| {
            let mut t = tickets.lock().unwrap_or_else(PoisonError::into_inner);
            let mine = t.next;
            t.next += 1;
            while t.serving != mine {
                t = called.wait(t).unwrap_or_else(PoisonError::into_inner);
            }
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (tickets, called) = &*self.0;
        tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .serving += 1;
        called.notify_all();
        Ok(())
    }
}

/// A client of `config` whose requests pass through `gate`.
fn gated_client(config: &SdkConfig, gate: &OneAtATime) -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(gate.clone())
            .build(),
    )
}

fn unique_prefix() -> String {
    format!("cita-test-{}", uuid::Uuid::new_v4().simple())
}

/// Deletes a prefix's tables when dropped.
struct Cleanup {
    url: String,
    tables: TableNames,
}

impl Drop for Cleanup {
    /// Runs on a thread of its own with its own runtime and client: this
    /// runs in `Drop`, possibly while a test's runtime is unwinding.
    fn drop(&mut self) {
        let url = self.url.clone();
        let names: Vec<String> = self.tables.all().map(str::to_owned).to_vec();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let client = Client::new(&sdk_config(&url).await);
                let mut failures = Vec::new();
                for name in names {
                    match client.delete_table().table_name(&name).send().await {
                        Ok(_) => {}
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
                        Err(e) => failures.push(format!(
                            "{name}: {}",
                            aws_sdk_dynamodb::error::DisplayErrorContext(e)
                        )),
                    }
                }
                failures
            })
        })
        .join();
        match done {
            Ok(failures) => {
                for f in failures {
                    eprintln!("could not delete test table {f}");
                }
            }
            Err(_) => eprintln!("could not delete test tables: the deleting thread panicked"),
        }
    }
}

/// A test's own tables, created, and deleted at the end.
struct Scratch {
    db: DynamoDatabase,
    config: SdkConfig,
    gate: OneAtATime,
    prefix: String,
    _cleanup: Cleanup,
}

impl Scratch {
    async fn new(test: &str) -> Option<Self> {
        let url = server_url("TEST_AWS_ENDPOINT_URL", test)?;
        let config = sdk_config(&url).await;
        let gate = OneAtATime::default();
        let prefix = unique_prefix();
        let db = DynamoDatabase::from_client(gated_client(&config, &gate), &prefix)
            .expect("a valid prefix");
        let cleanup = Cleanup {
            url,
            tables: db.tables().clone(),
        };
        db.ensure_tables()
            .await
            .unwrap_or_else(|e| panic!("creating the tables of {prefix}: {e:#}"));
        Some(Self {
            db,
            config,
            gate,
            prefix,
            _cleanup: cleanup,
        })
    }

    /// Another client of the same tables, like another process (sharing
    /// the gate: it stands for the server's isolation, not the client's).
    fn second_client(&self) -> DynamoDatabase {
        DynamoDatabase::from_client(gated_client(&self.config, &self.gate), &self.prefix)
            .expect("a valid prefix")
    }
}

/// Every item of a table (strongly consistent), straight from DynamoDB.
async fn scan(db: &DynamoDatabase, table: &str) -> Vec<Item> {
    let mut pages = db
        .client()
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut items = Vec::new();
    while let Some(page) = pages.try_next().await.expect("the scan runs") {
        items.extend(page.items().iter().cloned());
    }
    items
}

fn s<'a>(item: &'a Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s,
        other => panic!("attribute {name} is not a string: {other:?}"),
    }
}

fn n(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("an integer"),
        other => panic!("attribute {name} is not a number: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_store() {
    let Some(s) = Scratch::new("provider_store").await else {
        return;
    };
    contracts::provider_store_contract(Arc::new(DynamoProviderStore::new(&s.db))).await;
}

/// The whole suite, the 64-way races of one slot and of one patient included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_and_outbox() {
    let Some(s) = Scratch::new("appointment_store_and_outbox").await else {
        return;
    };
    let store = Arc::new(DynamoAppointmentStore::new(&s.db));
    contracts::appointment_store_contract(store.clone(), store).await;
}

/// Two clients of one set of tables behave like two processes: the
/// tables, not the client, refuse overlaps and order the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_shared_by_two_clients() {
    let Some(s) = Scratch::new("appointment_store_shared_by_two_clients").await else {
        return;
    };
    let other = s.second_client();
    let a = Arc::new(DynamoAppointmentStore::new(&s.db));
    let b = Arc::new(DynamoAppointmentStore::new(&other));
    contracts::appointment_store_contract(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store() {
    let Some(s) = Scratch::new("idempotency_store").await else {
        return;
    };
    contracts::idempotency_store_contract(Arc::new(DynamoIdempotencyStore::new(&s.db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_finds_the_booking_whose_answer_was_lost() {
    let Some(s) = Scratch::new("lost_answer").await else {
        return;
    };
    contracts::lost_answer_contract(
        Arc::new(DynamoProviderStore::new(&s.db)),
        Arc::new(DynamoAppointmentStore::new(&s.db)),
        Arc::new(DynamoIdempotencyStore::new(&s.db)),
    )
    .await;
}

/// `ensure_tables` creates the five tables once, reports them present
/// afterwards (also when two runs race), and refuses a table with other
/// keys; `ping` needs the tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ensure_tables_is_idempotent_and_ping_needs_the_tables() {
    let Some(url) = server_url(
        "TEST_AWS_ENDPOINT_URL",
        "ensure_tables_is_idempotent_and_ping_needs_the_tables",
    ) else {
        return;
    };
    let config = sdk_config(&url).await;
    let db = DynamoDatabase::new(&config, &unique_prefix()).expect("a valid prefix");
    let _cleanup = Cleanup {
        url: url.clone(),
        tables: db.tables().clone(),
    };
    assert!(
        db.ping().await.is_err(),
        "ping fails before the tables exist"
    );

    let names: Vec<String> = db.tables().all().map(str::to_owned).to_vec();
    let first = db.ensure_tables().await.expect("the first run creates");
    assert_eq!(
        first,
        names
            .iter()
            .map(|n| (n.clone(), TableState::Created))
            .collect::<Vec<_>>(),
        "the first run creates every table"
    );
    let second = db.ensure_tables().await.expect("the second run succeeds");
    assert_eq!(
        second,
        names
            .iter()
            .map(|n| (n.clone(), TableState::AlreadyPresent))
            .collect::<Vec<_>>(),
        "the second run finds every table present"
    );
    db.ping()
        .await
        .expect("ping succeeds once the tables exist");
    for name in &names {
        let table = db
            .client()
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe")
            .table
            .expect("a description");
        assert_eq!(
            table.billing_mode_summary().and_then(|b| b.billing_mode()),
            Some(&BillingMode::PayPerRequest),
            "{name} is billed on demand"
        );
    }
    let ttl = db
        .client()
        .describe_time_to_live()
        .table_name(&db.tables().idempotency)
        .send()
        .await
        .expect("describe time to live");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("expires_at"),
        "idempotency records expire by time to live"
    );

    // Two runs at once on fresh tables: each table is created by exactly
    // one. (Through the gate: moto's CreateTable is not atomic either.)
    let racing = DynamoDatabase::from_client(
        gated_client(&config, &OneAtATime::default()),
        &unique_prefix(),
    )
    .expect("a valid prefix");
    let _cleanup_racing = Cleanup {
        url: url.clone(),
        tables: racing.tables().clone(),
    };
    // Separate tasks: a task waiting for the gate blocks its thread, so two
    // requests of one task must not wait for each other.
    let runs = [racing.clone(), racing.clone()]
        .map(|db| tokio::spawn(async move { db.ensure_tables().await }));
    let [a, b] = runs;
    let a = a.await.expect("no panic").expect("one run");
    let b = b.await.expect("no panic").expect("the other run");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        let created = [x.1, y.1]
            .iter()
            .filter(|s| **s == TableState::Created)
            .count();
        assert_eq!(
            created, 1,
            "{}: created by exactly one run: {x:?} {y:?}",
            x.0
        );
    }

    // A table of the same name with another key is refused, not used.
    let clash = DynamoDatabase::new(&config, &unique_prefix()).expect("a valid prefix");
    let _cleanup_clash = Cleanup {
        url,
        tables: clash.tables().clone(),
    };
    clash
        .client()
        .create_table()
        .table_name(&clash.tables().providers)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("a key"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("an attribute"),
        )
        .send()
        .await
        .expect("creating a foreign table");
    let refused = clash.ensure_tables().await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("key schema")),
        "a providers table keyed by another attribute is refused: {refused:?}"
    );
}

/// Concurrent writers per race.
const RACERS: usize = 64;

fn pending(
    provider: &ProviderId,
    patient: &PatientId,
    start: Timestamp,
    length: SignedDuration,
    buffer: u32,
) -> Appointment {
    let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("in range");
    Appointment {
        id: AppointmentId::new(),
        provider_id: provider.clone(),
        patient_id: patient.clone(),
        country: CountryCode::PE,
        start,
        end: start + length,
        buffer: BufferMinutes::new(buffer).expect("valid buffer"),
        status: AppointmentStatus::Pending,
        version: Version::FIRST,
        notes: None,
        cancel_reason: None,
        created_at: now,
        updated_at: now,
    }
}

async fn insert_all(
    store: &Arc<dyn AppointmentStore>,
    candidates: &[Appointment],
) -> Vec<Result<(), AppointmentWriteError>> {
    let s = Arc::clone(store);
    race(candidates.to_vec(), move |a: Appointment| {
        let s = Arc::clone(&s);
        async move {
            let ev = EventEnvelope::for_appointment(EventType::Requested, &a, a.updated_at);
            s.insert(&a, &ev).await
        }
    })
    .await
}

/// 64 concurrent bookings of one slot at one provider, by 64 patients:
/// exactly one is accepted, 63 are `SlotTaken`, and the tables hold one
/// appointment, one outbox entry and one hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_slot_sixty_four_bookings_one_winner() {
    let Some(s) = Scratch::new("one_slot_sixty_four_bookings_one_winner").await else {
        return;
    };
    let store: Arc<dyn AppointmentStore> = Arc::new(DynamoAppointmentStore::new(&s.db));
    let provider = ProviderId::parse("one-slot").expect("valid id");
    let start: Timestamp = "2031-03-03T10:00:00Z".parse().expect("valid instant");
    let candidates: Vec<Appointment> = (0..RACERS)
        .map(|i| {
            let patient = PatientId::parse(&format!("patient-{i}")).expect("valid id");
            pending(
                &provider,
                &patient,
                start,
                SignedDuration::from_mins(30),
                10,
            )
        })
        .collect();
    let results = insert_all(&store, &candidates).await;
    assert_eq!(
        tally(&results),
        BTreeMap::from([("ok", 1), ("slot_taken", RACERS - 1)]),
        "exactly one booking wins and every other is SlotTaken"
    );
    let appointments = scan(&s.db, &s.db.tables().appointments).await;
    assert_eq!(appointments.len(), 1, "one appointment is stored");
    let winner = candidates
        .iter()
        .zip(&results)
        .find(|(_, r)| r.is_ok())
        .map(|(a, _)| a)
        .expect("a winner");
    assert_eq!(
        s.db.client()
            .scan()
            .table_name(&s.db.tables().outbox)
            .send()
            .await
            .expect("scan")
            .count(),
        1,
        "one outbox entry"
    );
    assert_eq!(
        store.get(winner.id).await.expect("get").as_ref(),
        Some(winner)
    );
    assert_eq!(
        holds(&s.db).await,
        expected_holds(std::slice::from_ref(winner)),
        "the occupancy items hold exactly the winner"
    );
}

/// Every pair of active appointments that overlap for their provider
/// (`[start, end + buffer)`, computed here from the stored start, end and
/// buffer) or for their patient (`[start, end)`), from a full scan.
fn overlapping_pairs(items: &[Item]) -> Vec<(String, String, &'static str)> {
    let active: Vec<&Item> = items
        .iter()
        .filter(|i| s(i, "status") != "cancelled")
        .collect();
    let mut pairs = Vec::new();
    for (i, a) in active.iter().enumerate() {
        for b in &active[i + 1..] {
            let (a0, a1, ab) = (
                n(a, "start_ms"),
                n(a, "end_ms"),
                n(a, "buffer_minutes") * 60_000,
            );
            let (b0, b1, bb) = (
                n(b, "start_ms"),
                n(b, "end_ms"),
                n(b, "buffer_minutes") * 60_000,
            );
            if s(a, "provider_id") == s(b, "provider_id") && a0 < b1 + bb && b0 < a1 + ab {
                pairs.push((s(a, "id").to_owned(), s(b, "id").to_owned(), "provider"));
            }
            if s(a, "patient_id") == s(b, "patient_id") && a0 < b1 && b0 < a1 {
                pairs.push((s(a, "id").to_owned(), s(b, "id").to_owned(), "patient"));
            }
        }
    }
    pairs
}

/// A hold as the occupancy table should list it: (item key, appointment,
/// start ms, end ms).
type HoldRow = (String, String, i64, i64);

/// Every hold of the occupancy table, from a full scan.
async fn holds(db: &DynamoDatabase) -> BTreeSet<HoldRow> {
    let mut rows = BTreeSet::new();
    for item in scan(db, &db.tables().occupancy).await {
        let Some(AttributeValue::L(list)) = item.get("holds") else {
            panic!("an occupancy item without holds: {item:?}");
        };
        for h in list {
            let AttributeValue::M(h) = h else {
                panic!("a hold that is not a map: {h:?}");
            };
            assert!(
                rows.insert((
                    s(&item, "key").to_owned(),
                    s(h, "id").to_owned(),
                    n(h, "s"),
                    n(h, "e")
                )),
                "a hold listed twice"
            );
        }
    }
    rows
}

/// The holds the active appointments among `appointments` should have:
/// each in every UTC day its provider hold and its patient hold touch.
fn expected_holds(appointments: &[Appointment]) -> BTreeSet<HoldRow> {
    const DAY: i64 = 86_400_000;
    let date = |day: i64| {
        Timestamp::from_millisecond(day * DAY)
            .expect("in range")
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let mut rows = BTreeSet::new();
    for a in appointments.iter().filter(|a| a.status.is_active()) {
        let id = a.id.to_string();
        let (start, end) = (a.start.as_millisecond(), a.end.as_millisecond());
        let hold_end = end + i64::from(a.buffer.get()) * 60_000;
        for (kind, owner, e) in [
            ("provider", a.provider_id.as_str(), hold_end),
            ("patient", a.patient_id.as_str(), end),
        ] {
            for day in start.div_euclid(DAY)..=(e - 1).div_euclid(DAY) {
                rows.insert((
                    format!("{kind}#{owner}#{}", date(day)),
                    id.clone(),
                    start,
                    e,
                ));
            }
        }
    }
    rows
}

/// Rounds of 64 concurrent inserts of overlapping times of mixed lengths
/// (15 minutes to 8 hours, some starts off the minute) and buffers (0 to
/// 240 minutes) around midnight UTC, at 3 providers for 8 patients, then
/// 64 concurrent reschedules and cancellations of what was booked (several
/// per booking, so versions conflict too). After each race a full scan
/// finds no two active appointments overlapping for a provider or a
/// patient, exactly the accepted writes stored, every refusal explained,
/// and the occupancy items holding exactly the active appointments' holds:
/// cancelled and moved appointments released theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_two_active_appointments_overlap_after_racing_writes() {
    let Some(s) = Scratch::new("no_two_active_appointments_overlap_after_racing_writes").await
    else {
        return;
    };
    let store: Arc<dyn AppointmentStore> = Arc::new(DynamoAppointmentStore::new(&s.db));
    let outbox = DynamoAppointmentStore::new(&s.db);
    // Two hours before midnight UTC: holds cross into the next day.
    let window: Timestamp = "2031-03-03T22:00:00Z".parse().expect("valid instant");
    let random_start = || {
        let offset = pick(&[0_i64, 0, 0, 7, 59_999]);
        window
            + SignedDuration::from_mins(i64::try_from(below(240)).expect("fits"))
            + SignedDuration::from_millis(offset)
    };
    let random_length = || SignedDuration::from_mins(pick(&[15_i64, 15, 30, 30, 45, 60, 90, 480]));
    let random_buffer = || pick(&[0_u32, 0, 5, 10, 240]);
    let mut booked: Vec<Appointment> = Vec::new();
    for round in 0..2 {
        let providers: Vec<ProviderId> = (0..3)
            .map(|i| ProviderId::parse(&format!("race-{round}-provider-{i}")).expect("id"))
            .collect();
        let patients: Vec<PatientId> = (0..8)
            .map(|i| PatientId::parse(&format!("race-{round}-patient-{i}")).expect("id"))
            .collect();
        let candidates: Vec<Appointment> = (0..RACERS)
            .map(|_| {
                pending(
                    &pick(&providers),
                    &pick(&patients),
                    random_start(),
                    random_length(),
                    random_buffer(),
                )
            })
            .collect();
        let results = insert_all(&store, &candidates).await;
        let counts = tally(&results);
        assert!(
            counts.get("ok").copied().unwrap_or(0) >= 3,
            "round {round}: every provider's first booking can win: {counts:?}"
        );
        let winners: Vec<Appointment> = candidates
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(a, _)| a.clone())
            .collect();
        for (a, r) in candidates.iter().zip(&results) {
            match r {
                // The insert also applies the refused row's own buffer after
                // a winner's end (`Appointment::blocks_booking`).
                Err(AppointmentWriteError::SlotTaken) => assert!(
                    winners
                        .iter()
                        .any(|w| w.provider_id == a.provider_id && w.blocks_booking(a)),
                    "round {round}: SlotTaken for {a:?} without a stored appointment blocking it at its provider"
                ),
                Err(AppointmentWriteError::PatientBusy) => assert!(
                    winners
                        .iter()
                        .any(|w| w.patient_id == a.patient_id && w.patient_overlaps(a)),
                    "round {round}: PatientBusy for {a:?} without a stored overlap of its patient"
                ),
                _ => {}
            }
        }
        booked.extend(winners.iter().cloned());
        let items = scan(&s.db, &s.db.tables().appointments).await;
        assert_eq!(
            overlapping_pairs(&items),
            vec![],
            "round {round}: no two active appointments overlap after racing inserts ({counts:?})"
        );
        assert_eq!(
            items.len(),
            booked.len(),
            "round {round}: exactly the accepted inserts are stored"
        );
        let pending_events: BTreeSet<_> = outbox
            .unpublished(100_000)
            .await
            .expect("unpublished")
            .into_iter()
            .map(|e| e.event.appointment_id)
            .collect();
        for a in &candidates {
            assert_eq!(
                pending_events.contains(&a.id),
                winners.iter().any(|w| w.id == a.id),
                "round {round}: exactly the winners' events are in the outbox"
            );
        }
        assert_eq!(
            holds(&s.db).await,
            expected_holds(&booked),
            "round {round}: the occupancy items hold exactly the active appointments"
        );

        // Move or cancel every booking at once, several writers per booking.
        let moves: Vec<(Appointment, Appointment)> = (0..RACERS)
            .map(|i| {
                let from = winners[i % winners.len()].clone();
                let at = from.updated_at + SignedDuration::from_millis(1);
                let to = if below(4) == 0 {
                    from.cancel(None, at).expect("not cancelled")
                } else {
                    let start = random_start();
                    from.reschedule(
                        start,
                        start + random_length(),
                        BufferMinutes::new(random_buffer()).expect("valid"),
                        at,
                    )
                    .expect("not cancelled")
                };
                (from, to)
            })
            .collect();
        let st = Arc::clone(&store);
        let results = race(
            moves.clone(),
            move |(from, to): (Appointment, Appointment)| {
                let st = Arc::clone(&st);
                async move {
                    let kind = if to.status.is_active() {
                        EventType::Rescheduled
                    } else {
                        EventType::Cancelled
                    };
                    let ev = EventEnvelope::for_appointment(kind, &to, to.updated_at);
                    st.update(&to, from.version, Some(&ev)).await
                }
            },
        )
        .await;
        let counts = tally(&results);
        let items = scan(&s.db, &s.db.tables().appointments).await;
        assert_eq!(
            overlapping_pairs(&items),
            vec![],
            "round {round}: no two active appointments overlap after racing moves ({counts:?})"
        );
        let mut won: BTreeMap<AppointmentId, Appointment> = BTreeMap::new();
        for ((_, to), r) in moves.into_iter().zip(&results) {
            if r.is_ok() {
                assert!(
                    won.insert(to.id, to).is_none(),
                    "round {round}: two moves of one version both won"
                );
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
        assert_eq!(
            holds(&s.db).await,
            expected_holds(&booked),
            "round {round}: cancelled and moved appointments released their old holds"
        );
    }
}
