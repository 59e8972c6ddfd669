//! [`SqsInbox`]: an SQS queue as the pipeline's [`Inbox`] — long polling,
//! batches, visibility heartbeats, delete after success only.
//!
//! A message is deleted only after its consumer succeeded. A failure leaves
//! it in the queue: it comes back when its visibility ends (or after the
//! shorter `failure_retry_delay`). A message settled as dead
//! ([`crate::pipeline::settle`]: a permanent failure such as a malformed
//! body or an unserved country, or a failure on its last receive) is sent
//! to the queue's dead-letter queue with its body intact, then deleted. The
//! queue's redrive policy (5 receives) stays as the safety net for messages
//! no consumer ever settles (a worker that crashes on them).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName,
};
use cita_core::events::EventEnvelope;

use super::resolve;
use super::topology::{DEFAULT_VISIBILITY_TIMEOUT, MAX_RECEIVES, Topology, whole_seconds};
use crate::pipeline::{Delivery, Inbox};

/// How an [`SqsInbox`] polls and settles messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConsumerSettings {
    /// Long-polling wait per receive (default 20 s, the most SQS allows;
    /// longer values are cut to 20 s).
    pub wait_time: Duration,
    /// Messages per receive, 1 to 10 (default 10; values outside are clamped).
    pub max_messages: i32,
    /// How long a received message stays invisible to other consumers
    /// (default 30 s, whole seconds, at least 1 s). While a batch is in hand
    /// the worker extends it every half of this.
    pub visibility_timeout: Duration,
    /// After a failure, make the message visible again after this delay
    /// instead of the rest of its visibility timeout (`None`, the default,
    /// keeps the timeout as the retry delay).
    pub failure_retry_delay: Option<Duration>,
    /// Receives after which a message that keeps failing is dead-lettered
    /// (default 5, the redrive policy's count).
    pub max_receives: u32,
}

impl Default for SqsConsumerSettings {
    fn default() -> Self {
        Self {
            wait_time: Duration::from_secs(20),
            max_messages: 10,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            failure_retry_delay: None,
            max_receives: MAX_RECEIVES,
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

/// What the bodies of a queue are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// An event envelope as JSON (the topic's subscriptions deliver SNS
    /// messages raw).
    Envelope,
    /// An EventBridge event whose `detail` is the envelope (what the
    /// confirmations rule delivers).
    BusEvent,
}

impl Body {
    fn decode(self, body: &str) -> Result<EventEnvelope, String> {
        match self {
            Self::Envelope => serde_json::from_str(body)
                .map_err(|e| format!("the message body is not an event envelope: {e}")),
            Self::BusEvent => {
                super::workers::confirmation_from_bus_event(body).map_err(|e| format!("{e:#}"))
            }
        }
    }
}

/// Settles one SQS message: its receipt handle and its body, kept for the
/// dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsReceipt {
    handle: Arc<str>,
    body: Arc<str>,
}

/// One SQS queue as an [`Inbox`], with the dead-letter queue its dead
/// messages go to.
#[derive(Debug, Clone)]
pub struct SqsInbox {
    client: aws_sdk_sqs::Client,
    queue: String,
    url: String,
    dlq_url: String,
    body: Body,
    settings: SqsConsumerSettings,
}

impl SqsInbox {
    /// The queue `queue` at `url`, dead-lettering to the queue at `dlq_url`.
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue: impl Into<String>,
        url: impl Into<String>,
        dlq_url: impl Into<String>,
        body: Body,
        settings: SqsConsumerSettings,
    ) -> Self {
        Self {
            client,
            queue: queue.into(),
            url: url.into(),
            dlq_url: dlq_url.into(),
            body,
            settings,
        }
    }

    /// The queue called `queue` and its dead-letter queue `dlq`, URLs looked up.
    ///
    /// # Errors
    /// When either queue does not exist or SQS cannot be reached.
    pub async fn connect(
        sdk: &SdkConfig,
        queue: &str,
        dlq: &str,
        body: Body,
        settings: SqsConsumerSettings,
    ) -> anyhow::Result<Self> {
        let client = aws_sdk_sqs::Client::new(sdk);
        let url = resolve::queue_url(&client, queue).await?;
        let dlq_url = resolve::queue_url(&client, dlq).await?;
        Ok(Self::new(client, queue, url, dlq_url, body, settings))
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.url
    }

    /// The settings in force.
    pub fn settings(&self) -> &SqsConsumerSettings {
        &self.settings
    }

    /// Sets the visibility timeout of up to ten messages. Failures are only
    /// logged: the worst outcome is a message reappearing sooner or later
    /// than planned, never a lost one.
    async fn set_visibility(&self, receipts: &[SqsReceipt], seconds: i32) {
        let mut entries = Vec::with_capacity(receipts.len());
        for (i, receipt) in receipts.iter().enumerate() {
            match ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(&*receipt.handle)
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

fn text_attribute(value: impl Into<String>) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[async_trait]
impl Inbox for SqsInbox {
    type Receipt = SqsReceipt;

    fn name(&self) -> &str {
        &self.queue
    }

    fn max_deliveries(&self) -> u32 {
        self.settings.max_receives
    }

    async fn receive(&self) -> anyhow::Result<Vec<Delivery<SqsReceipt>>> {
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
            let Some(handle) = m.receipt_handle() else {
                // Without a receipt it can be neither deleted nor extended;
                // SQS always sends one, and the message reappears anyway.
                tracing::warn!(queue = %self.queue, message_id = %id, "message without a receipt handle; skipped");
                continue;
            };
            let deliveries = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            // A missing body fails to decode like any malformed one.
            let body = m.body().unwrap_or_default();
            batch.push(Delivery {
                id,
                message: self.body.decode(body),
                receipt: SqsReceipt {
                    handle: handle.into(),
                    body: body.into(),
                },
                deliveries,
            });
        }
        Ok(batch)
    }

    /// Deletes the messages in one `DeleteMessageBatch` call.
    async fn ack(&self, receipts: &[SqsReceipt]) {
        let mut entries = Vec::with_capacity(receipts.len());
        for (i, receipt) in receipts.iter().enumerate() {
            match DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(&*receipt.handle)
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
                tracing::warn!(queue = %self.queue, messages = receipts.len(),
                    error = %format!("{:#}", anyhow::Error::new(e)),
                    "messages handled but not deleted; they will be handled again");
            }
        }
    }

    /// Leaves the message to reappear when its visibility ends, or after
    /// `failure_retry_delay` when one is set.
    async fn retry_later(&self, delivery: &Delivery<SqsReceipt>) {
        if let Some(delay) = self.settings.failure_retry_delay {
            self.set_visibility(
                std::slice::from_ref(&delivery.receipt),
                whole_seconds(delay),
            )
            .await;
        }
    }

    /// Sends the body, intact, to the dead-letter queue (with the source
    /// queue, the receive count and the failure as message attributes),
    /// then deletes the message. If sending fails, the message stays and
    /// comes back, and the redrive policy moves it after its fifth receive.
    async fn dead_letter(&self, delivery: &Delivery<SqsReceipt>) {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&*delivery.receipt.body);
        for (name, value) in [
            ("cita-source-queue", self.queue.clone()),
            ("cita-receives", delivery.deliveries.to_string()),
        ] {
            if let Some(v) = text_attribute(value) {
                send = send.message_attributes(name, v);
            }
        }
        match send.send().await {
            Ok(_) => self.ack(std::slice::from_ref(&delivery.receipt)).await,
            Err(e) => tracing::warn!(queue = %self.queue, message_id = %delivery.id,
                error = %format!("{:#}", anyhow::Error::new(e)),
                "sending to the dead-letter queue failed; the message stays and the redrive policy moves it"),
        }
    }

    /// Makes the messages visible again at once.
    async fn release(&self, receipts: &[SqsReceipt]) {
        for chunk in receipts.chunks(10) {
            self.set_visibility(chunk, 0).await;
        }
    }

    fn keep_alive_every(&self) -> Option<Duration> {
        Some(self.settings.heartbeat())
    }

    async fn keep_alive(&self, receipts: &[SqsReceipt]) {
        tracing::debug!(queue = %self.queue, messages = receipts.len(),
            "messages still in hand; extending their visibility");
        for chunk in receipts.chunks(10) {
            self.set_visibility(chunk, self.settings.visibility_secs())
                .await;
        }
    }
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
