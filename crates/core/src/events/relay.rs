use std::sync::Arc;

use super::ports::{EventPublisher, Outbox};

/// What one relay step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOutcome {
    /// This many events were published and marked.
    Published(usize),
    /// The outbox was empty.
    Empty,
}

/// Moves events from the primary store's outbox to the [`EventPublisher`]:
/// publish, then mark. A crash between the two publishes again (at least once);
/// nothing is ever lost.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    batch: usize,
}

impl OutboxRelay {
    /// A relay taking up to `batch` entries per step.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn EventPublisher>, batch: usize) -> Self {
        Self {
            outbox,
            publisher,
            batch: batch.max(1),
        }
    }

    /// Publishes one batch, oldest first. On the first failure it marks what
    /// went out and stops, so later events of the same appointment never
    /// overtake an earlier one.
    ///
    /// # Errors
    /// The outbox's or the publisher's failure; entries not marked stay for
    /// the next step.
    pub async fn relay_once(&self) -> anyhow::Result<RelayOutcome> {
        let entries = self.outbox.unpublished(self.batch).await?;
        if entries.is_empty() {
            return Ok(RelayOutcome::Empty);
        }
        let mut done = Vec::with_capacity(entries.len());
        let mut failure = None;
        for entry in &entries {
            match self.publisher.publish(&entry.event).await {
                Ok(()) => done.push(entry.event.event_id),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !done.is_empty() {
            self.outbox.mark_published(&done).await?;
        }
        match failure {
            Some(e) => Err(e.context("publishing an outbox event")),
            None => Ok(RelayOutcome::Published(done.len())),
        }
    }

    /// Relays until the outbox is empty or a step fails.
    ///
    /// # Errors
    /// As [`OutboxRelay::relay_once`].
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        while let RelayOutcome::Published(n) = self.relay_once().await? {
            total += n;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use anyhow::anyhow;
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::booking::{Appointment, AppointmentStatus};
    use crate::events::{EventEnvelope, EventType, MockEventPublisher, MockOutbox, OutboxEntry};
    use crate::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
    use crate::routing::CountryCode;
    use crate::slots::BufferMinutes;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("an RFC 3339 instant")
    }

    /// One appointment's life as its outbox holds it: requested, rescheduled,
    /// cancelled (versions 1, 2, 3), oldest first.
    fn three_entries() -> Vec<OutboxEntry> {
        let booked_at = at("2026-11-20T12:00:00Z");
        let start = at("2026-11-23T14:00:00Z");
        let booked = Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("ana").expect("a valid id"),
            patient_id: PatientId::parse("p-12345").expect("a valid id"),
            country: CountryCode::PE,
            start,
            end: start + SignedDuration::from_mins(30),
            buffer: BufferMinutes::default(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: booked_at,
            updated_at: booked_at,
        };
        let later = start + SignedDuration::from_hours(1);
        let moved_at = booked_at + SignedDuration::from_mins(5);
        let moved = booked
            .reschedule(
                later,
                later + SignedDuration::from_mins(30),
                booked.buffer,
                moved_at,
            )
            .expect("pending");
        let cancelled_at = moved_at + SignedDuration::from_mins(5);
        let cancelled = moved.cancel(None, cancelled_at).expect("pending");
        [
            (EventType::Requested, &booked, booked_at),
            (EventType::Rescheduled, &moved, moved_at),
            (EventType::Cancelled, &cancelled, cancelled_at),
        ]
        .into_iter()
        .map(|(t, a, when)| OutboxEntry {
            event: EventEnvelope::for_appointment(t, a, when),
            created_at: when,
        })
        .collect()
    }

    fn ids(entries: &[OutboxEntry]) -> Vec<EventId> {
        entries.iter().map(|e| e.event.event_id).collect()
    }

    /// An outbox over `entries` that behaves like a store: `unpublished`
    /// answers what is not marked yet, oldest first. Records every mark.
    fn outbox_over(entries: Vec<OutboxEntry>) -> (MockOutbox, Arc<Mutex<Vec<Vec<EventId>>>>) {
        let pending = Arc::new(Mutex::new(entries));
        let marks = Arc::new(Mutex::new(Vec::new()));
        let mut outbox = MockOutbox::new();
        let p = Arc::clone(&pending);
        outbox.expect_unpublished().returning(move |limit| {
            Ok(p.lock()
                .expect("not poisoned")
                .iter()
                .take(limit)
                .cloned()
                .collect())
        });
        let (p, m) = (Arc::clone(&pending), Arc::clone(&marks));
        outbox.expect_mark_published().returning(move |ids| {
            m.lock().expect("not poisoned").push(ids.to_vec());
            p.lock()
                .expect("not poisoned")
                .retain(|e| !ids.contains(&e.event.event_id));
            Ok(())
        });
        (outbox, marks)
    }

    /// A publisher that fails its `fail_on`-th call (1-based) and records
    /// every event it was asked to publish.
    fn publisher_failing_on(fail_on: usize) -> (MockEventPublisher, Arc<Mutex<Vec<EventId>>>) {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let a = Arc::clone(&attempts);
        let mut publisher = MockEventPublisher::new();
        publisher.expect_publish().returning(move |event| {
            let mut a = a.lock().expect("not poisoned");
            a.push(event.event_id);
            if a.len() == fail_on {
                Err(anyhow!("SNS: throttled"))
            } else {
                Ok(())
            }
        });
        (publisher, attempts)
    }

    #[tokio::test]
    async fn a_failed_publish_keeps_that_event_and_the_later_ones_in_the_outbox() {
        let entries = three_entries();
        let id = ids(&entries);
        let (outbox, marks) = outbox_over(entries);
        let (publisher, attempts) = publisher_failing_on(2);
        let relay = OutboxRelay::new(Arc::new(outbox), Arc::new(publisher), 10);

        let error = relay.relay_once().await.expect_err("the publisher failed");

        assert!(format!("{error:#}").contains("SNS: throttled"), "{error:#}");
        // Only what went out is marked; the third was never tried, so it
        // cannot overtake the second.
        assert_eq!(*marks.lock().expect("not poisoned"), vec![vec![id[0]]]);
        assert_eq!(*attempts.lock().expect("not poisoned"), vec![id[0], id[1]]);

        let next = relay.relay_once().await.expect("the publisher is back");

        assert_eq!(next, RelayOutcome::Published(2));
        assert_eq!(
            *marks.lock().expect("not poisoned"),
            vec![vec![id[0]], vec![id[1], id[2]]]
        );
        assert_eq!(
            *attempts.lock().expect("not poisoned"),
            vec![id[0], id[1], id[1], id[2]]
        );
        assert_eq!(
            relay.relay_once().await.expect("empty"),
            RelayOutcome::Empty
        );
    }

    #[tokio::test]
    async fn a_failure_on_the_first_event_marks_nothing() {
        let entries = three_entries();
        let id = ids(&entries);
        let mut outbox = MockOutbox::new();
        outbox
            .expect_unpublished()
            .times(1)
            .returning(move |_| Ok(entries.clone()));
        outbox.expect_mark_published().times(0);
        let (publisher, attempts) = publisher_failing_on(1);
        let relay = OutboxRelay::new(Arc::new(outbox), Arc::new(publisher), 10);

        assert!(relay.relay_once().await.is_err());
        assert_eq!(*attempts.lock().expect("not poisoned"), vec![id[0]]);
    }

    #[tokio::test]
    async fn a_failed_mark_is_an_error_so_the_batch_goes_out_again() {
        let entries = three_entries();
        let mut outbox = MockOutbox::new();
        outbox
            .expect_unpublished()
            .times(1)
            .withf(|limit| *limit == 2)
            .returning(move |limit| Ok(entries.iter().take(limit).cloned().collect()));
        outbox
            .expect_mark_published()
            .times(1)
            .returning(|_| Err(anyhow!("outbox table locked")));
        let (publisher, attempts) = publisher_failing_on(usize::MAX);
        let relay = OutboxRelay::new(Arc::new(outbox), Arc::new(publisher), 2);

        let error = relay.relay_once().await.expect_err("marking failed");

        assert_eq!(error.to_string(), "outbox table locked");
        assert_eq!(attempts.lock().expect("not poisoned").len(), 2);
    }

    #[tokio::test]
    async fn drain_stops_at_the_first_failure() {
        let (outbox, marks) = outbox_over(three_entries());
        let (publisher, _) = publisher_failing_on(3);
        // One entry per step: two steps succeed, the third fails.
        let relay = OutboxRelay::new(Arc::new(outbox), Arc::new(publisher), 1);

        assert!(relay.drain().await.is_err());
        assert_eq!(marks.lock().expect("not poisoned").len(), 2);
        assert_eq!(relay.drain().await.expect("the rest goes out"), 1);
    }
}
