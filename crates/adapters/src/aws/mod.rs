//! AWS messaging (feature `aws`): the SNS → SQS → EventBridge → SQS
//! pipeline of EVENTS.md.
//!
//! # Layout
//!
//! - [`topology`]: [`Topology`], every resource name from one prefix and the
//!   served countries, and the queue settings.
//! - [`provision`](mod@provision): [`provision()`] creates or verifies
//!   those resources idempotently and returns a printable [`ProvisionReport`].
//! - [`sns`]: [`SnsEventPublisher`], the outbox relay's publisher.
//! - [`eventbridge`]: [`EventBridgeConfirmationPublisher`], the country
//!   processors' confirmation publisher.
//! - [`sqs`]: [`SqsInbox`], an SQS queue as the pipeline's inbox: long
//!   polling, visibility heartbeats, delete after success, dead letters.
//! - [`workers`]: [`SqsCountryWorker`] and [`SqsConfirmationWorker`], the
//!   pipeline's one consumer loop over those queues.
//! - [`resolve`]: queue URLs and ARNs, topic ARNs by name.
//!
//! The SDK crates are re-exported so callers build an
//! [`aws_config::SdkConfig`] and clients without naming the same versions.

pub mod eventbridge;
pub mod provision;
pub mod resolve;
pub mod sns;
pub mod sqs;
pub mod topology;
pub mod workers;

pub use aws_config;
pub use aws_sdk_eventbridge;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;

pub use eventbridge::EventBridgeConfirmationPublisher;
pub use provision::{
    ProvisionReport, ProvisionStatus, ProvisionedResource, ResourceKind, provision,
};
pub use sns::SnsEventPublisher;
pub use sqs::{Body, SqsConsumerSettings, SqsInbox, SqsReceipt};
pub use topology::{Topology, confirmation_source};
pub use workers::{
    SqsConfirmationWorker, SqsCountryWorker, confirmation_from_bus_event, confirmation_worker,
    country_worker,
};
