use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cita_core::events::{ConfirmationPublisher, EventEnvelope, EventPublisher, EventType};
use cita_core::routing::{CountryCode, CountryRouter};

use super::lock;
use crate::pipeline::{CONFIRMATIONS_QUEUE, Delivery, Inbox, in_process_queue};

/// Which published events a queue receives (the in-process counterpart of an
/// SNS filter policy on `countryIso` and `eventType`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueFilter {
    countries: Option<BTreeSet<CountryCode>>,
    types: Option<BTreeSet<EventTypeKey>>,
}

/// `EventType` has no `Ord`; its wire name does.
type EventTypeKey = &'static str;

impl QueueFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// One country's work: requested, rescheduled and cancelled events of it.
    pub fn country_work(country: CountryCode) -> Self {
        Self {
            countries: Some([country].into()),
            types: Some(
                EventType::ALL
                    .into_iter()
                    .filter(|t| t.is_country_work())
                    .map(EventType::as_str)
                    .collect(),
            ),
        }
    }

    /// Whether the event passes.
    pub fn matches(&self, event: &EventEnvelope) -> bool {
        self.countries
            .as_ref()
            .is_none_or(|c| c.contains(&event.country_iso))
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(event.event_type.as_str()))
    }
}

#[derive(Debug)]
struct Stored {
    event: EventEnvelope,
    deliveries: u32,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Stored>,
    in_flight: HashMap<u64, Stored>,
    next_receipt: u64,
    dead: Vec<EventEnvelope>,
}

/// An at-least-once queue with a dead-letter list, consumed through the
/// [`Inbox`] port like any transport's queue: a message stays in flight
/// until acknowledged, returned, or dead-lettered (with its body intact).
#[derive(Debug)]
pub struct InMemoryQueue {
    name: String,
    state: Mutex<QueueState>,
}

/// The most messages one receive hands out, as on SQS.
const BATCH: usize = 10;

impl InMemoryQueue {
    /// An empty queue.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(QueueState::default()),
        }
    }

    /// Adds a message.
    pub fn send(&self, event: EventEnvelope) {
        lock(&self.state).ready.push_back(Stored {
            event,
            deliveries: 0,
        });
    }

    /// Messages waiting (not in flight).
    pub fn len(&self) -> usize {
        lock(&self.state).ready.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages received and neither acknowledged nor returned.
    pub fn in_flight(&self) -> usize {
        lock(&self.state).in_flight.len()
    }

    /// Messages moved to the dead-letter list.
    pub fn dead_letters(&self) -> Vec<EventEnvelope> {
        lock(&self.state).dead.clone()
    }
}

#[async_trait]
impl Inbox for InMemoryQueue {
    type Receipt = u64;

    fn name(&self) -> &str {
        &self.name
    }

    /// Up to ten ready messages, oldest first, at once (no waiting).
    async fn receive(&self) -> anyhow::Result<Vec<Delivery<u64>>> {
        let mut s = lock(&self.state);
        let mut batch = Vec::new();
        while batch.len() < BATCH {
            let Some(mut stored) = s.ready.pop_front() else {
                break;
            };
            stored.deliveries += 1;
            let receipt = s.next_receipt;
            s.next_receipt += 1;
            batch.push(Delivery {
                id: stored.event.event_id.to_string(),
                receipt,
                message: Ok(stored.event.clone()),
                deliveries: stored.deliveries,
            });
            s.in_flight.insert(receipt, stored);
        }
        Ok(batch)
    }

    async fn ack(&self, receipts: &[u64]) {
        let mut s = lock(&self.state);
        for r in receipts {
            s.in_flight.remove(r);
        }
    }

    async fn retry_later(&self, delivery: &Delivery<u64>) {
        let mut s = lock(&self.state);
        if let Some(stored) = s.in_flight.remove(&delivery.receipt) {
            s.ready.push_back(stored);
        }
    }

    async fn dead_letter(&self, delivery: &Delivery<u64>) {
        let mut s = lock(&self.state);
        if let Some(stored) = s.in_flight.remove(&delivery.receipt) {
            s.dead.push(stored.event);
        }
    }

    async fn release(&self, receipts: &[u64]) {
        let mut s = lock(&self.state);
        // Back to the front, in their order, not counted as delivered.
        for r in receipts.iter().rev() {
            if let Some(mut stored) = s.in_flight.remove(r) {
                stored.deliveries -= 1;
                s.ready.push_front(stored);
            }
        }
    }
}

/// The in-process bus: a topic fanning out to filtered queues (one per served
/// country), and a confirmations queue.
#[derive(Debug)]
pub struct InMemoryBus {
    subscriptions: Mutex<Vec<(QueueFilter, Arc<InMemoryQueue>)>>,
    countries: Mutex<HashMap<CountryCode, Arc<InMemoryQueue>>>,
    confirmations: Arc<InMemoryQueue>,
}

impl InMemoryBus {
    /// A bus with a queue per served country and a confirmations queue,
    /// named as in process ([`in_process_queue`], [`CONFIRMATIONS_QUEUE`]).
    pub fn new(router: &CountryRouter) -> Self {
        let bus = Self {
            subscriptions: Mutex::new(Vec::new()),
            countries: Mutex::new(HashMap::new()),
            confirmations: Arc::new(InMemoryQueue::new(CONFIRMATIONS_QUEUE)),
        };
        for country in router.countries() {
            let q = bus.subscribe(
                &in_process_queue(country),
                QueueFilter::country_work(country),
            );
            lock(&bus.countries).insert(country, q);
        }
        bus
    }

    /// Adds a queue receiving the published events that pass `filter`.
    pub fn subscribe(&self, name: &str, filter: QueueFilter) -> Arc<InMemoryQueue> {
        let q = Arc::new(InMemoryQueue::new(name));
        lock(&self.subscriptions).push((filter, Arc::clone(&q)));
        q
    }

    /// A served country's queue.
    pub fn country_queue(&self, country: CountryCode) -> Option<Arc<InMemoryQueue>> {
        lock(&self.countries).get(&country).cloned()
    }

    /// The confirmations queue.
    pub fn confirmations(&self) -> Arc<InMemoryQueue> {
        Arc::clone(&self.confirmations)
    }
}

#[async_trait]
impl EventPublisher for InMemoryBus {
    async fn publish(&self, event: &EventEnvelope) -> anyhow::Result<()> {
        let subs = lock(&self.subscriptions).clone();
        for (filter, queue) in subs {
            if filter.matches(event) {
                queue.send(event.clone());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ConfirmationPublisher for InMemoryBus {
    async fn publish_confirmation(&self, confirmation: &EventEnvelope) -> anyhow::Result<()> {
        self.confirmations.send(confirmation.clone());
        Ok(())
    }
}
