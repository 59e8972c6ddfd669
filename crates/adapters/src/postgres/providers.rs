use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};

use std::sync::Arc;

use super::PostgresDatabase;
use super::provider_cache::ProviderCache;
use crate::sql::SqlProviderStore;

/// Providers in PostgreSQL. Writes are single statements whose `WHERE`
/// carries the version check (`ON CONFLICT DO NOTHING` for a create), so a
/// concurrent writer can never slip between the check and the write: under
/// READ COMMITTED an `UPDATE` that finds its row changed by a transaction
/// that committed meanwhile re-evaluates `version = $8` on the new row.
///
/// [`PostgresProviderStore::cached`] keeps the providers it read in the
/// process and drops one when PostgreSQL announces a change to it (see the
/// private `provider_cache` module for how fresh that keeps them).
#[derive(Debug, Clone)]
pub struct PostgresProviderStore {
    store: SqlProviderStore<PostgresDatabase>,
    cache: Option<Arc<ProviderCache>>,
}

impl PostgresProviderStore {
    /// A store over `db`'s pool that reads every provider from the database.
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            store: SqlProviderStore::new(db),
            cache: None,
        }
    }

    /// A store over `db`'s pool that caches providers, kept fresh by
    /// `LISTEN`/`NOTIFY`: a task listens on one more connection to the same
    /// database, outside the pool, while the store or a clone of it lives
    /// and the pool is open. Must be called within a Tokio runtime.
    pub fn cached(db: &PostgresDatabase) -> Self {
        Self {
            store: SqlProviderStore::new(db),
            cache: Some(ProviderCache::start(db.pool())),
        }
    }
}

/// Drops a provider from the cache when created and again when dropped:
/// around a write, however it ends (a request dropped mid-write included,
/// whose write may still commit).
struct Dropping<'a> {
    cache: Option<&'a ProviderCache>,
    id: &'a str,
}

impl<'a> Dropping<'a> {
    fn new(cache: Option<&'a ProviderCache>, id: &'a str) -> Self {
        if let Some(c) = cache {
            c.drop_one(id);
        }
        Self { cache, id }
    }
}

impl Drop for Dropping<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.cache {
            c.drop_one(self.id);
        }
    }
}

#[async_trait]
impl ProviderStore for PostgresProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let Some(cache) = &self.cache else {
            return self.store.get(id).await;
        };
        let ticket = match cache.lookup(id.as_str()) {
            Ok(provider) => return Ok(Some(provider)),
            Err(ticket) => ticket,
        };
        let provider = self.store.get(id).await?;
        if let (Some(ticket), Some(p)) = (ticket, &provider) {
            cache.fill(ticket, p);
        }
        Ok(provider)
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let _dropping = Dropping::new(self.cache.as_deref(), provider.id.as_str());
        self.store.put(provider, expected).await
    }
}
