//! [`SqsConsumer`]: long polling, batches, visibility heartbeats, delete
//! after success only.
//!
//! A message is deleted only after its handler succeeded. A failure (a
//! malformed body included) leaves it in the queue: it comes back when its
//! visibility ends (or after the shorter `failure_retry_delay`), and once it
//! has been received `max_receives` times, SQS's redrive policy moves it to
//! the dead-letter queue with its body intact. Nothing here ever moves or
//! drops a message by itself, so the queue's redrive policy is the single
//! place that decides when a message is given up.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use tokio::sync::watch;

use super::resolve;
use super::topology::{DEFAULT_VISIBILITY_TIMEOUT, MAX_RECEIVES, Topology, whole_seconds};
use crate::pipeline::Step;

/// Handles one message body for an [`SqsConsumer`].
#[async_trait]
pub trait SqsMessageHandler: Send + Sync {
    /// Handles a body. `Ok` means the work is done and the message may be
    /// deleted.
    ///
    /// # Errors
    /// Anything that should leave the message for another try (and finally
    /// the dead-letter queue): a malformed body, a refused or failed event.
    async fn handle(&self, body: &str) -> anyhow::Result<()>;
}

/// How an [`SqsConsumer`] polls and settles messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConsumerSettings {
    /// Long-polling wait per receive (default 20 s, the most SQS allows;
    /// longer values are cut to 20 s).
    pub wait_time: Duration,
    /// Messages per receive, 1 to 10 (default 10; values outside are clamped).
    pub max_messages: i32,
    /// How long a received message stays invisible to other consumers
    /// (default 30 s, whole seconds, at least 1 s). While a batch is in hand
    /// the consumer extends it every half of this.
    pub visibility_timeout: Duration,
    /// After a failure, make the message visible again after this delay
    /// instead of the rest of its visibility timeout (`None`, the default,
    /// keeps the timeout as the retry delay).
    pub failure_retry_delay: Option<Duration>,
    /// Receives before the queue's redrive policy dead-letters a message
    /// (default 5); used to say so in the logs, not to decide it.
    pub max_receives: u32,
    /// Pause after a failed receive, doubled on each consecutive failure up
    /// to 30 s (default 1 s).
    pub error_backoff: Duration,
}

impl Default for SqsConsumerSettings {
    fn default() -> Self {
        Self {
            wait_time: Duration::from_secs(20),
            max_messages: 10,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            failure_retry_delay: None,
            max_receives: MAX_RECEIVES,
            error_backoff: Duration::from_secs(1),
        }
    }
}

impl SqsConsumerSettings {
    /// The defaults, with the topology's visibility timeout and receive limit.
    pub fn for_topology(topology: &Topology) -> Self {
        Self {
            visibility_timeout: topology.visibility_timeout(),
            max_receives: topology.max_receives(),
            ..Self::default()
        }
    }

    fn wait_secs(&self) -> i32 {
        whole_seconds(self.wait_time).min(20)
    }

    fn visibility_secs(&self) -> i32 {
        whole_seconds(self.visibility_timeout).max(1)
    }

    /// Heartbeats come at half the visibility timeout, so one late or failed
    /// call still leaves time for the next before the message reappears.
    fn heartbeat(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.visibility_secs()).unwrap_or(1)) / 2
    }
}

/// A message received and not settled yet.
#[derive(Debug)]
struct InHand {
    id: String,
    receipt: String,
    body: String,
    receives: u32,
}

/// Consumes one SQS queue: receives batches by long polling, hands each body
/// to an [`SqsMessageHandler`], deletes it after success only, and keeps the
/// messages in hand invisible while they wait or are being handled.
///
/// Messages of a batch are handled one after the other, in the order SQS
/// returned them; run more consumers on the queue for more throughput.
#[derive(Debug, Clone)]
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue: String,
    url: String,
    settings: SqsConsumerSettings,
}

impl SqsConsumer {
    /// A consumer of the queue `queue` at `url`.
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
        url: impl Into<String>,
        settings: SqsConsumerSettings,
    ) -> Self {
        Self {
            client,
            queue: queue.into(),
            url: url.into(),
            settings,
        }
    }

    /// A consumer of the queue called `queue`, its URL looked up.
    ///
    /// # Errors
    /// When the queue does not exist or SQS cannot be reached.
    pub async fn connect(
        sdk: &SdkConfig,
        queue: &str,
        settings: SqsConsumerSettings,
    ) -> anyhow::Result<Self> {
        let client = aws_sdk_sqs::Client::new(sdk);
        let url = resolve::queue_url(&client, queue).await?;
        Ok(Self::new(client, queue, url, settings))
    }

    /// The queue's name (also the `queue` label of the metrics).
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.url
    }

    /// The settings in force.
    pub fn settings(&self) -> &SqsConsumerSettings {
        &self.settings
    }

    /// Receives one batch (waiting up to `wait_time`) and handles every
    /// message of it.
    ///
    /// # Errors
    /// When receiving fails. Failures of single messages are not errors of
    /// the step: they are logged, counted and left for redelivery.
    pub async fn process_one(&self, handler: &dyn SqsMessageHandler) -> anyhow::Result<Step> {
        let batch = self.receive().await?;
        if batch.is_empty() {
            return Ok(Step::Empty);
        }
        self.handle_batch(handler, batch, None).await;
        Ok(Step::Processed)
    }

    /// Polls and handles until `shutdown` resolves. Then it stops polling (a
    /// receive in flight is abandoned: whatever SQS may have handed it
    /// reappears after its visibility timeout), finishes the message being
    /// handled, and makes the batch's other messages visible again at once,
    /// without handling or deleting them.
    pub async fn run(
        &self,
        handler: &dyn SqsMessageHandler,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            // Only fails when the loop is gone, which needs this signal first.
            let _ = stop_tx.send(true);
        };
        tokio::join!(signal, self.poll_until_stopped(handler, stop_rx));
    }

    async fn poll_until_stopped(
        &self,
        handler: &dyn SqsMessageHandler,
        mut stop: watch::Receiver<bool>,
    ) {
        tracing::info!(queue = %self.queue, "consuming");
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let received = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                r = self.receive() => r,
            };
            match received {
                Ok(batch) => {
                    failures = 0;
                    if !batch.is_empty() {
                        self.handle_batch(handler, batch, Some(&stop)).await;
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = self
                        .settings
                        .error_backoff
                        .saturating_mul(1 << failures.min(6).saturating_sub(1))
                        .min(Duration::from_secs(30));
                    tracing::warn!(queue = %self.queue, error = %format!("{e:#}"), ?pause,
                        "receiving from SQS failed; retrying");
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::info!(queue = %self.queue, "stopped consuming");
    }

    async fn receive(&self) -> anyhow::Result<Vec<InHand>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(self.settings.max_messages.clamp(1, 10))
            .wait_time_seconds(self.settings.wait_secs())
            .visibility_timeout(self.settings.visibility_secs())
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .with_context(|| format!("receiving from SQS queue {}", self.queue))?;
        let mut batch = Vec::new();
        for m in out.messages() {
            let id = m.message_id().unwrap_or_default().to_owned();
            let Some(receipt) = m.receipt_handle() else {
                // Without a receipt it can be neither deleted nor extended;
                // SQS always sends one, and the message reappears anyway.
                tracing::warn!(queue = %self.queue, message_id = %id, "message without a receipt handle; skipped");
                continue;
            };
            let receives = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            batch.push(InHand {
                id,
                receipt: receipt.to_owned(),
                // A missing body fails to decode like any malformed one.
                body: m.body().unwrap_or_default().to_owned(),
                receives,
            });
        }
        Ok(batch)
    }

    /// Handles `batch` in order while a heartbeat keeps every unsettled
    /// message of it invisible, then deletes the messages handled, in one
    /// call. With `stop` raised, the message being handled is finished, the
    /// ones handled are deleted and the rest released.
    async fn handle_batch(
        &self,
        handler: &dyn SqsMessageHandler,
        batch: Vec<InHand>,
        stop: Option<&watch::Receiver<bool>>,
    ) {
        // Indexes into `batch` of the messages not settled yet (a handled
        // message stays until it is deleted, so it cannot reappear first).
        let open: Mutex<Vec<usize>> = Mutex::new((0..batch.len()).collect());
        let work = async {
            let mut handled = Vec::with_capacity(batch.len());
            for (i, message) in batch.iter().enumerate() {
                if stop.is_some_and(|s| *s.borrow()) {
                    self.delete(&batch, &handled).await;
                    lock(&open).clear();
                    self.release(&batch[i..]).await;
                    return;
                }
                match handler.handle(&message.body).await {
                    Ok(()) => {
                        metrics::counter!("cita_messages_consumed_total", "queue" => self.queue.clone())
                            .increment(1);
                        handled.push(i);
                    }
                    Err(e) => {
                        lock(&open).retain(|&j| j != i);
                        self.failed(message, &e).await;
                    }
                }
            }
            self.delete(&batch, &handled).await;
            lock(&open).clear();
        };
        let heartbeat = async {
            let period = self.settings.heartbeat();
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let receipts: Vec<&str> = lock(&open)
                    .iter()
                    .filter_map(|&i| batch.get(i).map(|m| m.receipt.as_str()))
                    .collect();
                if !receipts.is_empty() {
                    tracing::debug!(queue = %self.queue, messages = receipts.len(),
                        "messages still in hand; extending their visibility");
                    self.set_visibility(&receipts, self.settings.visibility_secs())
                        .await;
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = heartbeat => {}
        }
    }

    /// Deletes the messages of `batch` at `indexes` (all handled), in one
    /// `DeleteMessageBatch` call. A message not deleted is only logged: the
    /// work is done and idempotent, so it comes back and is handled again
    /// with the same result.
    async fn delete(&self, batch: &[InHand], indexes: &[usize]) {
        let mut entries = Vec::with_capacity(indexes.len());
        for &i in indexes {
            match DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(&batch[i].receipt)
                .build()
            {
                Ok(entry) => entries.push(entry),
                Err(e) => tracing::warn!(queue = %self.queue, error = %e, "cannot build a delete"),
            }
        }
        if entries.is_empty() {
            return;
        }
        match self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    tracing::warn!(queue = %self.queue, entry = f.id(), code = f.code(),
                        message = f.message().unwrap_or_default(),
                        "message handled but not deleted; it will be handled again");
                }
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue, messages = indexes.len(),
                    error = %format!("{:#}", anyhow::Error::new(e)),
                    "messages handled but not deleted; they will be handled again");
            }
        }
    }

    /// Counts and logs a failed message and, if configured, makes it
    /// visible again sooner than its visibility timeout.
    async fn failed(&self, message: &InHand, e: &anyhow::Error) {
        metrics::counter!("cita_messages_failed_total", "queue" => self.queue.clone()).increment(1);
        if message.receives >= self.settings.max_receives {
            tracing::error!(queue = %self.queue, message_id = %message.id,
                receives = message.receives, error = %format!("{e:#}"),
                "message failed on its last receive; SQS moves it to the dead-letter queue");
        } else {
            tracing::warn!(queue = %self.queue, message_id = %message.id,
                receives = message.receives, error = %format!("{e:#}"),
                "message failed; it will be retried");
        }
        if let Some(delay) = self.settings.failure_retry_delay {
            self.set_visibility(&[message.receipt.as_str()], whole_seconds(delay))
                .await;
        }
    }

    /// Makes messages that were never handled visible again right away, so
    /// another consumer takes them without waiting for their timeout.
    async fn release(&self, messages: &[InHand]) {
        if messages.is_empty() {
            return;
        }
        tracing::info!(queue = %self.queue, messages = messages.len(),
            "stopping: returning unhandled messages to the queue");
        let receipts: Vec<&str> = messages.iter().map(|m| m.receipt.as_str()).collect();
        self.set_visibility(&receipts, 0).await;
    }

    /// Sets the visibility timeout of up to ten messages. Failures are only
    /// logged: the worst outcome is a message reappearing sooner or later
    /// than planned, never a lost one.
    async fn set_visibility(&self, receipts: &[&str], seconds: i32) {
        let mut entries = Vec::with_capacity(receipts.len());
        for (i, receipt) in receipts.iter().enumerate() {
            match ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(*receipt)
                .visibility_timeout(seconds)
                .build()
            {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    tracing::warn!(queue = %self.queue, error = %e, "cannot build a visibility change");
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        match self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    // A message settled in the meantime has no visibility to change.
                    tracing::debug!(queue = %self.queue, code = f.code(),
                        message = f.message().unwrap_or_default(),
                        "visibility change refused for one message");
                }
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue, seconds,
                    error = %format!("{:#}", anyhow::Error::new(e)),
                    "changing message visibility failed");
            }
        }
    }
}

/// Locks the batch bookkeeping; it is only ever mutated between awaits, so a
/// poisoned lock still holds consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_stay_inside_what_sqs_accepts() {
        let s = SqsConsumerSettings {
            wait_time: Duration::from_secs(60),
            visibility_timeout: Duration::ZERO,
            ..SqsConsumerSettings::default()
        };
        assert_eq!(s.wait_secs(), 20);
        assert_eq!(s.visibility_secs(), 1);
        assert_eq!(s.heartbeat(), Duration::from_millis(500));
        assert_eq!(
            SqsConsumerSettings::default().heartbeat(),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn topology_settings_carry_over() {
        let t = Topology::default()
            .with_visibility_timeout(Duration::from_secs(2))
            .expect("in range");
        let s = SqsConsumerSettings::for_topology(&t);
        assert_eq!(s.visibility_timeout, Duration::from_secs(2));
        assert_eq!(s.max_receives, 5);
        assert_eq!(s.wait_time, Duration::from_secs(20));
    }
}
