use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore, ProviderWriteError};

use super::DynamoDatabase;
use super::codec::{self, Item};
use super::schema::PROVIDER_ID;
use crate::schedule_json;

/// Providers in DynamoDB, one item each. A write is one `PutItem` whose
/// condition carries the version check (`attribute_not_exists` for a
/// create, `version = expected` for a replacement), so DynamoDB decides it
/// atomically against the item as it is at that moment.
#[derive(Debug, Clone)]
pub struct DynamoProviderStore {
    client: Client,
    table: String,
}

impl DynamoProviderStore {
    /// A store over `db`'s providers table.
    pub fn new(db: &DynamoDatabase) -> Self {
        Self {
            client: db.client().clone(),
            table: db.tables().providers.clone(),
        }
    }
}

const NAME: &str = "name";
const COUNTRY: &str = "country";
/// The whole [`Schedule`](cita_core::slots::Schedule) as JSON text, the same
/// document the SQL adapters store ([`schedule_json`]).
const SCHEDULE: &str = "schedule";
const VERSION: &str = "version";
const CREATED_AT: &str = "created_at_ms";
const UPDATED_AT: &str = "updated_at_ms";

fn encode(p: &Provider) -> anyhow::Result<Item> {
    let schedule = schedule_json::encode(&p.schedule)?;
    Ok(Item::from([
        (PROVIDER_ID.to_owned(), codec::string(p.id.as_str())),
        (NAME.to_owned(), codec::string(p.name.as_str())),
        (COUNTRY.to_owned(), codec::string(p.country.as_str())),
        (SCHEDULE.to_owned(), codec::string(schedule)),
        (
            VERSION.to_owned(),
            codec::number(codec::version(p.version)?),
        ),
        (
            CREATED_AT.to_owned(),
            codec::number(codec::millis(p.created_at)),
        ),
        (
            UPDATED_AT.to_owned(),
            codec::number(codec::millis(p.updated_at)),
        ),
    ]))
}

fn decode(item: &Item) -> anyhow::Result<Provider> {
    let id = codec::get_s(item, PROVIDER_ID)?;
    let schedule = schedule_json::decode(codec::get_s(item, SCHEDULE)?, id)?;
    Ok(Provider {
        id: codec::parse_provider_id(id)?,
        name: ProviderName::parse(codec::get_s(item, NAME)?)
            .with_context(|| format!("provider {id}: invalid name"))?,
        country: codec::parse_country(codec::get_s(item, COUNTRY)?)?,
        schedule,
        version: codec::parse_version(codec::get_n(item, VERSION)?)?,
        created_at: codec::instant(codec::get_n(item, CREATED_AT)?)?,
        updated_at: codec::instant(codec::get_n(item, UPDATED_AT)?)?,
    })
}

#[async_trait]
impl ProviderStore for DynamoProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PROVIDER_ID, codec::string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .context("reading a provider")?;
        out.item.as_ref().map(decode).transpose()
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(provider)?))
            .return_values(ReturnValue::None);
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", PROVIDER_ID),
            // A missing item has no version, so the comparison is false.
            Some(v) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":expected", codec::number(codec::version(v)?)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(ProviderWriteError::VersionConflict)
            }
            Err(e) => Err(anyhow::Error::new(e).context("writing a provider").into()),
        }
    }
}
