//! Providers, in every dialect.
//!
//! Each write is one statement that carries its own condition: a create
//! inserts only if the id is new (`ON CONFLICT DO NOTHING`, or a plain
//! `INSERT` whose duplicate key says the provider exists), a replace is an
//! `UPDATE … WHERE id = … AND version = …` that matches no row when the
//! stored version differs. So a concurrent writer can never slip between a
//! check and its write, and no transaction is needed. (Under READ
//! COMMITTED an `UPDATE` that finds its row changed by a transaction that
//! committed meanwhile evaluates its `WHERE` again on the new row; MySQL
//! counts rows matched, `CLIENT_FOUND_ROWS`, so an identical write still
//! counts.)

use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};

use super::dialect::{Dialect, Handle as _, is_unique_violation};
use super::driver::{Driver, FromSql as _, Param, Sql};
use super::rows::ProviderRow;
use super::{Instant, version};
use crate::schedule_json;

/// A provider store's statements. Parameters: `select` the id; `create`
/// and `replace` the id, name, country, schedule (JSON text), version,
/// created and updated instants, and for `replace` the expected version.
/// `select` returns the columns of [`ProviderRow`] in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderSql {
    pub(crate) select: Sql,
    pub(crate) create: Sql,
    pub(crate) replace: Sql,
}

/// The columns a provider read selects, in [`ProviderRow`]'s order.
macro_rules! provider_columns {
    () => {
        "id, name, country, schedule, version, created_at, updated_at"
    };
}
pub(crate) use provider_columns;

/// Providers in one relational database.
#[derive(Debug, Clone)]
pub struct SqlProviderStore<D> {
    db: D,
}

impl<D: Clone> SqlProviderStore<D> {
    /// A store over `db`.
    pub fn new(db: &D) -> Self {
        Self { db: db.clone() }
    }
}

#[async_trait]
impl<D: Dialect> ProviderStore for SqlProviderStore<D> {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let mut conn = self.db.read().await?;
        let query = D::PROVIDERS.select.bind(&[Param::Text(id.as_str())]);
        let row = D::Db::fetch_optional(conn.conn(), query)
            .await
            .context("reading a provider")?;
        row.map(|r| Provider::try_from(ProviderRow::from_sql::<D::Db>(&r)?))
            .transpose()
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let schedule = schedule_json::encode(&provider.schedule)?;
        let mut params = vec![
            Param::Text(provider.id.as_str()),
            Param::Text(provider.name.as_str()),
            Param::Text(provider.country.as_str()),
            Param::Text(&schedule),
            Param::Int(version(provider.version)?),
            Param::Instant(Instant::of(provider.created_at)),
            Param::Instant(Instant::of(provider.updated_at)),
        ];
        let sql = match expected {
            None => D::PROVIDERS.create,
            Some(v) => {
                params.push(Param::Int(version(v)?));
                D::PROVIDERS.replace
            }
        };
        let mut conn = self.db.write().await?;
        match D::Db::execute(conn.conn(), sql.bind(&params)).await {
            Ok(0) => Err(ProviderWriteError::VersionConflict),
            Ok(_) => Ok(()),
            // The only unique key is the id: the provider exists.
            Err(e) if is_unique_violation(&e) => Err(ProviderWriteError::VersionConflict),
            Err(e) => Err(anyhow::Error::new(e).context("writing a provider").into()),
        }
    }
}
