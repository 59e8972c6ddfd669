use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use cita_core::booking::{
    Fingerprint, IdempotencyKey, IdempotencyRecord, IdempotencyState, IdempotencyStore,
    IdempotentOutcome, Reservation,
};
use cita_core::ids::AppointmentId;
use jiff::{SignedDuration, Timestamp};

use super::DynamoDatabase;
use super::codec::{self, Item};
use super::schema::{EXPIRES_AT, IDEMPOTENCY_KEY};

/// Idempotency records in DynamoDB, one item per key.
///
/// A reservation is one conditional `PutItem` that claims the key when it
/// is free or expired; DynamoDB evaluates the condition and writes
/// atomically, so of many concurrent callers exactly one is told
/// [`Reservation::Reserved`]. When the claim is refused, the refusal
/// returns the item that refused it (`ReturnValuesOnConditionCheckFailure`),
/// so the answer describes exactly the record that held the key. Items
/// carry an `expires_at` for DynamoDB's time to live, set past the point
/// where the record counts as absent anyway: the deletion, whenever it
/// happens, is only housekeeping.
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    /// A store over `db`'s idempotency table.
    pub fn new(db: &DynamoDatabase) -> Self {
        Self {
            client: db.client().clone(),
            table: db.tables().idempotency.clone(),
        }
    }
}

const FINGERPRINT: &str = "fingerprint";
/// The answer as JSON; absent while the key is in progress.
const OUTCOME: &str = "outcome";
const CREATED_AT: &str = "created_at_ms";
/// The id of the appointment the reserving request books, if it books one.
const APPOINTMENT: &str = "appointment_id";

/// How many times a reservation tries when the record that refused it is
/// gone (released or replaced) by the time it is read.
const RESERVE_ATTEMPTS: u32 = 5;

/// The claim: the key is absent, or held by a reservation at least `lease`
/// old, or by an answer at least `ttl` old —
/// [`IdempotencyRecord::is_expired`] as a condition, with the cut-offs
/// computed in Rust.
const CLAIM: &str = "attribute_not_exists(#k) \
    OR (attribute_not_exists(#o) AND #c <= :lease_cutoff) \
    OR (attribute_exists(#o) AND #c <= :ttl_cutoff)";

fn decode(item: &Item) -> anyhow::Result<IdempotencyRecord> {
    let key = codec::get_s(item, IDEMPOTENCY_KEY)?;
    let state = match codec::opt_s(item, OUTCOME)? {
        None => IdempotencyState::InProgress,
        Some(json) => IdempotencyState::Done(
            serde_json::from_str(json)
                .with_context(|| format!("idempotency key {key}: unreadable outcome"))?,
        ),
    };
    Ok(IdempotencyRecord {
        key: IdempotencyKey::parse(key)
            .with_context(|| format!("stored idempotency key {key:?} is invalid"))?,
        fingerprint: Fingerprint(codec::get_s(item, FINGERPRINT)?.to_owned()),
        state,
        created_at: codec::instant(codec::get_n(item, CREATED_AT)?)?,
        appointment: codec::opt_s(item, APPOINTMENT)?
            .map(codec::parse_appointment_id)
            .transpose()?,
    })
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation> {
        // Compare at the stored precision, so the answer does not depend on
        // whether `now` had a sub-millisecond part: stored times are whole
        // milliseconds, so `created <= floor(now_ms - d)` is exactly
        // `now_ms - created >= d`.
        let now_ms = codec::millis(now);
        let now = codec::instant(now_ms)?;
        let cutoff =
            |d: SignedDuration| codec::millis(now.checked_sub(d).unwrap_or(Timestamp::MIN));
        let (lease_cutoff, ttl_cutoff) = (cutoff(lease), cutoff(ttl));
        // Whole seconds, rounded up, after both cut-offs have passed.
        let keep_ms = ttl.max(lease).as_millis().max(0);
        let expires_at = i64::try_from((i128::from(now_ms) + keep_ms + 999).div_euclid(1000))
            .context("expiry out of range")?;
        let mut item = Item::from([
            (IDEMPOTENCY_KEY.to_owned(), codec::string(key.as_str())),
            (FINGERPRINT.to_owned(), codec::string(&fingerprint.0)),
            (CREATED_AT.to_owned(), codec::number(now_ms)),
            (EXPIRES_AT.to_owned(), codec::number(expires_at)),
        ]);
        if let Some(id) = appointment {
            item.insert(
                APPOINTMENT.to_owned(),
                codec::string(codec::appointment_id(id)),
            );
        }
        for _ in 0..RESERVE_ATTEMPTS {
            let claimed = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(CLAIM)
                .expression_attribute_names("#k", IDEMPOTENCY_KEY)
                .expression_attribute_names("#o", OUTCOME)
                .expression_attribute_names("#c", CREATED_AT)
                .expression_attribute_values(":lease_cutoff", codec::number(lease_cutoff))
                .expression_attribute_values(":ttl_cutoff", codec::number(ttl_cutoff))
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let refusal = match claimed {
                Ok(put) => {
                    let replaced = put.attributes.map(|old| decode(&old)).transpose()?;
                    return Ok(Reservation::Reserved {
                        replaced: replaced.map(Box::new),
                    });
                }
                Err(e) => match e.into_service_error() {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                        refusal,
                    ) => refusal,
                    other => {
                        return Err(anyhow::Error::new(other).context("reserving an idempotency key"));
                    }
                },
            };
            // The record that refused the claim, as it was at that moment.
            // Should the refusal not carry it, read it: if it is gone or
            // expired by then, claiming again is the right move.
            let holder = match refusal.item {
                Some(item) => Some(item),
                None => {
                    self.client
                        .get_item()
                        .table_name(&self.table)
                        .key(IDEMPOTENCY_KEY, codec::string(key.as_str()))
                        .consistent_read(true)
                        .send()
                        .await
                        .context("reading an idempotency key")?
                        .item
                }
            };
            if let Some(item) = holder {
                let record = decode(&item)?;
                if !record.is_expired(now, ttl, lease) {
                    return Ok(Reservation::Existing(Box::new(record)));
                }
            }
        }
        anyhow::bail!(
            "idempotency key {key}: the record kept changing for {RESERVE_ATTEMPTS} attempts"
        )
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(outcome).context("encoding an outcome")?;
        let done = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(IDEMPOTENCY_KEY, codec::string(key.as_str()))
            .update_expression("SET #o = :o")
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", IDEMPOTENCY_KEY)
            .expression_attribute_names("#o", OUTCOME)
            .expression_attribute_values(":o", codec::string(json))
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                anyhow::bail!("idempotency key {key} is not reserved")
            }
            Err(e) => Err(anyhow::Error::new(e).context("storing an idempotent answer")),
        }
    }

    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()> {
        let done = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(IDEMPOTENCY_KEY, codec::string(key.as_str()))
            // Only an unanswered reservation is forgotten; an absent key
            // passes the condition and deletes nothing.
            .condition_expression("attribute_not_exists(#o)")
            .expression_attribute_names("#o", OUTCOME)
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e).context("releasing an idempotency key")),
        }
    }
}
