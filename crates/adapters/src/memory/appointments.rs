use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use cita_core::booking::{Appointment, AppointmentQuery, AppointmentStore, AppointmentWriteError};
use cita_core::events::{EventEnvelope, Outbox, OutboxBacklog, OutboxEntry};
use cita_core::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use uuid::Uuid;

use super::lock;

/// (start, id) pairs; `Uuid::nil()` is the smallest id, for range bounds.
type Key = (Timestamp, Uuid);
type Index<K> = HashMap<K, BTreeSet<Key>>;

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<Uuid, Appointment>,
    /// Every appointment per provider / patient, by (start, id): listings.
    provider_all: Index<ProviderId>,
    patient_all: Index<PatientId>,
    /// Active appointments only: overlap checks and availability.
    provider_active: Index<ProviderId>,
    patient_active: Index<PatientId>,
    /// Unpublished events by write order.
    outbox: BTreeMap<u64, OutboxEntry>,
    outbox_ids: HashMap<EventId, u64>,
    next_seq: u64,
}

/// Appointments and their outbox in memory. One mutex covers the overlap
/// check, the write and the outbox entry, so they are atomic together; the
/// active-appointment indexes keep the check proportional to the neighbours
/// of the new time, not the provider's history.
#[derive(Debug, Default)]
pub struct InMemoryAppointmentStore {
    state: Mutex<State>,
    written: Notify,
}

/// The longest time a provider can be held by one appointment.
const MAX_HOLD: SignedDuration =
    SignedDuration::from_secs(MAX_APPOINTMENT.as_secs() + BufferMinutes::MAX as i64 * 60);

impl InMemoryAppointmentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when a change (and so an outbox entry) has been written since
    /// the last call; lets a relay wait instead of polling.
    pub async fn changed(&self) {
        self.written.notified().await;
    }

    /// Every appointment, for tests that check invariants over the whole store.
    pub fn all(&self) -> Vec<Appointment> {
        let mut v: Vec<_> = lock(&self.state).by_id.values().cloned().collect();
        v.sort_by_key(|a| (a.start, a.id));
        v
    }
}

impl State {
    /// The refusal of writing `a`, if any: for a new booking
    /// (`new_booking`) its provider is checked with
    /// [`Appointment::blocks_booking`], for a change of an existing one
    /// with the holds alone.
    fn clash(&self, a: &Appointment, new_booking: bool) -> Option<AppointmentWriteError> {
        if !a.status.is_active() {
            return None;
        }
        let (_, hold_end) = a.provider_hold();
        if let Some(set) = self.provider_active.get(&a.provider_id) {
            let lo = (a.start - MAX_HOLD, Uuid::nil());
            for (_, id) in set.range(lo..(hold_end, Uuid::nil())) {
                let other = &self.by_id[id];
                let blocks = if new_booking {
                    other.blocks_booking(a)
                } else {
                    other.provider_overlaps(a)
                };
                if other.id != a.id && blocks {
                    return Some(AppointmentWriteError::SlotTaken);
                }
            }
        }
        if let Some(set) = self.patient_active.get(&a.patient_id) {
            let lo = (a.start - MAX_APPOINTMENT, Uuid::nil());
            for (_, id) in set.range(lo..(a.end, Uuid::nil())) {
                let other = &self.by_id[id];
                if other.id != a.id && other.patient_overlaps(a) {
                    return Some(AppointmentWriteError::PatientBusy);
                }
            }
        }
        None
    }

    fn unindex(&mut self, a: &Appointment) {
        let key = (a.start, a.id.as_uuid());
        for set in [
            self.provider_all.get_mut(&a.provider_id),
            self.provider_active.get_mut(&a.provider_id),
        ]
        .into_iter()
        .flatten()
        {
            set.remove(&key);
        }
        for set in [
            self.patient_all.get_mut(&a.patient_id),
            self.patient_active.get_mut(&a.patient_id),
        ]
        .into_iter()
        .flatten()
        {
            set.remove(&key);
        }
    }

    fn index(&mut self, a: &Appointment) {
        let key = (a.start, a.id.as_uuid());
        self.provider_all
            .entry(a.provider_id.clone())
            .or_default()
            .insert(key);
        self.patient_all
            .entry(a.patient_id.clone())
            .or_default()
            .insert(key);
        if a.status.is_active() {
            self.provider_active
                .entry(a.provider_id.clone())
                .or_default()
                .insert(key);
            self.patient_active
                .entry(a.patient_id.clone())
                .or_default()
                .insert(key);
        }
    }

    fn push_event(&mut self, event: &EventEnvelope, now: Timestamp) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outbox_ids.insert(event.event_id, seq);
        self.outbox.insert(
            seq,
            OutboxEntry {
                event: event.clone(),
                created_at: now,
            },
        );
    }
}

#[async_trait]
impl AppointmentStore for InMemoryAppointmentStore {
    async fn insert(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        {
            let mut s = lock(&self.state);
            if s.by_id.contains_key(&appointment.id.as_uuid()) {
                return Err(
                    anyhow::anyhow!("appointment {} already exists", appointment.id).into(),
                );
            }
            if let Some(e) = s.clash(appointment, true) {
                return Err(e);
            }
            s.index(appointment);
            s.by_id
                .insert(appointment.id.as_uuid(), appointment.clone());
            s.push_event(event, appointment.updated_at);
        }
        self.written.notify_waiters();
        Ok(())
    }

    async fn update<'a>(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&'a EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        {
            let mut s = lock(&self.state);
            let Some(old) = s.by_id.get(&appointment.id.as_uuid()).cloned() else {
                return Err(AppointmentWriteError::VersionConflict);
            };
            if old.version != expected {
                return Err(AppointmentWriteError::VersionConflict);
            }
            if let Some(e) = s.clash(appointment, false) {
                return Err(e);
            }
            s.unindex(&old);
            s.index(appointment);
            s.by_id
                .insert(appointment.id.as_uuid(), appointment.clone());
            if let Some(event) = event {
                s.push_event(event, appointment.updated_at);
            }
        }
        self.written.notify_waiters();
        Ok(())
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<Appointment>> {
        Ok(lock(&self.state).by_id.get(&id.as_uuid()).cloned())
    }

    async fn list(&self, query: &AppointmentQuery) -> anyhow::Result<Vec<Appointment>> {
        let s = lock(&self.state);
        let set = match (&query.provider, &query.patient) {
            (Some(p), _) => s.provider_all.get(p),
            (None, Some(p)) => s.patient_all.get(p),
            (None, None) => None,
        };
        let Some(set) = set else {
            return Ok(Vec::new());
        };
        let lo = match (query.after, query.from) {
            (Some((t, id)), _) => std::ops::Bound::Excluded((t, id.as_uuid())),
            (None, Some(f)) => std::ops::Bound::Included((f, Uuid::nil())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        Ok(set
            .range((lo, std::ops::Bound::Unbounded))
            .map(|(_, id)| &s.by_id[id])
            .take_while(|a| query.until.is_none_or(|u| a.start < u))
            .filter(|a| query.matches(a))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn active_in_range(
        &self,
        provider: &ProviderId,
        from: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Vec<Appointment>> {
        let s = lock(&self.state);
        let Some(set) = s.provider_active.get(provider) else {
            return Ok(Vec::new());
        };
        let lo = (from - MAX_APPOINTMENT, Uuid::nil());
        Ok(set
            .range(lo..(until, Uuid::nil()))
            .map(|(_, id)| &s.by_id[id])
            .filter(|a| a.end > from)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Outbox for InMemoryAppointmentStore {
    async fn unpublished(&self, limit: usize) -> anyhow::Result<Vec<OutboxEntry>> {
        Ok(lock(&self.state)
            .outbox
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_published(&self, ids: &[EventId]) -> anyhow::Result<()> {
        let mut s = lock(&self.state);
        for id in ids {
            if let Some(seq) = s.outbox_ids.remove(id) {
                s.outbox.remove(&seq);
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let s = lock(&self.state);
        Ok(OutboxBacklog {
            pending: s.outbox.len() as u64,
            oldest: s.outbox.values().next().map(|e| e.created_at),
        })
    }
}
