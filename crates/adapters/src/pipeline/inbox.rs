//! The inbox port and the one consumer loop over it.
//!
//! An [`Inbox`] is where a worker's messages wait: a country's queue, the
//! confirmations queue, on SQS or in process. [`InboxWorker`] receives a
//! batch, hands each message to its [`Consumer`] (a [`CountryProcessor`] or
//! a [`ConfirmationHandler`]), and settles it by the one rule of
//! [`settle`]: acknowledged after success; dead-lettered, body intact, when
//! the failure is permanent ([`CountryError::is_permanent`],
//! [`ConfirmError::is_permanent`], an undecodable body) and the message has
//! had its last delivery; otherwise returned for another try. The inline
//! path of embedded mode applies the same rule to the relay's deliveries
//! (see [`super::inline`]).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cita_core::booking::ConfirmError;
use cita_core::country::{ConfirmationHandler, CountryError, CountryProcessor};
use cita_core::events::EventEnvelope;

use super::runtime::{Shutdown, Step, Worker};

/// Deliveries before a message that keeps failing is dead-lettered, as the
/// AWS queues' redrive policies say (EVENTS.md).
pub const MAX_DELIVERIES: u32 = 5;

/// A message received from an [`Inbox`] and not settled yet.
#[derive(Debug, Clone)]
pub struct Delivery<R> {
    /// The transport's id of the message (for logs).
    pub id: String,
    /// What settles it.
    pub receipt: R,
    /// The envelope, or why the body is not one.
    pub message: Result<EventEnvelope, String>,
    /// How many times it has been delivered, this time included.
    pub deliveries: u32,
}

/// Where a worker's messages wait.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// What settles one delivery.
    type Receipt: Send + Sync + Clone;

    /// The queue's name (the `queue` label of the metrics).
    fn name(&self) -> &str;

    /// Deliveries before a message that keeps failing is dead-lettered.
    fn max_deliveries(&self) -> u32 {
        MAX_DELIVERIES
    }

    /// The next batch, oldest first; empty when nothing came (a transport
    /// that long-polls waits for its poll time first).
    ///
    /// # Errors
    /// When the queue cannot be reached.
    async fn receive(&self) -> anyhow::Result<Vec<Delivery<Self::Receipt>>>;

    /// Deletes handled messages. A failure is only logged: the work is done
    /// and idempotent, so a message that comes back gives the same result.
    async fn ack(&self, receipts: &[Self::Receipt]);

    /// Returns a failed message for another try.
    async fn retry_later(&self, delivery: &Delivery<Self::Receipt>);

    /// Moves a message that can never succeed to the dead-letter queue,
    /// body intact.
    async fn dead_letter(&self, delivery: &Delivery<Self::Receipt>);

    /// Makes messages received but not handled (the worker is stopping)
    /// available again at once, without counting against them.
    async fn release(&self, receipts: &[Self::Receipt]);

    /// How often messages in hand must be kept from reappearing, for
    /// transports with visibility timeouts (`None`: never).
    fn keep_alive_every(&self) -> Option<Duration> {
        None
    }

    /// Keeps messages in hand from reappearing for another period.
    async fn keep_alive(&self, _receipts: &[Self::Receipt]) {}
}

#[async_trait]
impl<T: Inbox + ?Sized> Inbox for std::sync::Arc<T> {
    type Receipt = T::Receipt;
    fn name(&self) -> &str {
        (**self).name()
    }
    fn max_deliveries(&self) -> u32 {
        (**self).max_deliveries()
    }
    async fn receive(&self) -> anyhow::Result<Vec<Delivery<Self::Receipt>>> {
        (**self).receive().await
    }
    async fn ack(&self, receipts: &[Self::Receipt]) {
        (**self).ack(receipts).await;
    }
    async fn retry_later(&self, delivery: &Delivery<Self::Receipt>) {
        (**self).retry_later(delivery).await;
    }
    async fn dead_letter(&self, delivery: &Delivery<Self::Receipt>) {
        (**self).dead_letter(delivery).await;
    }
    async fn release(&self, receipts: &[Self::Receipt]) {
        (**self).release(receipts).await;
    }
    fn keep_alive_every(&self) -> Option<Duration> {
        (**self).keep_alive_every()
    }
    async fn keep_alive(&self, receipts: &[Self::Receipt]) {
        (**self).keep_alive(receipts).await;
    }
}

/// Why a message failed, and whether another delivery could succeed.
#[derive(Debug)]
pub struct Failure {
    /// Another delivery can never succeed.
    pub permanent: bool,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl From<CountryError> for Failure {
    fn from(e: CountryError) -> Self {
        Self {
            permanent: e.is_permanent(),
            error: e.into(),
        }
    }
}

impl From<ConfirmError> for Failure {
    fn from(e: ConfirmError) -> Self {
        Self {
            permanent: e.is_permanent(),
            error: e.into(),
        }
    }
}

/// What a queue's messages are for.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Handles one envelope; repeating it gives the same result.
    ///
    /// # Errors
    /// [`Failure`]: the message must not be acknowledged.
    async fn consume(&self, event: &EventEnvelope) -> Result<(), Failure>;
}

#[async_trait]
impl Consumer for CountryProcessor {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), Failure> {
        let outcome = self.process(event).await?;
        tracing::debug!(country = %self.country(), event_id = %event.event_id, ?outcome,
            "country event processed");
        Ok(())
    }
}

#[async_trait]
impl Consumer for ConfirmationHandler {
    async fn consume(&self, event: &EventEnvelope) -> Result<(), Failure> {
        let outcome = self.handle(event).await?;
        tracing::debug!(appointment_id = %event.appointment_id, version = %event.version,
            ?outcome, "confirmation applied");
        Ok(())
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done: delete it.
    Ack,
    /// Failed, worth another delivery.
    RetryLater,
    /// Failed for good: to the dead-letter queue.
    DeadLetter,
}

/// The one rule every transport settles by: success is acknowledged; a
/// permanent failure is dead-lettered at once (another delivery could only
/// fail the same way); any other failure is retried until the message has
/// had `max` deliveries, then dead-lettered.
pub fn settle(outcome: &Result<(), Failure>, deliveries: u32, max: u32) -> Settle {
    match outcome {
        Ok(()) => Settle::Ack,
        Err(f) if f.permanent || deliveries >= max => Settle::DeadLetter,
        Err(_) => Settle::RetryLater,
    }
}

/// Handles one delivered message with `consumer` (an undecodable body is a
/// permanent failure).
pub async fn consume(
    consumer: &dyn Consumer,
    message: Result<&EventEnvelope, &str>,
) -> Result<(), Failure> {
    match message {
        Ok(event) => consumer.consume(event).await.map_err(|f| Failure {
            error: f.error.context(format!(
                "event {} ({}) of appointment {} version {} for {}",
                event.event_id,
                event.event_type,
                event.appointment_id,
                event.version,
                event.country_iso
            )),
            ..f
        }),
        Err(why) => Err(Failure {
            permanent: true,
            error: anyhow::anyhow!("{why}"),
        }),
    }
}

/// Counts and logs how a message was settled, in the metrics every
/// transport reports (`cita_messages_{consumed,failed,dead_lettered}_total`).
pub fn record(queue: &str, id: &str, deliveries: u32, settled: Settle, failure: Option<&Failure>) {
    let error = failure
        .map(|f| format!("{:#}", f.error))
        .unwrap_or_default();
    match settled {
        Settle::Ack => {
            metrics::counter!("cita_messages_consumed_total", "queue" => queue.to_owned())
                .increment(1);
        }
        Settle::RetryLater => {
            metrics::counter!("cita_messages_failed_total", "queue" => queue.to_owned())
                .increment(1);
            tracing::warn!(queue, message_id = id, deliveries, %error, "message failed; it will be retried");
        }
        Settle::DeadLetter => {
            metrics::counter!("cita_messages_failed_total", "queue" => queue.to_owned())
                .increment(1);
            metrics::counter!("cita_messages_dead_lettered_total", "queue" => queue.to_owned())
                .increment(1);
            tracing::error!(queue, message_id = id, deliveries, %error,
                "message can never be processed; dead-lettered");
        }
    }
}

/// Consumes an [`Inbox`] with a [`Consumer`]: one batch per step, each
/// message settled by [`settle`], handled ones deleted together, and the
/// batch kept from reappearing while it is in hand.
pub struct InboxWorker<I: Inbox, C> {
    inbox: I,
    consumer: C,
}

impl<I: Inbox, C: Consumer> InboxWorker<I, C> {
    /// A worker feeding `inbox` to `consumer`.
    pub fn new(inbox: I, consumer: C) -> Self {
        Self { inbox, consumer }
    }

    /// The inbox.
    pub fn inbox(&self) -> &I {
        &self.inbox
    }

    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// Handles `batch` in order; with `shutdown` raised, the message being
    /// handled is finished, the handled ones deleted and the rest released.
    async fn handle(&self, batch: Vec<Delivery<I::Receipt>>, shutdown: &Shutdown) {
        // Indexes of the messages not settled yet, kept alive while the
        // batch is in hand (a handled message stays until it is deleted).
        let open: Mutex<Vec<usize>> = Mutex::new((0..batch.len()).collect());
        let work = async {
            let mut handled = Vec::with_capacity(batch.len());
            for (i, delivery) in batch.iter().enumerate() {
                if shutdown.is_raised() {
                    tracing::info!(
                        queue = self.inbox.name(),
                        messages = batch.len() - i,
                        "stopping: returning unhandled messages to the queue"
                    );
                    let rest: Vec<I::Receipt> =
                        batch[i..].iter().map(|d| d.receipt.clone()).collect();
                    self.inbox.ack(&handled).await;
                    locked(&open).clear();
                    self.inbox.release(&rest).await;
                    return;
                }
                let outcome = consume(
                    &self.consumer,
                    delivery.message.as_ref().map_err(String::as_str),
                )
                .await;
                let settled = settle(&outcome, delivery.deliveries, self.inbox.max_deliveries());
                record(
                    self.inbox.name(),
                    &delivery.id,
                    delivery.deliveries,
                    settled,
                    outcome.as_ref().err(),
                );
                match settled {
                    Settle::Ack => handled.push(delivery.receipt.clone()),
                    Settle::RetryLater => {
                        locked(&open).retain(|&j| j != i);
                        self.inbox.retry_later(delivery).await;
                    }
                    Settle::DeadLetter => {
                        locked(&open).retain(|&j| j != i);
                        self.inbox.dead_letter(delivery).await;
                    }
                }
            }
            self.inbox.ack(&handled).await;
            locked(&open).clear();
        };
        let keep_alive = async {
            let Some(period) = self.inbox.keep_alive_every() else {
                return std::future::pending::<()>().await;
            };
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let receipts: Vec<I::Receipt> = locked(&open)
                    .iter()
                    .map(|&i| batch[i].receipt.clone())
                    .collect();
                if !receipts.is_empty() {
                    self.inbox.keep_alive(&receipts).await;
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = keep_alive => {}
        }
    }
}

#[async_trait]
impl<I: Inbox, C: Consumer> Worker for InboxWorker<I, C> {
    fn name(&self) -> &str {
        self.inbox.name()
    }

    async fn process_one(&self, shutdown: &Shutdown) -> anyhow::Result<Step> {
        let batch = tokio::select! {
            biased;
            () = shutdown.wait() => return Ok(Step::Empty),
            received = self.inbox.receive() => received?,
        };
        if batch.is_empty() {
            return Ok(Step::Empty);
        }
        self.handle(batch, shutdown).await;
        Ok(Step::Processed)
    }
}

/// The batch bookkeeping is only mutated between awaits, so a poisoned lock
/// still holds consistent data.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use cita_core::booking::{Appointment, AppointmentStatus};
    use cita_core::events::EventType;
    use cita_core::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
    use cita_core::routing::CountryCode;
    use cita_core::slots::BufferMinutes;
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::memory::InMemoryQueue;

    fn event(hour: i64) -> EventEnvelope {
        let now: Timestamp = "2031-03-01T00:00:00Z".parse().unwrap();
        let start = now + SignedDuration::from_hours(hour);
        let a = Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("ana").unwrap(),
            patient_id: PatientId::parse("p-1").unwrap(),
            country: CountryCode::PE,
            start,
            end: start + SignedDuration::from_mins(30),
            buffer: BufferMinutes::default(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: now,
            updated_at: now,
        };
        EventEnvelope::for_appointment(EventType::Requested, &a, now)
    }

    /// Fails the events it was told to, permanently or not; counts calls.
    #[derive(Default)]
    struct Scripted {
        fails: HashMap<EventId, bool>,
        calls: Mutex<Vec<EventId>>,
    }

    #[async_trait]
    impl Consumer for Scripted {
        async fn consume(&self, event: &EventEnvelope) -> Result<(), Failure> {
            locked(&self.calls).push(event.event_id);
            match self.fails.get(&event.event_id) {
                None => Ok(()),
                Some(&permanent) => Err(Failure {
                    permanent,
                    error: anyhow::anyhow!("scripted failure"),
                }),
            }
        }
    }

    fn failure(permanent: bool) -> Result<(), Failure> {
        Err(Failure {
            permanent,
            error: anyhow::anyhow!("x"),
        })
    }

    #[test]
    fn the_settling_rule() {
        assert_eq!(settle(&Ok(()), 5, 5), Settle::Ack);
        assert_eq!(settle(&failure(true), 1, 5), Settle::DeadLetter);
        assert_eq!(settle(&failure(false), 1, 5), Settle::RetryLater);
        assert_eq!(settle(&failure(false), 4, 5), Settle::RetryLater);
        assert_eq!(settle(&failure(false), 5, 5), Settle::DeadLetter);
        assert_eq!(settle(&failure(false), 1_000, u32::MAX), Settle::RetryLater);
    }

    #[test]
    fn core_errors_say_whether_they_are_permanent() {
        let country = |e: CountryError| Failure::from(e).permanent;
        assert!(country(CountryError::NotServed(CountryCode::PE)));
        assert!(country(CountryError::Inconsistent));
        assert!(country(CountryError::WrongCountry {
            expected: CountryCode::PE,
            got: CountryCode::CL,
        }));
        assert!(!country(CountryError::Unexpected(anyhow::anyhow!("down"))));
        assert!(Failure::from(ConfirmError::NotFound).permanent);
        assert!(!Failure::from(ConfirmError::Unexpected(anyhow::anyhow!("down"))).permanent);
    }

    #[tokio::test]
    async fn good_messages_pass_a_permanent_failure_is_dead_at_once_a_transient_one_after_five() {
        let queue = Arc::new(InMemoryQueue::new("q"));
        let (good, poison, flaky) = (event(1), event(2), event(3));
        for e in [&good, &poison, &flaky] {
            queue.send(e.clone());
        }
        let consumer = Scripted {
            fails: HashMap::from([(poison.event_id, true), (flaky.event_id, false)]),
            ..Scripted::default()
        };
        let worker = InboxWorker::new(Arc::clone(&queue), consumer);
        let never = Shutdown::never();

        assert_eq!(worker.process_one(&never).await.unwrap(), Step::Processed);
        assert_eq!(queue.dead_letters(), vec![poison.clone()], "dead at once");
        assert_eq!(
            queue.len(),
            1,
            "the transient failure waits for another try"
        );
        for _ in 2..=5 {
            assert_eq!(worker.process_one(&never).await.unwrap(), Step::Processed);
        }
        assert_eq!(worker.process_one(&never).await.unwrap(), Step::Empty);
        assert_eq!(queue.dead_letters(), vec![poison.clone(), flaky.clone()]);
        assert_eq!((queue.len(), queue.in_flight()), (0, 0));
        let calls = locked(&worker.consumer().calls).clone();
        let count = |id| calls.iter().filter(|c| **c == id).count();
        assert_eq!(
            (
                count(good.event_id),
                count(poison.event_id),
                count(flaky.event_id)
            ),
            (1, 1, 5)
        );
    }

    #[tokio::test]
    async fn an_undecodable_body_is_a_permanent_failure() {
        let consumer = Scripted::default();
        let outcome = consume(&consumer, Err("not an envelope")).await;
        let failure = outcome.expect_err("nothing to consume");
        assert!(failure.permanent);
        assert!(locked(&consumer.calls).is_empty());
    }

    /// Raises the shutdown while it handles its first message.
    struct StopsOnFirst {
        trigger: Mutex<Option<crate::pipeline::ShutdownTrigger>>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl Consumer for StopsOnFirst {
        async fn consume(&self, _: &EventEnvelope) -> Result<(), Failure> {
            *locked(&self.calls) += 1;
            if let Some(t) = locked(&self.trigger).take() {
                t.raise();
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn shutdown_finishes_the_message_in_hand_and_returns_the_rest_uncounted() {
        let queue = Arc::new(InMemoryQueue::new("q"));
        let events: Vec<EventEnvelope> = (1..=3).map(event).collect();
        for e in &events {
            queue.send(e.clone());
        }
        let (trigger, shutdown) = Shutdown::new();
        let worker = InboxWorker::new(
            Arc::clone(&queue),
            StopsOnFirst {
                trigger: Mutex::new(Some(trigger)),
                calls: Mutex::new(0),
            },
        );

        assert_eq!(
            worker.process_one(&shutdown).await.unwrap(),
            Step::Processed
        );

        assert_eq!(*locked(&worker.consumer().calls), 1);
        assert_eq!((queue.len(), queue.in_flight()), (2, 0));
        // Released, not failed: the next receive is their first delivery.
        let again = queue.receive().await.unwrap();
        assert_eq!(
            again.iter().map(|d| d.deliveries).collect::<Vec<_>>(),
            vec![1, 1]
        );
        assert_eq!(
            again
                .iter()
                .map(|d| d.message.as_ref().unwrap().event_id)
                .collect::<Vec<_>>(),
            vec![events[1].event_id, events[2].event_id],
            "in their order"
        );
        // A raised shutdown stops waiting for work.
        assert_eq!(worker.process_one(&shutdown).await.unwrap(), Step::Empty);
    }
}
