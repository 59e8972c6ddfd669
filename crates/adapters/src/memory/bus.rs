use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cita_core::events::{ConfirmationPublisher, EventEnvelope, EventPublisher, EventType};
use cita_core::routing::{CountryCode, CountryRouter};
use tokio::sync::Notify;

use super::lock;

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
    receives: u32,
}

#[derive(Debug, Default)]
struct QueueState {
    ready: VecDeque<Stored>,
    in_flight: HashMap<u64, Stored>,
    next_receipt: u64,
    dead: Vec<EventEnvelope>,
}

/// A message handed to a consumer; it stays in flight until acknowledged
/// (deleted) or returned.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Identifies this delivery for [`InMemoryQueue::ack`] / [`InMemoryQueue::nack`].
    pub receipt: u64,
    /// The message.
    pub event: EventEnvelope,
    /// How many times it has been received, this time included.
    pub receives: u32,
}

/// An at-least-once queue with a dead-letter list: a message returned
/// `max_receives` times is moved there with its body intact.
#[derive(Debug)]
pub struct InMemoryQueue {
    name: String,
    max_receives: u32,
    state: Mutex<QueueState>,
    arrived: Notify,
}

impl InMemoryQueue {
    /// An empty queue.
    pub fn new(name: impl Into<String>, max_receives: u32) -> Self {
        Self {
            name: name.into(),
            max_receives: max_receives.max(1),
            state: Mutex::new(QueueState::default()),
            arrived: Notify::new(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a message.
    pub fn send(&self, event: EventEnvelope) {
        lock(&self.state)
            .ready
            .push_back(Stored { event, receives: 0 });
        self.arrived.notify_one();
    }

    /// Takes the oldest ready message, if any.
    pub fn receive(&self) -> Option<Delivery> {
        let mut s = lock(&self.state);
        let mut stored = s.ready.pop_front()?;
        stored.receives += 1;
        let receipt = s.next_receipt;
        s.next_receipt += 1;
        let delivery = Delivery {
            receipt,
            event: stored.event.clone(),
            receives: stored.receives,
        };
        s.in_flight.insert(receipt, stored);
        Some(delivery)
    }

    /// Takes a message, waiting up to `timeout` for one to arrive.
    pub async fn receive_wait(&self, timeout: Duration) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(d) = self.receive() {
                return Some(d);
            }
            tokio::select! {
                () = self.arrived.notified() => {}
                () = tokio::time::sleep_until(deadline) => return self.receive(),
            }
        }
    }

    /// Deletes a processed message.
    pub fn ack(&self, receipt: u64) {
        lock(&self.state).in_flight.remove(&receipt);
    }

    /// Returns a message that failed: it becomes ready again, or goes to the
    /// dead-letter list once received `max_receives` times.
    pub fn nack(&self, receipt: u64) {
        let mut s = lock(&self.state);
        let Some(stored) = s.in_flight.remove(&receipt) else {
            return;
        };
        if stored.receives >= self.max_receives {
            s.dead.push(stored.event);
        } else {
            s.ready.push_back(stored);
            drop(s);
            self.arrived.notify_one();
        }
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

/// The in-process bus: a topic fanning out to filtered queues (one per served
/// country), and a confirmations queue.
#[derive(Debug)]
pub struct InMemoryBus {
    subscriptions: Mutex<Vec<(QueueFilter, Arc<InMemoryQueue>)>>,
    countries: Mutex<HashMap<CountryCode, Arc<InMemoryQueue>>>,
    confirmations: Arc<InMemoryQueue>,
}

/// Receives before a message is dead-lettered, as on the AWS queues.
pub const MAX_RECEIVES: u32 = 5;

impl InMemoryBus {
    /// A bus with a queue per served country (named by the router) and a
    /// confirmations queue.
    pub fn new(router: &CountryRouter) -> Self {
        let bus = Self {
            subscriptions: Mutex::new(Vec::new()),
            countries: Mutex::new(HashMap::new()),
            confirmations: Arc::new(InMemoryQueue::new("cita-confirmations", MAX_RECEIVES)),
        };
        for route in router.routes() {
            let q = bus.subscribe(&route.queue, QueueFilter::country_work(route.country));
            lock(&bus.countries).insert(route.country, q);
        }
        bus
    }

    /// Adds a queue receiving the published events that pass `filter`.
    pub fn subscribe(&self, name: &str, filter: QueueFilter) -> Arc<InMemoryQueue> {
        let q = Arc::new(InMemoryQueue::new(name, MAX_RECEIVES));
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
