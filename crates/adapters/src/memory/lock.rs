use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use cita_core::booking::{LockKey, LockToken, SlotLock};
use jiff::SignedDuration;

use super::lock;

/// Slot locks in a map, expiring by their ttl (monotonic time).
#[derive(Debug, Default)]
pub struct InMemorySlotLock {
    held: Mutex<HashMap<LockKey, (LockToken, Instant)>>,
}

impl InMemorySlotLock {
    /// No locks held.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SlotLock for InMemorySlotLock {
    async fn try_acquire(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: SignedDuration,
    ) -> anyhow::Result<bool> {
        let now = Instant::now();
        let mut held = lock(&self.held);
        if let Some((_, until)) = held.get(key)
            && *until > now
        {
            return Ok(false);
        }
        held.insert(key.clone(), (token.clone(), now + ttl.unsigned_abs()));
        Ok(true)
    }

    async fn release(&self, key: &LockKey, token: &LockToken) -> anyhow::Result<()> {
        let mut held = lock(&self.held);
        if matches!(held.get(key), Some((t, _)) if t == token) {
            held.remove(key);
        }
        Ok(())
    }
}
