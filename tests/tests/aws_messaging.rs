//! The AWS messaging adapters (SNS publisher, EventBridge publisher, SQS
//! workers, provisioning) against a real moto server named by
//! `TEST_AWS_ENDPOINT_URL` (for example `http://127.0.0.1:4566`). Without the
//! variable the tests say they were skipped and pass, except in CI
//! (`CI=true`), where a missing server is a failure.
//!
//! The server may be shared with other tests running at the same time:
//! every test provisions its own resources under a random prefix
//! (`citatest-<8 hex>`) and never resets the server. Every wait polls with a
//! deadline, so a broken adapter fails a test instead of hanging it.
#![cfg(feature = "aws")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cita_adapters::aws::aws_config::{self, BehaviorVersion, SdkConfig};
use cita_adapters::aws::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use cita_adapters::aws::aws_sdk_sqs::{self, config::Credentials};
use cita_adapters::aws::{
    EventBridgeConfirmationPublisher, ProvisionReport, ProvisionStatus, ResourceKind,
    SnsEventPublisher, SqsConfirmationWorker, SqsConsumerSettings, SqsCountryWorker, Topology,
    confirmation_from_bus_event, confirmation_worker, country_worker, provision, resolve,
};
use cita_adapters::clock::SystemClock;
use cita_adapters::memory::{InMemoryAppointmentStore, InMemoryCountryStore};
use cita_adapters::pipeline::{Pacing, Shutdown, Step, Worker as _, run};
use cita_core::booking::{Appointment, AppointmentStatus, AppointmentStore};
use cita_core::country::{ConfirmationHandler, CountryProcessor, CountryStore, CountryWrite};
use cita_core::events::{
    AppointmentSnapshot, ConfirmationPublisher, EventEnvelope, EventPublisher, EventType, Outbox,
    OutboxRelay,
};
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::routing::{CountryCode, CountryRouter};
use cita_core::slots::BufferMinutes;
use cita_tests::servers::server_url;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::sync::Notify;

/// How long any one wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The queues' visibility timeout unless a test needs another.
const VISIBILITY: Duration = Duration::from_secs(30);

/// One test's view of the server: its SDK configuration, its own
/// provisioned topology, and a plain SQS client to look into the queues.
struct Env {
    sdk: SdkConfig,
    topology: Topology,
    sqs: aws_sdk_sqs::Client,
    /// What the first provisioning did.
    first: ProvisionReport,
}

impl Env {
    /// Provisions a fresh topology (PE and CL) under a random prefix, with
    /// the usual queue visibility timeout; `None` when skipping.
    async fn new(test: &str) -> Option<Self> {
        Self::with_visibility(test, VISIBILITY).await
    }

    /// [`Env::new`] with the given queue visibility timeout.
    async fn with_visibility(test: &str, visibility: Duration) -> Option<Self> {
        let url = server_url("TEST_AWS_ENDPOINT_URL", test)?;
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region("us-east-1")
            .endpoint_url(url)
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .load()
            .await;
        let prefix = format!(
            "citatest-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let topology = Topology::new(prefix, [CountryCode::PE, CountryCode::CL])
            .expect("a valid prefix")
            .with_visibility_timeout(visibility)
            .expect("a valid timeout");
        let first = provision(&sdk, &topology)
            .await
            .expect("provisioning on moto");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        Some(Self {
            sdk,
            topology,
            sqs,
            first,
        })
    }

    async fn url(&self, queue: &str) -> String {
        resolve::queue_url(&self.sqs, queue)
            .await
            .expect("a provisioned queue")
    }

    /// Consumer settings for tests: one-second polls.
    fn settings(&self) -> SqsConsumerSettings {
        SqsConsumerSettings {
            wait_time: Duration::from_secs(1),
            ..SqsConsumerSettings::for_topology(&self.topology)
        }
    }

    /// The SNS publisher on this topology's topic.
    async fn sns_publisher(&self) -> SnsEventPublisher {
        SnsEventPublisher::from_topology(&self.sdk, &self.topology)
            .await
            .expect("the topic exists")
    }

    fn confirmations(&self) -> Arc<dyn ConfirmationPublisher> {
        Arc::new(EventBridgeConfirmationPublisher::from_topology(
            &self.sdk,
            &self.topology,
        ))
    }

    async fn country_worker(
        &self,
        country: CountryCode,
        store: Arc<dyn CountryStore>,
        settings: SqsConsumerSettings,
    ) -> SqsCountryWorker {
        country_worker(
            &self.sdk,
            &self.topology,
            processor(country, store, self.confirmations()),
            settings,
        )
        .await
        .expect("the country queue exists")
    }

    /// The confirmation worker, applying what arrives through `service`.
    /// The confirmation worker, applying what arrives to `primary`'s store
    /// and announcing it on the topic, as `cita-worker confirmations` does.
    async fn confirmation_worker(&self, primary: &Primary) -> SqsConfirmationWorker {
        confirmation_worker(
            &self.sdk,
            &self.topology,
            ConfirmationHandler::new(primary.store.clone(), Arc::new(SystemClock)).announcing(true),
            self.settings(),
        )
        .await
        .expect("the queue exists")
    }

    async fn send(&self, queue: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(self.url(queue).await)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }

    /// The attributes `names` of a queue.
    async fn attributes(
        &self,
        queue: &str,
        names: &[QueueAttributeName],
    ) -> HashMap<QueueAttributeName, String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(self.url(queue).await)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes()
            .cloned()
            .unwrap_or_default()
    }

    /// (visible, in flight) messages of a queue.
    async fn depth(&self, queue: &str) -> (u64, u64) {
        let attrs = self
            .attributes(
                queue,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await;
        let n = |a: QueueAttributeName| {
            attrs
                .get(&a)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()
        };
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Runs a worker's `step` until `queue` is empty (nothing visible or
    /// in flight); fails at the deadline.
    async fn drain(&self, queue: &str, mut step: impl AsyncFnMut() -> anyhow::Result<Step>) {
        run_until(&format!("{queue} drained"), async || {
            step().await.expect("receives");
            self.depth(queue).await == (0, 0)
        })
        .await;
    }

    /// Takes every message of a queue (they stay invisible for a minute,
    /// long past the test): polls until one poll brings nothing after
    /// `expected` messages arrived, or the deadline.
    async fn take_all(&self, queue: &str, expected: usize) -> Vec<aws_sdk_sqs::types::Message> {
        let url = self.url(queue).await;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut got = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage");
            let batch = out.messages().to_vec();
            let empty = batch.is_empty();
            got.extend(batch);
            if empty && got.len() >= expected {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{queue}: expected {expected} messages, got {} by the deadline",
                got.len()
            );
        }
    }
}

fn bodies(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `check` every 100 ms until it holds; fails at the deadline.
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    until(what, Duration::from_millis(100), check).await;
}

/// Runs `step` back to back until it returns true (a worker's step waits
/// in its own long poll); fails at the deadline.
async fn run_until(what: &str, step: impl AsyncFnMut() -> bool) {
    until(what, Duration::ZERO, step).await;
}

/// Runs `step` until it returns true, `pause` apart; fails at the deadline.
async fn until(what: &str, pause: Duration, mut step: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !step().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(pause).await;
    }
}

fn router() -> CountryRouter {
    CountryRouter::for_countries([CountryCode::PE, CountryCode::CL])
}

fn processor(
    country: CountryCode,
    store: Arc<dyn CountryStore>,
    confirmations: Arc<dyn ConfirmationPublisher>,
) -> CountryProcessor {
    CountryProcessor::new(
        country,
        router(),
        store,
        confirmations,
        Arc::new(SystemClock),
    )
}

/// A pending appointment in `country`, starting `offset_hours` after a fixed
/// instant (distinct offsets never overlap).
fn appointment(country: CountryCode, offset_hours: i64) -> Appointment {
    let booked_at: Timestamp = "2026-11-20T12:00:00Z".parse().expect("an instant");
    let start = booked_at + SignedDuration::from_hours(72 + offset_hours);
    Appointment {
        id: AppointmentId::new(),
        provider_id: ProviderId::parse("ana").expect("a valid id"),
        patient_id: PatientId::parse(&format!("p-{offset_hours}")).expect("a valid id"),
        country,
        start,
        end: start + SignedDuration::from_mins(30),
        buffer: BufferMinutes::default(),
        status: AppointmentStatus::Pending,
        version: Version::FIRST,
        notes: None,
        cancel_reason: None,
        created_at: booked_at,
        updated_at: booked_at,
    }
}

fn requested(country: CountryCode, offset_hours: i64) -> EventEnvelope {
    let a = appointment(country, offset_hours);
    EventEnvelope::for_appointment(EventType::Requested, &a, a.created_at)
}

/// Now, at the millisecond precision envelopes carry.
fn now_millis() -> Timestamp {
    Timestamp::from_millisecond(Timestamp::now().as_millisecond()).expect("in range")
}

fn json(event: &EventEnvelope) -> String {
    serde_json::to_string(event).expect("an envelope serialises")
}

/// Everything provisioning made, read back: queue attributes (without the
/// approximate counters), subscriptions with their attributes, the rule
/// and its targets.
async fn snapshot(env: &Env) -> BTreeMap<String, String> {
    let t = &env.topology;
    let mut out = BTreeMap::new();
    let mut queues = vec![t.confirmations_queue(), t.confirmations_dlq()];
    for &c in t.countries() {
        queues.push(t.country_queue(c));
        queues.push(t.country_dlq(c));
    }
    for q in queues {
        for (k, v) in env.attributes(&q, &[QueueAttributeName::All]).await {
            if !k.as_str().starts_with("Approximate") {
                out.insert(format!("queue {q} {}", k.as_str()), v);
            }
        }
    }
    let sns = cita_adapters::aws::aws_sdk_sns::Client::new(&env.sdk);
    let topic = resolve::topic_arn(&sns, &t.topic()).await.expect("topic");
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .expect("ListSubscriptionsByTopic");
    out.insert(
        "subscriptions".to_owned(),
        subs.subscriptions().len().to_string(),
    );
    for s in subs.subscriptions() {
        let arn = s.subscription_arn().unwrap_or_default();
        let attrs = sns
            .get_subscription_attributes()
            .subscription_arn(arn)
            .send()
            .await
            .expect("GetSubscriptionAttributes");
        let attrs: BTreeMap<_, _> = attrs
            .attributes()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        out.insert(format!("subscription {arn}"), format!("{attrs:?}"));
    }
    let events = cita_adapters::aws::aws_sdk_eventbridge::Client::new(&env.sdk);
    let rule = events
        .describe_rule()
        .name(t.confirmations_rule())
        .event_bus_name(t.event_bus())
        .send()
        .await
        .expect("DescribeRule");
    out.insert(
        "rule".to_owned(),
        format!(
            "{:?} {:?} {:?} {:?} {:?}",
            rule.arn(),
            rule.event_bus_name(),
            rule.event_pattern(),
            rule.state(),
            rule.description()
        ),
    );
    let targets = events
        .list_targets_by_rule()
        .rule(t.confirmations_rule())
        .event_bus_name(t.event_bus())
        .send()
        .await
        .expect("ListTargetsByRule");
    out.insert("targets".to_owned(), format!("{:?}", targets.targets()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_twice_creates_then_only_verifies() {
    let Some(env) = Env::new("provisioning_twice_creates_then_only_verifies").await else {
        return;
    };
    // `Env::new` ran the first provisioning.
    let first = &env.first;
    eprintln!("{first}");
    // topic; per country DLQ, queue, policy, subscription; confirmations
    // DLQ, queue, bus, rule, policy, target.
    assert_eq!(first.resources().len(), 1 + 4 * 2 + 6, "{first}");
    assert_eq!(
        first.count(ProvisionStatus::Created),
        first.resources().len(),
        "{first}"
    );
    let before = snapshot(&env).await;

    let second = provision(&env.sdk, &env.topology)
        .await
        .expect("second run");

    eprintln!("{second}");
    assert_eq!(second.resources().len(), first.resources().len());
    assert_eq!(
        second.count(ProvisionStatus::AlreadyPresent),
        second.resources().len(),
        "{second}"
    );
    assert!(!second.changed_anything());
    assert_eq!(
        snapshot(&env).await,
        before,
        "the second run changed something"
    );
    assert_eq!(before["subscriptions"], "2");
    let pe = env.topology.country_queue(CountryCode::PE);
    let redrive: Value = serde_json::from_str(&before[&format!("queue {pe} RedrivePolicy")])
        .expect("a redrive policy");
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(before[&format!("queue {pe} VisibilityTimeout")], "30");

    // Attributes someone changed by hand are put back, and reported. (The
    // policy is written along: moto's SetQueueAttributes drops a policy
    // it is not given, which AWS does not.)
    env.sqs
        .set_queue_attributes()
        .queue_url(env.url(&pe).await)
        .attributes(QueueAttributeName::VisibilityTimeout, "99")
        .attributes(
            QueueAttributeName::Policy,
            &before[&format!("queue {pe} Policy")],
        )
        .send()
        .await
        .expect("SetQueueAttributes");
    let sns = cita_adapters::aws::aws_sdk_sns::Client::new(&env.sdk);
    let cl_subscription = before
        .iter()
        .find(|(k, v)| k.starts_with("subscription ") && v.contains("-appointments-cl\""))
        .map(|(k, _)| k.trim_start_matches("subscription ").to_owned())
        .expect("the CL subscription");
    sns.set_subscription_attributes()
        .subscription_arn(&cl_subscription)
        .attribute_name("RawMessageDelivery")
        .attribute_value("false")
        .send()
        .await
        .expect("SetSubscriptionAttributes");
    let third = provision(&env.sdk, &env.topology).await.expect("third run");
    eprintln!("{third}");
    let updated: Vec<(ResourceKind, &str, ProvisionStatus, Vec<String>)> = third
        .resources()
        .iter()
        .filter(|r| r.status != ProvisionStatus::AlreadyPresent)
        .map(|r| (r.kind, r.name.as_str(), r.status, r.fixed.clone()))
        .collect();
    let cl = env.topology.country_queue(CountryCode::CL);
    assert_eq!(
        updated,
        vec![
            (
                ResourceKind::Subscription,
                format!("{} → {cl}", env.topology.topic()).as_str(),
                ProvisionStatus::Updated,
                vec!["RawMessageDelivery".to_owned()]
            ),
            (
                ResourceKind::Queue,
                pe.as_str(),
                ProvisionStatus::Updated,
                vec!["VisibilityTimeout".to_owned()]
            ),
        ],
        "{third}"
    );
    let settled = |mut s: BTreeMap<String, String>| {
        s.retain(|k, _| !k.ends_with("LastModifiedTimestamp"));
        s
    };
    assert_eq!(
        settled(snapshot(&env).await),
        settled(before),
        "the third run restored everything"
    );
    let fourth = provision(&env.sdk, &env.topology)
        .await
        .expect("fourth run");
    assert!(!fourth.changed_anything(), "{fourth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_only_their_own_country_queue_as_raw_envelopes() {
    let Some(env) = Env::new("events_reach_only_their_own_country_queue_as_raw_envelopes").await
    else {
        return;
    };
    let publisher = env.sns_publisher().await;
    let pe = requested(CountryCode::PE, 1);
    let cl = requested(CountryCode::CL, 2);
    let confirmed = EventEnvelope::confirmation_of(&pe.appointment, now_millis());

    for event in [&pe, &cl, &confirmed] {
        publisher.publish(event).await.expect("published");
    }

    let t = &env.topology;
    let pe_messages = env.take_all(&t.country_queue(CountryCode::PE), 1).await;
    let cl_messages = env.take_all(&t.country_queue(CountryCode::CL), 1).await;
    assert_eq!(bodies(&pe_messages), vec![json(&pe)]);
    assert_eq!(bodies(&cl_messages), vec![json(&cl)]);
    // Raw delivery also carries the attributes over as SQS message attributes.
    let attrs = pe_messages[0]
        .message_attributes()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        attrs.get("countryIso").and_then(|a| a.string_value()),
        Some("PE")
    );
    assert_eq!(
        attrs.get("eventType").and_then(|a| a.string_value()),
        Some("appointment.requested")
    );
    // The confirmation went nowhere: not to a country, not to the
    // confirmations queue (that one is fed by EventBridge only).
    assert_eq!(env.depth(&t.confirmations_queue()).await, (0, 0));
}

/// A pending appointment in a fresh in-memory primary store, its
/// `appointment.requested` event in the outbox, and the booking service
/// over it.
struct Primary {
    store: Arc<InMemoryAppointmentStore>,
    appointment: Appointment,
    event: EventEnvelope,
}

impl Primary {
    async fn with_one_appointment(country: CountryCode) -> Self {
        let store = Arc::new(InMemoryAppointmentStore::new());
        let appointment = appointment(country, 5);
        let event = EventEnvelope::for_appointment(
            EventType::Requested,
            &appointment,
            appointment.created_at,
        );
        store
            .insert(&appointment, &event)
            .await
            .expect("a fresh store takes it");
        Self {
            store,
            appointment,
            event,
        }
    }

    async fn status(&self) -> AppointmentStatus {
        self.store
            .get(self.appointment.id)
            .await
            .expect("store")
            .expect("present")
            .status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_travels_through_eventbridge_to_the_confirmation_worker() {
    let Some(env) =
        Env::new("a_confirmation_travels_through_eventbridge_to_the_confirmation_worker").await
    else {
        return;
    };
    let publisher = EventBridgeConfirmationPublisher::from_topology(&env.sdk, &env.topology);
    let queue = env.topology.confirmations_queue();

    // What the bus delivers: the EventBridge event, the envelope as detail.
    let snapshot = AppointmentSnapshot::from(&appointment(CountryCode::CL, 9));
    let looked_at = EventEnvelope::confirmation_of(&snapshot, now_millis());
    publisher
        .publish_confirmation(&looked_at)
        .await
        .expect("PutEvents");
    let delivered = env.take_all(&queue, 1).await;
    let [message] = delivered.as_slice() else {
        panic!("expected one message, got {delivered:?}")
    };
    let body = message.body().expect("a body");
    let event: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(event["source"], "cita.country.cl");
    assert_eq!(event["detail-type"], "appointment.confirmed");
    assert_eq!(
        event["detail"],
        serde_json::to_value(&looked_at).expect("JSON")
    );
    assert_eq!(
        confirmation_from_bus_event(body).expect("unwraps"),
        looked_at
    );
    env.sqs
        .delete_message()
        .queue_url(env.url(&queue).await)
        .receipt_handle(message.receipt_handle().expect("a receipt"))
        .send()
        .await
        .expect("DeleteMessage");

    // Only confirmations are put on the bus.
    let requested = requested(CountryCode::PE, 3);
    assert!(publisher.publish_confirmation(&requested).await.is_err());

    // The worker applies what arrives to the primary store.
    let primary = Primary::with_one_appointment(CountryCode::PE).await;
    let confirmation = EventEnvelope::confirmation_of(&primary.event.appointment, now_millis());
    publisher
        .publish_confirmation(&confirmation)
        .await
        .expect("PutEvents");
    let worker = env.confirmation_worker(&primary).await;
    assert_eq!(worker.name(), queue);
    run_until("the confirmation to arrive", async || {
        worker
            .process_one(&Shutdown::never())
            .await
            .expect("receives")
            != Step::Empty
    })
    .await;
    assert_eq!(primary.status().await, AppointmentStatus::Confirmed);
    assert_eq!(env.depth(&queue).await, (0, 0), "the message was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_gives_one_effect_for_a_duplicated_delivery() {
    let Some(env) = Env::new("the_whole_pipeline_gives_one_effect_for_a_duplicated_delivery").await
    else {
        return;
    };
    let primary = Primary::with_one_appointment(CountryCode::PE).await;
    let publisher = Arc::new(env.sns_publisher().await);
    let outbox: Arc<dyn Outbox> = primary.store.clone();
    let relay = OutboxRelay::new(Arc::clone(&outbox), publisher.clone(), 10);

    assert_eq!(relay.drain().await.expect("relayed"), 1);
    // SNS and SQS deliver at least once: the same message, twice.
    publisher.publish(&primary.event).await.expect("published");

    let country_store = Arc::new(InMemoryCountryStore::new());
    let pe_queue = env.topology.country_queue(CountryCode::PE);
    let worker = env
        .country_worker(CountryCode::PE, country_store.clone(), env.settings())
        .await;
    assert_eq!(worker.name(), pe_queue);
    assert_eq!(worker.consumer().country(), CountryCode::PE);
    env.drain(&pe_queue, async || {
        worker.process_one(&Shutdown::never()).await
    })
    .await;
    assert_eq!(country_store.len(), 1, "one record for two deliveries");
    assert_eq!(
        country_store
            .get(primary.appointment.id)
            .await
            .expect("store"),
        Some(primary.event.appointment.clone())
    );

    // Both deliveries were confirmed (a duplicate is confirmed again, the
    // first confirmation may have been lost); applying both confirms once.
    let confirmations = env.confirmation_worker(&primary).await;
    let confirmations_queue = env.topology.confirmations_queue();
    eventually("both confirmations queued", async || {
        env.depth(&confirmations_queue).await == (2, 0)
    })
    .await;
    env.drain(&confirmations_queue, async || {
        confirmations.process_one(&Shutdown::never()).await
    })
    .await;
    assert_eq!(primary.status().await, AppointmentStatus::Confirmed);
    let pending = outbox.unpublished(10).await.expect("outbox");
    let types: Vec<EventType> = pending.iter().map(|e| e.event.event_type).collect();
    assert_eq!(
        types,
        vec![EventType::Confirmed],
        "one external confirmation"
    );

    // That external event goes out on the topic (no country takes it: see
    // events_reach_only_their_own_country_queue_as_raw_envelopes).
    assert_eq!(relay.drain().await.expect("relayed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_end_in_the_dlq_intact_while_good_ones_pass() {
    let Some(env) = Env::new("poison_messages_end_in_the_dlq_intact_while_good_ones_pass").await
    else {
        return;
    };
    let t = &env.topology;
    let queue = t.country_queue(CountryCode::PE);
    let dlq = t.country_dlq(CountryCode::PE);
    let malformed = r#"{"eventId": "not an envelope"#.to_owned();
    let unserved = json(&requested(CountryCode::parse("AR").expect("assigned"), 4));
    let good = requested(CountryCode::PE, 5);
    env.send(&queue, &malformed).await;
    env.send(&queue, &unserved).await;
    env.send(&queue, &json(&good)).await;

    let store = Arc::new(InMemoryCountryStore::new());
    // Failures come back at once instead of after the 30 s visibility.
    let settings = SqsConsumerSettings {
        failure_retry_delay: Some(Duration::ZERO),
        ..env.settings()
    };
    let worker = env
        .country_worker(CountryCode::PE, store.clone(), settings)
        .await;

    run_until("two dead letters and one record", async || {
        worker
            .process_one(&Shutdown::never())
            .await
            .expect("receives");
        env.depth(&dlq).await.0 == 2 && store.len() == 1
    })
    .await;
    let dead = env.take_all(&dlq, 2).await;
    for m in &dead {
        // Dead-lettered on the first receive (another could only fail the
        // same way), so this one from the DLQ is its first there; the
        // attributes say where it came from.
        let receives = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse::<u32>().ok());
        assert_eq!(receives, Some(1), "{m:?}");
        let attribute = |name: &str| {
            m.message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        assert_eq!(attribute("cita-source-queue"), Some(queue.clone()), "{m:?}");
        assert_eq!(attribute("cita-receives").as_deref(), Some("1"), "{m:?}");
    }
    let dead: BTreeSet<String> = bodies(&dead).into_iter().collect();
    assert_eq!(dead, BTreeSet::from([malformed, unserved]), "bodies intact");
    assert!(
        env.take_all(&dlq, 0).await.is_empty(),
        "a third dead letter"
    );
    assert_eq!(
        store.get(good.appointment_id).await.expect("store"),
        Some(good.appointment.clone())
    );
    assert_eq!(env.depth(&queue).await, (0, 0));
}

/// A country store that takes `delay` to record, and counts its calls.
struct SlowStore {
    inner: InMemoryCountryStore,
    delay: Duration,
    calls: AtomicUsize,
    entered: Notify,
}

impl SlowStore {
    fn new(delay: Duration) -> Self {
        Self {
            inner: InMemoryCountryStore::new(),
            delay,
            calls: AtomicUsize::new(0),
            entered: Notify::new(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CountryStore for SlowStore {
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.entered.notify_one();
        tokio::time::sleep(self.delay).await;
        self.inner.record(snapshot).await
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<AppointmentSnapshot>> {
        self.inner.get(id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_message_is_not_redelivered_while_it_is_being_handled() {
    // A 2 s visibility and a 5 s handler: without heartbeats the second
    // worker would receive the message after 2 s and record it again.
    let Some(env) = Env::with_visibility(
        "a_slow_message_is_not_redelivered_while_it_is_being_handled",
        Duration::from_secs(2),
    )
    .await
    else {
        return;
    };
    let queue = env.topology.country_queue(CountryCode::PE);
    let event = requested(CountryCode::PE, 6);
    env.send(&queue, &json(&event)).await;
    let store = Arc::new(SlowStore::new(Duration::from_secs(5)));
    let attrs = env
        .attributes(&queue, &[QueueAttributeName::VisibilityTimeout])
        .await;
    assert_eq!(
        attrs
            .get(&QueueAttributeName::VisibilityTimeout)
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(env.settings().visibility_timeout, Duration::from_secs(2));
    let (stop, shutdown) = Shutdown::new();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let worker = env
            .country_worker(CountryCode::PE, store.clone(), env.settings())
            .await;
        let shutdown = shutdown.clone();
        workers.spawn(async move { run(&worker, &shutdown, Pacing::default()).await });
    }

    eventually("the message recorded and deleted", async || {
        store.inner.len() == 1 && env.depth(&queue).await == (0, 0)
    })
    .await;
    stop.raise();
    tokio::time::timeout(DEADLINE, async {
        while workers.join_next().await.is_some() {}
    })
    .await
    .expect("workers stop");

    assert_eq!(store.calls(), 1, "the message was handled twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_message_in_hand_and_returns_the_rest() {
    let Some(env) = Env::new("shutdown_finishes_the_message_in_hand_and_returns_the_rest").await
    else {
        return;
    };
    let queue = env.topology.country_queue(CountryCode::PE);
    let events: Vec<EventEnvelope> = (10..13).map(|h| requested(CountryCode::PE, h)).collect();
    for e in &events {
        env.send(&queue, &json(e)).await;
    }
    let store = Arc::new(SlowStore::new(Duration::from_secs(1)));
    let worker = env
        .country_worker(CountryCode::PE, store.clone(), env.settings())
        .await;

    // Shut down as soon as the first message is being recorded.
    let s = Arc::clone(&store);
    let shutdown = Shutdown::on(async move { s.entered.notified().await });
    tokio::time::timeout(DEADLINE, run(&worker, &shutdown, Pacing::default()))
        .await
        .expect("the worker stops");

    assert_eq!(store.calls(), 1);
    assert_eq!(store.inner.len(), 1, "the message in hand was finished");
    let mut done = None;
    for e in &events {
        if store
            .inner
            .get(e.appointment_id)
            .await
            .expect("store")
            .is_some()
        {
            done = Some(e.event_id);
        }
    }
    let done = done.expect("one of the three");
    // The other two were neither handled nor deleted, and are available again.
    let rest = env.take_all(&queue, 2).await;
    let rest: BTreeSet<String> = bodies(&rest).into_iter().collect();
    let expected: BTreeSet<String> = events
        .iter()
        .filter(|e| e.event_id != done)
        .map(json)
        .collect();
    assert_eq!(rest, expected);
}
