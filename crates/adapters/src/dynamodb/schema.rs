//! The tables, their keys and indexes, and their idempotent creation.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{TableNames, TableState};

/// The providers table's key.
pub(super) const PROVIDER_ID: &str = "id";
/// The appointments table's key.
pub(super) const APPOINTMENT_ID: &str = "id";
/// The provider listing index: by provider, sorted by (start, id).
pub(super) const BY_PROVIDER: &str = "by-provider";
/// The patient listing index: by patient, sorted by (start, id).
pub(super) const BY_PATIENT: &str = "by-patient";
/// The provider attribute, the partition key of [`BY_PROVIDER`].
pub(super) const PROVIDER: &str = "provider_id";
/// The patient attribute, the partition key of [`BY_PATIENT`].
pub(super) const PATIENT: &str = "patient_id";
/// The listing indexes' sort key: `codec::position(start, id)`.
pub(super) const POSITION: &str = "pos";
/// The outbox table's key.
pub(super) const EVENT_ID: &str = "event_id";
/// The outbox index: every pending entry under one partition, sorted by
/// write order.
pub(super) const BY_ORDER: &str = "by-order";
/// The outbox index's partition key attribute; its value is [`QUEUE_PENDING`].
pub(super) const QUEUE: &str = "queue";
/// The value of [`QUEUE`] on every outbox entry.
pub(super) const QUEUE_PENDING: &str = "pending";
/// The outbox index's sort key: `codec::outbox_order(order, event id)`.
pub(super) const ORDER: &str = "order";
/// The idempotency table's key.
pub(super) const IDEMPOTENCY_KEY: &str = "key";
/// The idempotency table's time-to-live attribute (unix seconds).
pub(super) const EXPIRES_AT: &str = "expires_at";

/// How long [`ensure`] waits for a table and its indexes to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often it looks.
const ACTIVE_POLL: Duration = Duration::from_millis(500);

/// A global secondary index: string partition and sort keys, every
/// attribute projected (the readers need whole items).
struct IndexSpec {
    name: &'static str,
    hash: &'static str,
    range: &'static str,
}

/// A table: a string partition key, no sort key.
struct TableSpec {
    name: String,
    key: &'static str,
    indexes: &'static [IndexSpec],
    ttl: Option<&'static str>,
}

fn specs(t: &TableNames) -> Vec<TableSpec> {
    vec![
        TableSpec {
            name: t.providers.clone(),
            key: PROVIDER_ID,
            indexes: &[],
            ttl: None,
        },
        TableSpec {
            name: t.appointments.clone(),
            key: APPOINTMENT_ID,
            indexes: &[
                IndexSpec {
                    name: BY_PROVIDER,
                    hash: PROVIDER,
                    range: POSITION,
                },
                IndexSpec {
                    name: BY_PATIENT,
                    hash: PATIENT,
                    range: POSITION,
                },
            ],
            ttl: None,
        },
        TableSpec {
            name: t.occupancy.clone(),
            key: super::occupancy::KEY,
            indexes: &[],
            ttl: None,
        },
        TableSpec {
            name: t.outbox.clone(),
            key: EVENT_ID,
            indexes: &[IndexSpec {
                name: BY_ORDER,
                hash: QUEUE,
                range: ORDER,
            }],
            ttl: None,
        },
        TableSpec {
            name: t.idempotency.clone(),
            key: IDEMPOTENCY_KEY,
            indexes: &[],
            ttl: Some(EXPIRES_AT),
        },
    ]
}

fn key(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

fn string_attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

/// Creates every table that does not exist, waits until each one and its
/// indexes are active, checks their keys and turns on time to live where
/// the design uses it.
pub(super) async fn ensure(
    client: &Client,
    tables: &TableNames,
) -> anyhow::Result<Vec<(String, TableState)>> {
    let specs = specs(tables);
    let mut states = Vec::with_capacity(specs.len());
    // Create first, then wait: on AWS the tables are then built in parallel.
    for spec in &specs {
        let state = match describe(client, &spec.name).await? {
            Some(_) => TableState::AlreadyPresent,
            None => create(client, spec).await?,
        };
        states.push((spec.name.clone(), state));
    }
    for spec in &specs {
        let table = wait_active(client, &spec.name).await?;
        check(&table, spec)?;
        if let Some(attribute) = spec.ttl {
            ensure_ttl(client, &spec.name, attribute).await?;
        }
    }
    Ok(states)
}

/// The table's description, or `None` when it does not exist.
pub(super) async fn describe(
    client: &Client,
    name: &str,
) -> anyhow::Result<Option<TableDescription>> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("describing table {name}"))),
    }
}

async fn create(client: &Client, spec: &TableSpec) -> anyhow::Result<TableState> {
    let mut attributes = vec![spec.key];
    for index in spec.indexes {
        for a in [index.hash, index.range] {
            if !attributes.contains(&a) {
                attributes.push(a);
            }
        }
    }
    let mut request = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.key, KeyType::Hash)?);
    for a in attributes {
        request = request.attribute_definitions(string_attribute(a)?);
    }
    for index in spec.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash, KeyType::Hash)?)
                .key_schema(key(index.range, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        );
    }
    match request.send().await {
        Ok(_) => Ok(TableState::Created),
        // Another process created it between our look and our create.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            Ok(TableState::AlreadyPresent)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating table {}", spec.name))),
    }
}

/// Waits until the table and every index of it are `ACTIVE`.
async fn wait_active(client: &Client, name: &str) -> anyhow::Result<TableDescription> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let table = describe(client, name)
            .await?
            .with_context(|| format!("table {name} disappeared while it was being set up"))?;
        let status = table.table_status();
        anyhow::ensure!(
            !matches!(
                status,
                Some(TableStatus::Deleting | TableStatus::Archived | TableStatus::Archiving)
            ),
            "table {name} is being deleted or archived ({status:?})"
        );
        let indexes_active = table
            .global_secondary_indexes()
            .iter()
            .all(|i| i.index_status() == Some(&IndexStatus::Active));
        if status == Some(&TableStatus::Active) && indexes_active {
            return Ok(table);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "table {name} did not become active within {ACTIVE_TIMEOUT:?} ({status:?})"
        );
        tokio::time::sleep(ACTIVE_POLL).await;
    }
}

/// Refuses a table whose keys are not the design's: writing to it would
/// fail item by item, or worse, succeed with another meaning.
fn check(table: &TableDescription, spec: &TableSpec) -> anyhow::Result<()> {
    let keys = |schema: &[KeySchemaElement]| -> Vec<(String, KeyType)> {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
            .collect()
    };
    anyhow::ensure!(
        keys(table.key_schema()) == vec![(spec.key.to_owned(), KeyType::Hash)],
        "table {} exists with another key schema than a partition key {:?}: {:?}",
        spec.name,
        spec.key,
        table.key_schema()
    );
    for index in spec.indexes {
        let found = table
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(index.name))
            .with_context(|| format!("table {} has no index {}", spec.name, index.name))?;
        anyhow::ensure!(
            keys(found.key_schema())
                == vec![
                    (index.hash.to_owned(), KeyType::Hash),
                    (index.range.to_owned(), KeyType::Range)
                ],
            "index {} of table {} has another key schema: {:?}",
            index.name,
            spec.name,
            found.key_schema()
        );
        anyhow::ensure!(
            found.projection().and_then(|p| p.projection_type()) == Some(&ProjectionType::All),
            "index {} of table {} does not project every attribute",
            index.name,
            spec.name
        );
    }
    Ok(())
}

/// Turns on time to live on `attribute` unless it already is (asking again
/// would be refused on AWS).
async fn ensure_ttl(client: &Client, table: &str, attribute: &str) -> anyhow::Result<()> {
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .with_context(|| format!("reading the time to live of table {table}"))?;
    let description = current.time_to_live_description();
    let status = description.and_then(|d| d.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        let on = description.and_then(|d| d.attribute_name());
        anyhow::ensure!(
            on == Some(attribute),
            "table {table} expires items by {on:?}, not {attribute:?}"
        );
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()?,
        )
        .send()
        .await
        .with_context(|| format!("turning on the time to live of table {table}"))?;
    Ok(())
}
