//! End to end, seed 000's distributed path on real servers: moto's server
//! for SNS, SQS, EventBridge (and DynamoDB), MariaDB for the countries' own
//! databases, PostgreSQL or DynamoDB for the primary store. Each test
//! provisions its own resources (a random prefix), creates its own
//! databases, runs `cita-http` (in this process, `broker = aws`) and the
//! `cita-worker` binary's loops (child processes), and talks HTTP.
//!
//! Servers come from `TEST_AWS_ENDPOINT_URL`, `TEST_MYSQL_URL` and
//! `TEST_POSTGRES_URL` (`./scripts/test` starts them); without them the
//! tests say they were skipped and pass, except in CI (`CI=true`).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cita_adapters::aws::aws_config::{self, BehaviorVersion, SdkConfig};
use cita_adapters::aws::aws_sdk_sqs;
use cita_adapters::aws::{EventBridgeConfirmationPublisher, SnsEventPublisher, Topology};
use cita_adapters::select;
use cita_core::events::{
    AppointmentSnapshot, ConfirmationPublisher, EventEnvelope, EventPublisher, EventType,
};
use cita_core::ids::EventId;
use cita_core::routing::{CountryCode, CountryRouter};
use cita_http::Application;
use cita_http::config::{Broker, Config, SecretUrl};
use cita_tests::servers::{MySqlScratch, PgScratch, server_url};
use serde_json::{Value, json};

const WORKER: &str = env!("CARGO_BIN_EXE_cita-worker");
/// How long anything in these tests may take to happen.
const PATIENCE: Duration = Duration::from_secs(45);

/// Which primary store a cluster runs on.
enum PrimaryKind {
    Postgres(String),
    DynamoDb,
}

/// A running distributed Cita: its resources, databases, `cita-http` and
/// `cita-worker` children. Children are killed when this is dropped.
struct Cluster {
    prefix: String,
    endpoint: String,
    sdk: SdkConfig,
    primary_url: String,
    countries: MySqlScratch,
    _pg: Option<PgScratch>,
    http: String,
    client: reqwest::Client,
    stop_http: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    children: BTreeMap<String, Child>,
}

/// The servers, or `None` when the test skips.
fn servers(test: &str, postgres: bool) -> Option<(String, String, Option<String>)> {
    let aws = server_url("TEST_AWS_ENDPOINT_URL", test)?;
    let mysql = server_url("TEST_MYSQL_URL", test)?;
    let pg = if postgres {
        Some(server_url("TEST_POSTGRES_URL", test)?)
    } else {
        None
    };
    Some((aws, mysql, pg))
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

impl Cluster {
    /// Provisions (twice: the second run must change nothing), creates the
    /// databases and starts `cita-http`, whose relay runs if `http_relay`.
    async fn start(endpoint: &str, mysql: &str, primary: PrimaryKind, http_relay: bool) -> Self {
        let prefix = format!("e2e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let sdk = sdk_config(endpoint).await;
        let countries = MySqlScratch::new(mysql, 2).await;
        let (primary_url, pg) = match primary {
            PrimaryKind::Postgres(server) => {
                let pg = PgScratch::new(&server).await;
                (pg.url().to_owned(), Some(pg))
            }
            PrimaryKind::DynamoDb => (format!("dynamodb://{prefix}"), None),
        };
        let mut cluster = Self {
            prefix,
            endpoint: endpoint.to_owned(),
            sdk,
            primary_url,
            countries,
            _pg: pg,
            http: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("a client"),
            stop_http: None,
            server: None,
            children: BTreeMap::new(),
        };

        let first = cluster.worker_output(&["provision"]);
        assert!(first.contains("15 resources: 15 created"), "{first}");
        let second = cluster.worker_output(&["provision"]);
        assert!(
            second.contains("15 resources: 0 created, 0 updated, 15 already present"),
            "{second}"
        );
        if cluster.primary_url.starts_with("dynamodb://") {
            assert!(second.contains("-appointments: AlreadyPresent"), "{second}");
        }

        let config = Config {
            listen: ([127, 0, 0, 1], 0).into(),
            database_url: Some(SecretUrl::new(cluster.primary_url.clone())),
            broker: Broker::Aws,
            relay: http_relay,
            aws_prefix: cluster.prefix.clone(),
            rate_limit_per_second: 0,
            shutdown_grace_seconds: 2,
            database_max_connections: 4,
            ..Config::default()
        };
        let app = Application::build_with_aws(config, Some(cluster.sdk.clone()))
            .await
            .expect("cita-http starts in distributed mode");
        cluster.http = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        cluster.stop_http = Some(tx);
        cluster.server = Some(tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        })));
        cluster
    }

    /// The environment every `cita-worker` child gets.
    fn worker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(WORKER);
        cmd.args(args)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CITA_AWS_ENDPOINT_URL", &self.endpoint)
            .env("CITA_AWS_PREFIX", &self.prefix)
            .env("CITA_DATABASE_URL", &self.primary_url)
            .env("CITA_COUNTRY_PE_DATABASE_URL", self.countries.url(0))
            .env("CITA_COUNTRY_CL_DATABASE_URL", self.countries.url(1))
            .env("CITA_WORKER_SQS_WAIT_SECONDS", "1")
            .env("CITA_WORKER_VISIBILITY_TIMEOUT_SECONDS", "2")
            .env("CITA_WORKER_RETRY_DELAY_SECONDS", "0")
            .env("CITA_WORKER_RELAY_IDLE_MS", "50")
            .env("CITA_DATABASE_MAX_CONNECTIONS", "2")
            .env("CITA_LOG", "warn");
        cmd
    }

    /// Runs a `cita-worker` command to its end; returns its stdout.
    fn worker_output(&self, args: &[&str]) -> String {
        let out = self
            .worker(args)
            .output()
            .expect("the cita-worker binary runs");
        assert!(
            out.status.success(),
            "cita-worker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a `cita-worker` loop as a child called `name`.
    fn spawn(&mut self, name: &str, args: &[&str]) {
        let child = self
            .worker(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the cita-worker binary starts");
        self.children.insert(name.to_owned(), child);
    }

    /// SIGTERM, then waits for the child to stop (graceful shutdown).
    fn stop(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "{name} stopped with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            panic!("{name} did not stop within 30 s of SIGTERM");
        }
    }

    /// SIGKILL: the process dies wherever it is.
    fn kill(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn topology(&self) -> Topology {
        Topology::for_router(self.prefix.clone(), &CountryRouter::default())
            .expect("a valid topology")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.http));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("cita-http answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn provider(&self, id: &str, country: &str) {
        let day = json!([{ "start": "00:00", "end": "24:00" }]);
        let body = json!({
            "name": format!("Provider {id}"), "countryIso": country, "timezone": "UTC",
            "weeklyHours": { "monday": day, "tuesday": day, "wednesday": day, "thursday": day,
                             "friday": day, "saturday": day, "sunday": day }
        });
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/providers/{id}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn book(&self, provider: &str, patient: &str, start: &str) -> Value {
        let body = json!({ "providerId": provider, "patientId": patient, "start": start });
        let (status, body) = self
            .call(reqwest::Method::POST, "/v1/appointments", Some(body))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn get(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/appointments/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls the appointment until `done` holds.
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let a = self.get(id).await;
            if done(&a) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened; last: {a}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `(id, status, version, start_at ms)` of every row of a country's
    /// own database (0: PE, 1: CL).
    async fn country_rows(&self, i: usize) -> Vec<(String, String, i64, i64)> {
        let pool = self.countries.pool(i).await;
        let rows = cita_adapters::mysql::sqlx::query_as(
            "SELECT id, status, version, start_at FROM country_appointments ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .expect("the country table answers");
        pool.close().await;
        rows
    }

    /// Polls a country's database until `done` holds for its rows.
    async fn wait_country(
        &self,
        i: usize,
        what: &str,
        done: impl Fn(&[(String, String, i64, i64)]) -> bool,
    ) -> Vec<(String, String, i64, i64)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let rows = self.country_rows(i).await;
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened; rows: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    async fn queue_url(&self, name: &str) -> String {
        cita_adapters::aws::resolve::queue_url(&self.sqs().await, name)
            .await
            .expect("the queue exists")
    }

    /// Waits until a queue holds nothing, visible or in flight.
    async fn wait_queue_empty(&self, name: &str) {
        let (sqs, url) = (self.sqs().await, self.queue_url(name).await);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .expect("queue attributes");
            let count = |k: aws_sdk_sqs::types::QueueAttributeName| {
                attrs
                    .attributes()
                    .and_then(|a| a.get(&k))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let held = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + count(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                );
            if held == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} still holds {held} messages"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn shutdown(mut self) {
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            self.stop(&name);
        }
        if let Some(tx) = self.stop_http.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("cita-http did not panic")
                .expect("cita-http stopped cleanly");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `HH:MM` UTC on the date `days` from today, RFC 3339.
fn slot(days: i64, hh_mm: &str) -> String {
    let date = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(days))
        .expect("a date in range");
    format!("{date}T{hh_mm}:00Z")
}

fn millis(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("an instant")
        .as_millisecond()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().expect("a string field").to_owned()
}

/// The appointment as the API returns it is exactly an event's snapshot.
fn snapshot(appointment: &Value) -> AppointmentSnapshot {
    serde_json::from_value(appointment.clone()).expect("the API's appointment is a snapshot")
}

/// Book a PE and a CL appointment; each lands only in its own country's
/// database and is confirmed; a reschedule reaches the country with its
/// new time and version and is confirmed again; a cancellation reaches it
/// too. Then the same message delivered twice has one effect.
async fn whole_path(c: &Cluster) {
    c.provider("lima", "PE").await;
    c.provider("santiago", "CL").await;
    let pe = c.book("lima", "patient-pe", &slot(2, "10:00")).await;
    let cl = c.book("santiago", "patient-cl", &slot(2, "10:00")).await;
    assert_eq!(
        (pe["status"].as_str(), cl["status"].as_str()),
        (Some("pending"), Some("pending"))
    );
    let (pe_id, cl_id) = (text(&pe, "id"), text(&cl, "id"));
    c.wait_for(&pe_id, "PE confirmed", |a| a["status"] == "confirmed")
        .await;
    c.wait_for(&cl_id, "CL confirmed", |a| a["status"] == "confirmed")
        .await;
    let pe_rows = c.country_rows(0).await;
    let cl_rows = c.country_rows(1).await;
    assert_eq!(
        pe_rows.iter().map(|r| &r.0).collect::<Vec<_>>(),
        vec![&pe_id]
    );
    assert_eq!(
        cl_rows.iter().map(|r| &r.0).collect::<Vec<_>>(),
        vec![&cl_id]
    );

    let new_start = slot(3, "15:30");
    let (status, moved) = c
        .call(
            reqwest::Method::PUT,
            &format!("/v1/appointments/{pe_id}"),
            Some(json!({ "start": new_start })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["status"].as_str(), moved["version"].as_i64()),
        (Some("pending"), Some(2))
    );
    let rows = c
        .wait_country(0, "the reschedule reaching PE", |rows| {
            rows.iter().any(|r| r.0 == pe_id && r.2 == 2)
        })
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].3, millis(&new_start));
    c.wait_for(&pe_id, "PE confirmed again", |a| {
        a["status"] == "confirmed" && a["version"] == 2
    })
    .await;

    let (status, cancelled) = c
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/appointments/{pe_id}"),
            Some(json!({ "reason": "travel" })),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    c.wait_country(0, "the cancellation reaching PE", |rows| {
        rows.iter()
            .any(|r| r.0 == pe_id && r.1 == "cancelled" && r.2 == 3)
    })
    .await;
    assert_eq!(c.get(&pe_id).await["status"], "cancelled");

    // The CL request delivered twice more (the very same message): the
    // country keeps one row at version 1, the appointment stays confirmed.
    let requested = EventEnvelope {
        event_id: EventId::new(),
        event_type: EventType::Requested,
        occurred_at: snapshot(&cl).updated_at,
        appointment_id: snapshot(&cl).id,
        version: snapshot(&cl).version,
        country_iso: CountryCode::CL,
        appointment: snapshot(&cl),
    };
    let sns = SnsEventPublisher::from_topology(&c.sdk, &c.topology())
        .await
        .expect("the topic exists");
    for _ in 0..2 {
        sns.publish(&requested).await.expect("published");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.wait_queue_empty(&c.topology().country_queue(CountryCode::CL))
        .await;
    c.wait_queue_empty(&c.topology().confirmations_queue())
        .await;
    let cl_rows = c.country_rows(1).await;
    assert_eq!(cl_rows.len(), 1, "{cl_rows:?}");
    assert_eq!((cl_rows[0].0.as_str(), cl_rows[0].2), (cl_id.as_str(), 1));
    let cl_now = c.get(&cl_id).await;
    assert_eq!(
        (cl_now["status"].as_str(), cl_now["version"].as_i64()),
        (Some("confirmed"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pe_and_cl_travel_the_whole_path_on_postgres() {
    let Some((aws, mysql, Some(pg))) = servers("pe_and_cl_travel_the_whole_path_on_postgres", true)
    else {
        return;
    };
    let mut c = Cluster::start(&aws, &mysql, PrimaryKind::Postgres(pg), true).await;
    c.spawn("country-pe", &["country", "--country", "PE"]);
    c.spawn("country-cl", &["country", "--country", "CL"]);
    c.spawn("confirmations", &["confirmations"]);
    whole_path(&c).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pe_and_cl_travel_the_whole_path_on_dynamodb() {
    let Some((aws, mysql, None)) = servers("pe_and_cl_travel_the_whole_path_on_dynamodb", false)
    else {
        return;
    };
    // The relay runs in cita-worker here (`all`), not in cita-http.
    let mut c = Cluster::start(&aws, &mysql, PrimaryKind::DynamoDb, false).await;
    c.spawn("all", &["all"]);
    whole_path(&c).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_end_in_the_dead_letter_queue_or_in_the_right_state() {
    let Some((aws, mysql, Some(pg))) = servers(
        "faults_end_in_the_dead_letter_queue_or_in_the_right_state",
        true,
    ) else {
        return;
    };
    // The relay runs in its own cita-worker process, so it can be killed.
    let mut c = Cluster::start(&aws, &mysql, PrimaryKind::Postgres(pg), false).await;
    let topology = c.topology();
    c.spawn("relay", &["relay"]);
    c.spawn("country-pe", &["country", "--country", "PE"]);
    c.spawn("confirmations", &["confirmations"]);
    c.provider("lima", "PE").await;

    // 1. A malformed body and an event for an unserved country reach the
    // PE queue: each ends in the DLQ after 5 receives with its body
    // intact, while a booking behind them goes through.
    let sqs = c.sqs().await;
    let pe_queue = c.queue_url(&topology.country_queue(CountryCode::PE)).await;
    let healthy = c.book("lima", "patient-1", &slot(2, "09:00")).await;
    let mut unserved = serde_json::to_value(EventEnvelope {
        event_id: EventId::new(),
        event_type: EventType::Requested,
        occurred_at: snapshot(&healthy).updated_at,
        appointment_id: snapshot(&healthy).id,
        version: snapshot(&healthy).version,
        country_iso: CountryCode::PE,
        appointment: snapshot(&healthy),
    })
    .expect("an envelope serializes");
    unserved["countryIso"] = json!("AR");
    unserved["appointment"]["countryIso"] = json!("AR");
    let bad_bodies = ["{ not json".to_owned(), unserved.to_string()];
    for body in &bad_bodies {
        sqs.send_message()
            .queue_url(&pe_queue)
            .message_body(body)
            .send()
            .await
            .expect("sent");
    }
    let behind = c.book("lima", "patient-2", &slot(2, "10:00")).await;
    for a in [&healthy, &behind] {
        c.wait_for(&text(a, "id"), "a good message processed", |a| {
            a["status"] == "confirmed"
        })
        .await;
    }
    let dlq = c.queue_url(&topology.country_dlq(CountryCode::PE)).await;
    let mut dead = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while dead.len() < 2 {
        assert!(Instant::now() < deadline, "only {dead:?} reached the DLQ");
        let got = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("received");
        for m in got.messages() {
            dead.push(m.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(&dlq)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("deleted");
        }
    }
    dead.sort();
    let mut expected = bad_bodies.to_vec();
    expected.sort();
    assert_eq!(dead, expected);

    // 2. A country worker that wrote the country row and stopped before
    // deleting the message: the message comes back, the final state is
    // right and the row is not duplicated.
    c.stop("country-pe");
    let crashed = c.book("lima", "patient-3", &slot(2, "11:00")).await;
    let crashed_id = text(&crashed, "id");
    let message = loop {
        let got = sqs
            .receive_message()
            .queue_url(&pe_queue)
            .max_number_of_messages(1)
            .visibility_timeout(2)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("received");
        if let Some(m) = got.messages().first() {
            break m.body().unwrap_or_default().to_owned();
        }
    };
    let envelope: EventEnvelope = serde_json::from_str(&message).expect("an envelope");
    assert_eq!(envelope.appointment_id.to_string(), crashed_id);
    let (store, _) = select::open_country(&c.countries.url(0), select::PoolConfig::default(), "pe")
        .await
        .expect("the PE database");
    store.record(&envelope.appointment).await.expect("recorded");
    // … and "dies" here: the message is neither deleted nor confirmed.
    c.spawn("country-pe", &["country", "--country", "PE"]);
    c.wait_for(&crashed_id, "the redelivered message confirmed", |a| {
        a["status"] == "confirmed"
    })
    .await;
    let rows = c.country_rows(0).await;
    let mine: Vec<_> = rows.iter().filter(|r| r.0 == crashed_id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].1.as_str(), mine[0].2), ("pending", 1));

    // 3. A confirmation of version 1 arriving after a reschedule to
    // version 2: the appointment stays pending until version 2 is confirmed.
    c.stop("country-pe");
    let late = c.book("lima", "patient-4", &slot(2, "12:00")).await;
    let late_id = text(&late, "id");
    let (status, moved) = c
        .call(
            reqwest::Method::PUT,
            &format!("/v1/appointments/{late_id}"),
            Some(json!({ "start": slot(2, "13:00") })),
        )
        .await;
    assert_eq!(
        (status, moved["version"].as_i64()),
        (200, Some(2)),
        "{moved}"
    );
    let bus = EventBridgeConfirmationPublisher::from_topology(&c.sdk, &topology);
    bus.publish_confirmation(&EventEnvelope::confirmation_of(
        &snapshot(&late),
        jiff::Timestamp::now(),
    ))
    .await
    .expect("published");
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.wait_queue_empty(&topology.confirmations_queue()).await;
    let still = c.get(&late_id).await;
    assert_eq!(
        (still["status"].as_str(), still["version"].as_i64()),
        (Some("pending"), Some(2))
    );
    c.spawn("country-pe", &["country", "--country", "PE"]);
    c.wait_for(&late_id, "version 2 confirmed", |a| {
        a["status"] == "confirmed" && a["version"] == 2
    })
    .await;

    // 4. The relay killed (SIGKILL) with a committed booking not yet
    // published: after its restart the event is published and confirmed.
    c.kill("relay");
    let waiting = c.book("lima", "patient-5", &slot(2, "14:00")).await;
    let waiting_id = text(&waiting, "id");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.get(&waiting_id).await["status"], "pending");
    assert!(c.country_rows(0).await.iter().all(|r| r.0 != waiting_id));
    c.spawn("relay", &["relay"]);
    c.wait_for(&waiting_id, "the event published after the restart", |a| {
        a["status"] == "confirmed"
    })
    .await;
    c.shutdown().await;
}
