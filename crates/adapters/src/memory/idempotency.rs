use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};

use super::lock;

/// Idempotency records in a map.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<IdempotencyKey, IdempotencyRecord>>,
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(key)
            && !existing.is_expired(now, ttl, lease)
        {
            return Ok(Reservation::Existing(Box::new(existing.clone())));
        }
        let replaced = records.insert(
            key.clone(),
            IdempotencyRecord {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
                state: IdempotencyState::InProgress,
                created_at: now,
                appointment,
            },
        );
        Ok(Reservation::Reserved {
            replaced: replaced.map(Box::new),
        })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let mut records = lock(&self.records);
        let record = records
            .get_mut(key)
            .ok_or_else(|| anyhow::anyhow!("idempotency key {key} is not reserved"))?;
        record.state = IdempotencyState::Done(outcome.clone());
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()> {
        let mut records = lock(&self.records);
        if matches!(records.get(key), Some(r) if r.state == IdempotencyState::InProgress) {
            records.remove(key);
        }
        Ok(())
    }
}
