use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
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

/// Whether a record no longer counts: answered longer than `ttl` ago, or
/// reserved longer than `lease` ago without an answer.
pub(crate) fn expired(
    record: &IdempotencyRecord,
    now: Timestamp,
    ttl: SignedDuration,
    lease: SignedDuration,
) -> bool {
    let age = now.duration_since(record.created_at);
    match record.state {
        IdempotencyState::InProgress => age >= lease,
        IdempotencyState::Done(_) => age >= ttl,
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(key)
            && !expired(existing, now, ttl, lease)
        {
            return Ok(Reservation::Existing(Box::new(existing.clone())));
        }
        records.insert(
            key.clone(),
            IdempotencyRecord {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
                state: IdempotencyState::InProgress,
                created_at: now,
            },
        );
        Ok(Reservation::Reserved)
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
