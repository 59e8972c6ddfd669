use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};
use sqlx::MySqlPool;

use super::{MySqlDatabase, codec, is_duplicate_key};
use crate::schedule_json;
use crate::sql::rows::ProviderRow;

/// Providers in a MySQL database. Each write is one statement that carries
/// its own condition: a create is a plain `INSERT` whose duplicate key means
/// the provider exists, a replace an `UPDATE … WHERE id = ? AND version = ?`
/// that matches no row when the stored version differs. So a concurrent
/// writer can never slip between a check and its write, and no transaction
/// is needed.
#[derive(Debug, Clone)]
pub struct MySqlProviderStore {
    pool: MySqlPool,
}

impl MySqlProviderStore {
    /// A store over `db`'s pool.
    pub fn new(db: &MySqlDatabase) -> Self {
        Self {
            pool: db.pool().clone(),
        }
    }
}

const SELECT: &str = "SELECT id, name, country, schedule, version, created_at, updated_at \
                      FROM providers WHERE id = ?";

const CREATE: &str = "INSERT INTO providers \
                      (id, name, country, schedule, version, created_at, updated_at) \
                      VALUES (?, ?, ?, ?, ?, ?, ?)";

/// The id and the expected version are the last two parameters.
const REPLACE: &str = "UPDATE providers SET name = ?, country = ?, schedule = ?, \
                       version = ?, created_at = ?, updated_at = ? \
                       WHERE id = ? AND version = ?";

#[async_trait]
impl ProviderStore for MySqlProviderStore {
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
        let Some(expected) = expected else {
            let created = sqlx::query(CREATE)
                .bind(provider.id.as_str())
                .bind(provider.name.as_str())
                .bind(provider.country.as_str())
                .bind(schedule)
                .bind(codec::version(provider.version)?)
                .bind(codec::millis(provider.created_at))
                .bind(codec::millis(provider.updated_at))
                .execute(&self.pool)
                .await;
            return match created {
                Ok(_) => Ok(()),
                // The only unique key is the id: the provider exists.
                Err(e) if is_duplicate_key(&e) => Err(ProviderWriteError::VersionConflict),
                Err(e) => Err(anyhow::Error::new(e).context("creating a provider").into()),
            };
        };
        let done = sqlx::query(REPLACE)
            .bind(provider.name.as_str())
            .bind(provider.country.as_str())
            .bind(schedule)
            .bind(codec::version(provider.version)?)
            .bind(codec::millis(provider.created_at))
            .bind(codec::millis(provider.updated_at))
            .bind(provider.id.as_str())
            .bind(codec::version(expected)?)
            .execute(&self.pool)
            .await
            .context("replacing a provider")?;
        // Rows matched (CLIENT_FOUND_ROWS), so a write of identical content
        // counts: only a missing row or another version gives 0.
        if done.rows_affected() == 0 {
            return Err(ProviderWriteError::VersionConflict);
        }
        Ok(())
    }
}
