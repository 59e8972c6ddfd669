use super::{SqliteDatabase, codec};
use crate::schedule_json;
use crate::sql::rows::ProviderRow;
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};

/// Providers in a SQLite file. Writes are single statements whose `WHERE`
/// carries the version check (`ON CONFLICT DO NOTHING` for a create), so a
/// concurrent writer can never slip between the check and the write.
#[derive(Debug, Clone)]
pub struct SqliteProviderStore {
    db: SqliteDatabase,
}

impl SqliteProviderStore {
    /// A store over `db`.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self { db: db.clone() }
    }
}

const SELECT: &str = "SELECT id, name, country, schedule, version, created_at, updated_at \
                      FROM providers WHERE id = ?1";

const CREATE: &str = "INSERT INTO providers \
                      (id, name, country, schedule, version, created_at, updated_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                      ON CONFLICT (id) DO NOTHING";

const REPLACE: &str = "UPDATE providers SET name = ?2, country = ?3, schedule = ?4, \
                       version = ?5, created_at = ?6, updated_at = ?7 \
                       WHERE id = ?1 AND version = ?8";

#[async_trait]
impl ProviderStore for SqliteProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let mut conn = self.db.read().await?;
        let row: Option<ProviderRow> = sqlx::query_as(SELECT)
            .bind(id.as_str())
            .fetch_optional(conn.conn())
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
        .bind(codec::millis(provider.created_at))
        .bind(codec::millis(provider.updated_at));
        let query = match expected {
            None => query,
            Some(v) => query.bind(codec::version(v)?),
        };
        let mut turn = self.db.write_turn().await?;
        let done = query
            .execute(turn.conn())
            .await
            .context("writing a provider")?;
        if done.rows_affected() == 0 {
            return Err(ProviderWriteError::VersionConflict);
        }
        Ok(())
    }
}
