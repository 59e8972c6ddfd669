use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore, ProviderWriteError};
use sqlx::PgPool;

use super::PostgresDatabase;
use super::codec::{self, Instant};
use crate::schedule_json;

/// Providers in PostgreSQL. Writes are single statements whose `WHERE`
/// carries the version check (`ON CONFLICT DO NOTHING` for a create), so a
/// concurrent writer can never slip between the check and the write: under
/// READ COMMITTED an `UPDATE` that finds its row changed by a transaction
/// that committed meanwhile re-evaluates `version = $8` on the new row.
#[derive(Debug, Clone)]
pub struct PostgresProviderStore {
    pool: PgPool,
}

impl PostgresProviderStore {
    /// A store over `db`'s pool.
    pub fn new(db: &PostgresDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    name: String,
    country: String,
    /// The whole [`Schedule`](cita_core::slots::Schedule) as the JSON of
    /// [`schedule_json`], a `jsonb` column read back as text.
    schedule: String,
    version: i64,
    created_at: Instant,
    updated_at: Instant,
}

impl TryFrom<ProviderRow> for Provider {
    type Error = anyhow::Error;

    fn try_from(r: ProviderRow) -> anyhow::Result<Self> {
        let schedule = schedule_json::decode(&r.schedule, &r.id)?;
        Ok(Provider {
            id: codec::parse_provider_id(&r.id)?,
            name: ProviderName::parse(&r.name)
                .with_context(|| format!("provider {}: invalid name", r.id))?,
            country: codec::parse_country(&r.country)?,
            schedule,
            version: codec::parse_version(r.version)?,
            created_at: codec::instant(r.created_at),
            updated_at: codec::instant(r.updated_at),
        })
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
        let row: Option<ProviderRow> = sqlx::query_as(SELECT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("reading a provider")?;
        row.map(Provider::try_from).transpose()
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
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
