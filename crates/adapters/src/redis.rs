//! Redis slot lock (feature `redis`): `SET key token NX PX ttl` to take it, a
//! Lua compare-and-delete to release it, one key per (provider, slot start).
//!
//! The lock is never the source of truth (see [`cita_core::booking::SlotLock`]):
//! every error — Redis down, slow beyond the response timeout, a connection
//! lost — is returned to the booking service, which counts it
//! (`cita_lock_unavailable_total`), logs it and goes on; the store's own
//! overlap refusal keeps bookings correct. Connecting is lazy, so the service
//! starts and serves while Redis is down and picks the lock up again once it
//! answers.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use cita_core::booking::{LockKey, LockToken, SlotLock};
use jiff::SignedDuration;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// Deletes the key only if it still holds the caller's token.
const RELEASE: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// Timeouts of the lock's Redis calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisLockSettings {
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for an answer; past it the call fails and booking
    /// goes on without the lock.
    pub response_timeout: Duration,
}

impl Default for RedisLockSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_millis(250),
        }
    }
}

/// A [`SlotLock`] on Redis.
pub struct RedisSlotLock {
    client: redis::Client,
    prefix: String,
    settings: RedisLockSettings,
    connection: Mutex<Option<ConnectionManager>>,
}

impl RedisSlotLock {
    /// A lock on the Redis at `url` (`redis://host:port/db`), keys named
    /// `{prefix}lock:{provider}:{unix seconds}`. Does not connect yet.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn new(url: &str, prefix: &str, settings: RedisLockSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .context("invalid Redis URL (not shown: it may hold a password)")?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            settings,
            connection: Mutex::new(None),
        })
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.response_timeout))
            .set_number_of_retries(1);
        let manager = tokio::time::timeout(
            self.settings.connect_timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .context("connecting to Redis timed out")?
        .context("connecting to Redis")?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    fn key(&self, key: &LockKey) -> String {
        format!("{}lock:{}", self.prefix, key.as_string())
    }

    /// `PING`, for readiness checks.
    ///
    /// # Errors
    /// Redis does not answer.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut c = self.connection().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .context("Redis PING")?;
        Ok(())
    }
}

#[async_trait]
impl SlotLock for RedisSlotLock {
    async fn try_acquire(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: SignedDuration,
    ) -> anyhow::Result<bool> {
        let mut c = self.connection().await?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(1).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(&token.0)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut c)
            .await
            .context("Redis SET NX PX")?;
        Ok(set.is_some())
    }

    async fn release(&self, key: &LockKey, token: &LockToken) -> anyhow::Result<()> {
        let mut c = self.connection().await?;
        let _: i64 = redis::Script::new(RELEASE)
            .key(self.key(key))
            .arg(&token.0)
            .invoke_async(&mut c)
            .await
            .context("Redis compare-and-delete")?;
        Ok(())
    }
}
