use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};
use sqlx::PgPool;

use std::sync::Arc;

use super::PostgresDatabase;
use super::codec::{self, Instant};
use super::provider_cache::ProviderCache;
use crate::schedule_json;
use crate::sql::rows::ProviderRow;

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
    pool: PgPool,
    cache: Option<Arc<ProviderCache>>,
}

impl PostgresProviderStore {
    /// A store over `db`'s pool that reads every provider from the database.
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
            cache: None,
        }
    }

    /// A store over `db`'s pool that caches providers, kept fresh by
    /// `LISTEN`/`NOTIFY`: a task listens on one more connection to the same
    /// database, outside the pool, while the store or a clone of it lives
    /// and the pool is open. Must be called within a Tokio runtime.
    pub fn cached(db: &PostgresDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
            cache: Some(ProviderCache::start(db.pool())),
        }
    }

    async fn read(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let row: Option<ProviderRow> = sqlx::query_as(SELECT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("reading a provider")?;
        row.map(Provider::try_from).transpose()
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

const SELECT: &str = "SELECT id, name, country, schedule::text AS schedule, version, \
                      created_at, updated_at FROM providers WHERE id = $1";

const CREATE: &str = "INSERT INTO providers \
                      (id, name, country, schedule, version, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) \
                      ON CONFLICT (id) DO NOTHING";

const REPLACE: &str = "UPDATE providers SET name = $2, country = $3, schedule = $4::jsonb, \
                       version = $5, created_at = $6, updated_at = $7 \
                       WHERE id = $1 AND version = $8";

#[async_trait]
impl ProviderStore for PostgresProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let Some(cache) = &self.cache else {
            return self.read(id).await;
        };
        let ticket = match cache.lookup(id.as_str()) {
            Ok(provider) => return Ok(Some(provider)),
            Err(ticket) => ticket,
        };
        let provider = self.read(id).await?;
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
        let schedule = schedule_json::encode(&provider.schedule)?;
        let query = sqlx::query(match expected {
            None => CREATE,
            Some(_) => REPLACE,
        })
        .bind(provider.id.as_str())
        .bind(provider.name.as_str())
        .bind(provider.country.as_str())
        .bind(schedule)
        .bind(codec::version(provider.version)?)
        .bind(Instant::of(provider.created_at))
        .bind(Instant::of(provider.updated_at));
        let query = match expected {
            None => query,
            Some(v) => query.bind(codec::version(v)?),
        };
        let done = query
            .execute(&self.pool)
            .await
            .context("writing a provider")?;
        if done.rows_affected() == 0 {
            return Err(ProviderWriteError::VersionConflict);
        }
        Ok(())
    }
}
