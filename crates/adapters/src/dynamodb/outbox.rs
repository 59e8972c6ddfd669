//! The outbox of [`DynamoAppointmentStore`]: one item per unpublished
//! event, written in the transaction of its change and deleted when
//! published, read in write order through the `by-order` index.
//!
//! The index is eventually consistent, so `unpublished` checks what it
//! found against the table itself (strongly consistent reads): an entry
//! already deleted is dropped, and an entry whose predecessor (the
//! appointment's previous event) is still in the table but not yet visible
//! in the index waits for the next call, so that per appointment events
//! never leave out of version order.

use std::collections::{BTreeSet, HashSet};

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, KeysAndAttributes, WriteRequest};
use cita_core::events::{EventEnvelope, Outbox, OutboxBacklog, OutboxEntry};
use cita_core::ids::EventId;

use super::appointments::DynamoAppointmentStore;
use super::backoff;
use super::codec::{self, Item};
use super::schema::{BY_ORDER, EVENT_ID, ORDER, QUEUE, QUEUE_PENDING};

const APPOINTMENT: &str = "appointment_id";
const CREATED_AT: &str = "created_at_ms";
/// The appointment's previous event still possibly unpublished, if any.
const PREVIOUS: &str = "prev_event";
const ENVELOPE: &str = "envelope";

/// DynamoDB's limits per `BatchGetItem` and per `BatchWriteItem`.
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;
/// How many times a batch asks again for what DynamoDB left unprocessed.
const BATCH_ATTEMPTS: u32 = 10;

/// The outbox item of an event: `created` is the change's time (the
/// appointment's `updated_at`, as in every store), `order` its position in
/// write order, `previous` the appointment's previous event.
pub(super) fn entry(
    event: &EventEnvelope,
    envelope: &str,
    created: i64,
    order: i64,
    previous: Option<&str>,
) -> Item {
    let mut item = Item::from([
        (
            EVENT_ID.to_owned(),
            codec::string(codec::event_id(event.event_id)),
        ),
        (QUEUE.to_owned(), codec::string(QUEUE_PENDING)),
        (
            ORDER.to_owned(),
            codec::string(codec::outbox_order(order, event.event_id)),
        ),
        (
            APPOINTMENT.to_owned(),
            codec::string(codec::appointment_id(event.appointment_id)),
        ),
        (CREATED_AT.to_owned(), codec::number(created)),
        (ENVELOPE.to_owned(), codec::string(envelope)),
    ]);
    if let Some(p) = previous {
        item.insert(PREVIOUS.to_owned(), codec::string(p));
    }
    item
}

/// An entry as the index shows it.
struct Candidate {
    event: String,
    appointment: String,
    previous: Option<String>,
    item: Item,
}

impl Candidate {
    fn of(item: &Item) -> anyhow::Result<Self> {
        Ok(Self {
            event: codec::get_s(item, EVENT_ID)?.to_owned(),
            appointment: codec::get_s(item, APPOINTMENT)?.to_owned(),
            previous: codec::opt_s(item, PREVIOUS)?.map(str::to_owned),
            item: item.clone(),
        })
    }

    fn entry(&self) -> anyhow::Result<OutboxEntry> {
        Ok(OutboxEntry {
            event: serde_json::from_str(codec::get_s(&self.item, ENVELOPE)?)
                .with_context(|| format!("outbox entry {}: unreadable envelope", self.event))?,
            created_at: codec::instant(codec::get_n(&self.item, CREATED_AT)?)?,
        })
    }
}

/// Which entries of a scan in write order may be handed out.
#[derive(Default)]
struct Release {
    accepted: HashSet<String>,
    /// Appointments with an earlier entry that is pending but not handed
    /// out: none of their later entries may overtake it.
    blocked: HashSet<String>,
}

impl Release {
    /// Whether `c` goes out, given which of the events asked about are
    /// still in the table (`pending`).
    fn admit(&mut self, c: &Candidate, pending: &HashSet<String>) -> bool {
        if !pending.contains(&c.event) {
            // Published since the index was read: the index lags the table.
            return false;
        }
        if self.blocked.contains(&c.appointment) {
            return false;
        }
        let ready = c
            .previous
            .as_ref()
            .is_none_or(|p| self.accepted.contains(p) || !pending.contains(p));
        if ready {
            self.accepted.insert(c.event.clone());
        } else {
            self.blocked.insert(c.appointment.clone());
        }
        ready
    }
}

impl DynamoAppointmentStore {
    /// Which of `events` are still in the outbox table (strongly consistent).
    async fn still_pending(&self, events: BTreeSet<String>) -> anyhow::Result<HashSet<String>> {
        let table = &self.tables.outbox;
        let mut pending = HashSet::new();
        let events: Vec<String> = events.into_iter().collect();
        for chunk in events.chunks(BATCH_GET_MAX) {
            let mut wanted: Vec<Item> = chunk
                .iter()
                .map(|e| Item::from([(EVENT_ID.to_owned(), codec::string(e))]))
                .collect();
            for attempt in 0..BATCH_ATTEMPTS {
                if wanted.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(
                        table,
                        KeysAndAttributes::builder()
                            .set_keys(Some(std::mem::take(&mut wanted)))
                            .consistent_read(true)
                            .projection_expression("#e")
                            .expression_attribute_names("#e", EVENT_ID)
                            .build()?,
                    )
                    .send()
                    .await
                    .context("reading outbox entries")?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default()
                {
                    pending.insert(codec::get_s(&item, EVENT_ID)?.to_owned());
                }
                wanted = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            anyhow::ensure!(
                wanted.is_empty(),
                "DynamoDB left outbox entries unread after {BATCH_ATTEMPTS} attempts"
            );
        }
        Ok(pending)
    }
}

#[async_trait]
impl Outbox for DynamoAppointmentStore {
    async fn unpublished(&self, limit: usize) -> anyhow::Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let page = i32::try_from(limit.min(BATCH_GET_MAX)).unwrap_or(1);
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.outbox)
            .index_name(BY_ORDER)
            .key_condition_expression("#q = :pending")
            .expression_attribute_names("#q", QUEUE)
            .expression_attribute_values(":pending", codec::string(QUEUE_PENDING))
            .limit(page)
            .into_paginator()
            .send();
        let mut release = Release::default();
        while let Some(found) = pages.try_next().await.context("reading the outbox")? {
            let candidates = found
                .items()
                .iter()
                .map(Candidate::of)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut ask = BTreeSet::new();
            for c in &candidates {
                ask.insert(c.event.clone());
                if let Some(p) = c
                    .previous
                    .as_ref()
                    .filter(|p| !release.accepted.contains(*p))
                {
                    ask.insert(p.clone());
                }
            }
            let pending = self.still_pending(ask).await?;
            for c in &candidates {
                if release.admit(c, &pending) {
                    out.push(c.entry()?);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn mark_published(&self, ids: &[EventId]) -> anyhow::Result<()> {
        // A batch may not name one key twice.
        let ids: BTreeSet<String> = ids.iter().map(|id| codec::event_id(*id)).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let table = &self.tables.outbox;
        for chunk in ids.chunks(BATCH_WRITE_MAX) {
            let mut left = chunk
                .iter()
                .map(|id| {
                    Ok(WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .key(EVENT_ID, codec::string(id))
                                .build()?,
                        )
                        .build())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            for attempt in 0..BATCH_ATTEMPTS {
                if left.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                // Deleting an absent item succeeds: unknown and repeated
                // ids are ignored.
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut left))
                    .send()
                    .await
                    .context("marking outbox entries published")?;
                left = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .unwrap_or_default();
            }
            anyhow::ensure!(
                left.is_empty(),
                "DynamoDB left outbox entries undeleted after {BATCH_ATTEMPTS} attempts"
            );
        }
        Ok(())
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.outbox)
            .index_name(BY_ORDER)
            .key_condition_expression("#q = :pending")
            .projection_expression("#c")
            .expression_attribute_names("#q", QUEUE)
            .expression_attribute_names("#c", CREATED_AT)
            .expression_attribute_values(":pending", codec::string(QUEUE_PENDING))
            .into_paginator()
            .send();
        let mut backlog = OutboxBacklog::default();
        while let Some(found) = pages.try_next().await.context("counting the outbox")? {
            if backlog.oldest.is_none()
                && let Some(first) = found.items().first()
            {
                backlog.oldest = Some(codec::instant(codec::get_n(first, CREATED_AT)?)?);
            }
            backlog.pending += u64::try_from(found.items().len()).context("count out of range")?;
        }
        Ok(backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(event: &str, appointment: &str, previous: Option<&str>) -> Candidate {
        Candidate {
            event: event.to_owned(),
            appointment: appointment.to_owned(),
            previous: previous.map(str::to_owned),
            item: Item::new(),
        }
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_entry_waits_for_a_pending_predecessor_the_index_does_not_show_yet() {
        let mut r = Release::default();
        // e2 follows e1, which is still in the table but not in the index.
        assert!(!r.admit(&candidate("e2", "a", Some("e1")), &set(&["e1", "e2", "e3"])));
        assert!(
            !r.admit(&candidate("e3", "a", Some("e2")), &set(&["e1", "e2", "e3"])),
            "and so does every later entry of that appointment"
        );
        assert!(
            r.admit(&candidate("f1", "b", None), &set(&["f1"])),
            "other appointments go on"
        );
    }

    #[test]
    fn an_entry_goes_after_its_predecessor_or_once_it_is_published() {
        let mut r = Release::default();
        let pending = set(&["e1", "e2"]);
        assert!(r.admit(&candidate("e1", "a", None), &pending));
        assert!(r.admit(&candidate("e2", "a", Some("e1")), &pending));
        let mut r = Release::default();
        assert!(
            r.admit(&candidate("e3", "a", Some("e2")), &set(&["e3"])),
            "the predecessor was published already"
        );
        assert!(
            !r.admit(&candidate("e4", "c", None), &set(&["e3"])),
            "an entry already deleted is not handed out again"
        );
    }
}
