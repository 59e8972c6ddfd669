use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, TransactWriteItem,
};
use cita_core::booking::{
    Appointment, AppointmentQuery, AppointmentStore, AppointmentWriteError, CancelReason, Notes,
};
use cita_core::events::EventEnvelope;
use cita_core::ids::{AppointmentId, ProviderId, Version};
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use jiff::Timestamp;

use super::codec::{self, Item};
use super::occupancy::{self, Claim, Day, MAX_HOLD, Move};
use super::schema::{APPOINTMENT_ID, BY_PATIENT, BY_PROVIDER, PATIENT, POSITION, PROVIDER};
use super::{DynamoDatabase, TableNames, backoff, outbox};

/// Appointments and their outbox in DynamoDB.
///
/// # Why overlaps cannot slip through
///
/// Every write of an appointment reads the occupancy items of the UTC days
/// its old and new holds touch (strongly consistent), refuses it when the
/// new hold meets another appointment's (provider first, then patient),
/// and otherwise commits one `TransactWriteItems` of: the appointment
/// (conditional on being absent, or exactly as read), each touched
/// occupancy item rewritten (conditional on its version being the one
/// read, or on its absence), and the outbox entry (conditional on its
/// absence). DynamoDB applies the transaction only if every condition
/// holds, so a commit proves that nothing the decision was based on
/// changed in between: the decision was taken on the state it replaces.
/// Two holds that overlap share the UTC day of any instant they share, so
/// two writers that could clash both rewrite that day's item and the second
/// fails its condition; it then reads again and is refused, or commits if
/// nothing clashes any more. `docs/dynamodb.md` has the whole argument.
#[derive(Debug, Clone)]
pub struct DynamoAppointmentStore {
    pub(super) client: Client,
    pub(super) tables: TableNames,
}

impl DynamoAppointmentStore {
    /// A store over `db`'s appointments, occupancy and outbox tables.
    pub fn new(db: &DynamoDatabase) -> Self {
        Self {
            client: db.client().clone(),
            tables: db.tables().clone(),
        }
    }
}

/// How many times a write runs when a condition on an occupancy item (or
/// on the appointment, for an update) fails because another writer got
/// there first, or DynamoDB cancels it for a conflicting transaction.
const WRITE_ATTEMPTS: u32 = 20;

/// How many times a batch read asks again for keys DynamoDB left unprocessed.
const BATCH_ATTEMPTS: u32 = 10;

// The appointment item's attributes (besides the key and the index keys
// named in `schema`).
const COUNTRY: &str = "country";
const START: &str = "start_ms";
const END: &str = "end_ms";
const BUFFER: &str = "buffer_minutes";
const STATUS: &str = "status";
const VERSION: &str = "version";
/// A private counter incremented by every write: the condition of an
/// update, since a confirmation changes the item but not its version.
const REVISION: &str = "rev";
const NOTES: &str = "notes";
const CANCEL_REASON: &str = "cancel_reason";
const CREATED_AT: &str = "created_at_ms";
const UPDATED_AT: &str = "updated_at_ms";
/// The id of the appointment's latest event: the next event's predecessor.
const LAST_EVENT: &str = "last_event";
/// The outbox order of the appointment's latest event: the next one's
/// order is strictly greater.
const LAST_ORDER: &str = "last_event_order_ms";

/// An appointment as stored, with what the next write needs.
struct Stored {
    appointment: Appointment,
    revision: i64,
    last_event: Option<(String, i64)>,
}

fn encode(
    a: &Appointment,
    revision: i64,
    last_event: Option<&(String, i64)>,
) -> anyhow::Result<Item> {
    let start = codec::millis(a.start);
    let mut item = Item::from([
        (
            APPOINTMENT_ID.to_owned(),
            codec::string(codec::appointment_id(a.id)),
        ),
        (PROVIDER.to_owned(), codec::string(a.provider_id.as_str())),
        (PATIENT.to_owned(), codec::string(a.patient_id.as_str())),
        (
            POSITION.to_owned(),
            codec::string(codec::position(start, a.id)),
        ),
        (COUNTRY.to_owned(), codec::string(a.country.as_str())),
        (START.to_owned(), codec::number(start)),
        (END.to_owned(), codec::number(codec::millis(a.end))),
        (BUFFER.to_owned(), codec::number(i64::from(a.buffer.get()))),
        (STATUS.to_owned(), codec::string(codec::status(a.status))),
        (
            VERSION.to_owned(),
            codec::number(codec::version(a.version)?),
        ),
        (REVISION.to_owned(), codec::number(revision)),
        (
            CREATED_AT.to_owned(),
            codec::number(codec::millis(a.created_at)),
        ),
        (
            UPDATED_AT.to_owned(),
            codec::number(codec::millis(a.updated_at)),
        ),
    ]);
    if let Some(n) = &a.notes {
        item.insert(NOTES.to_owned(), codec::string(n.as_str()));
    }
    if let Some(r) = &a.cancel_reason {
        item.insert(CANCEL_REASON.to_owned(), codec::string(r.as_str()));
    }
    if let Some((event, order)) = last_event {
        item.insert(LAST_EVENT.to_owned(), codec::string(event));
        item.insert(LAST_ORDER.to_owned(), codec::number(*order));
    }
    Ok(item)
}

fn decode(item: &Item) -> anyhow::Result<Stored> {
    let id = codec::parse_appointment_id(codec::get_s(item, APPOINTMENT_ID)?)?;
    let buffer = codec::get_n(item, BUFFER)?;
    let buffer = u32::try_from(buffer)
        .ok()
        .and_then(|b| BufferMinutes::new(b).ok())
        .with_context(|| format!("appointment {id}: invalid buffer {buffer}"))?;
    let appointment = Appointment {
        id,
        provider_id: codec::parse_provider_id(codec::get_s(item, PROVIDER)?)?,
        patient_id: codec::parse_patient_id(codec::get_s(item, PATIENT)?)?,
        country: codec::parse_country(codec::get_s(item, COUNTRY)?)?,
        start: codec::instant(codec::get_n(item, START)?)?,
        end: codec::instant(codec::get_n(item, END)?)?,
        buffer,
        status: codec::parse_status(codec::get_s(item, STATUS)?)?,
        version: codec::parse_version(codec::get_n(item, VERSION)?)?,
        notes: codec::opt_s(item, NOTES)?
            .map(Notes::parse)
            .transpose()
            .with_context(|| format!("appointment {id}: invalid notes"))?,
        cancel_reason: codec::opt_s(item, CANCEL_REASON)?
            .map(CancelReason::parse)
            .transpose()
            .with_context(|| format!("appointment {id}: invalid cancel reason"))?,
        created_at: codec::instant(codec::get_n(item, CREATED_AT)?)?,
        updated_at: codec::instant(codec::get_n(item, UPDATED_AT)?)?,
    };
    let last_event = match (
        codec::opt_s(item, LAST_EVENT)?,
        codec::opt_n(item, LAST_ORDER)?,
    ) {
        (Some(event), Some(order)) => Some((event.to_owned(), order)),
        (None, None) => None,
        _ => anyhow::bail!("appointment {id}: half of its latest event's attributes"),
    };
    Ok(Stored {
        appointment,
        revision: codec::get_n(item, REVISION)?,
        last_event,
    })
}

/// Refuses what no Cita appointment can be, before anything is read: the
/// design's bounds (a hold touches at most two days) rest on it.
fn check_shape(a: &Appointment) -> Result<(), AppointmentWriteError> {
    let (start, hold_end) = a.provider_hold();
    if a.end <= a.start || hold_end.duration_since(start) > MAX_HOLD {
        return Err(anyhow::anyhow!(
            "appointment {}: [{}, {}) with a {}-minute buffer is not a storable appointment \
             (it must end after it starts and hold at most {MAX_HOLD:#})",
            a.id,
            a.start,
            a.end,
            a.buffer.get()
        )
        .into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Insert,
    Update(Version),
}

/// How one attempt at a write ended, when it was not refused.
enum Attempt {
    Written,
    /// Another writer changed something this attempt read; read again.
    Contended,
}

/// A `Put` within a transaction, with its condition.
fn conditional_put(
    table: &str,
    item: Item,
    condition: &str,
    names: Vec<(String, String)>,
    values: Item,
) -> anyhow::Result<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .set_expression_attribute_names(Some(names.into_iter().collect()))
        // DynamoDB refuses an empty map of values.
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What a cancelled transaction means. `days` items follow the appointment
/// (index 0); the outbox entry, if any, comes last.
fn cancelled(
    reasons: &[CancellationReason],
    mode: Mode,
    days: usize,
    id: AppointmentId,
) -> Result<Attempt, AppointmentWriteError> {
    let mut contended = false;
    for (i, reason) in reasons.iter().enumerate() {
        match (reason.code(), i) {
            (None | Some("None"), _) => {}
            (Some("ConditionalCheckFailed"), 0) => match mode {
                Mode::Insert => {
                    return Err(anyhow::anyhow!("appointment {id} already exists").into());
                }
                // Changed since it was read: reading again tells a moved
                // version (a conflict) from a confirmation (try again).
                Mode::Update(_) => contended = true,
            },
            (Some("ConditionalCheckFailed"), i) if i <= days => contended = true,
            (Some("ConditionalCheckFailed"), _) => {
                return Err(anyhow::anyhow!(
                    "appointment {id}: its event is already in the outbox"
                )
                .into());
            }
            (
                Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"),
                _,
            ) => {
                contended = true;
            }
            (Some(code), _) => {
                return Err(anyhow::anyhow!(
                    "appointment {id}: DynamoDB cancelled the write: {code}: {}",
                    reason.message().unwrap_or("")
                )
                .into());
            }
        }
    }
    if contended {
        Ok(Attempt::Contended)
    } else {
        Err(
            anyhow::anyhow!("appointment {id}: DynamoDB cancelled the write without a reason")
                .into(),
        )
    }
}

impl DynamoAppointmentStore {
    /// Reads one appointment item, strongly consistent.
    async fn read(&self, id: AppointmentId) -> anyhow::Result<Option<Stored>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.appointments)
            .key(APPOINTMENT_ID, codec::string(codec::appointment_id(id)))
            .consistent_read(true)
            .send()
            .await
            .context("reading an appointment")?;
        out.item.as_ref().map(decode).transpose()
    }

    /// Reads occupancy items, strongly consistent; an absent item reads as
    /// an empty day that nobody has written yet.
    async fn read_days(&self, keys: &[String]) -> anyhow::Result<HashMap<String, Day>> {
        let mut days = HashMap::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(days);
        }
        let table = &self.tables.occupancy;
        let mut wanted: Vec<Item> = keys
            .iter()
            .map(|k| Item::from([(occupancy::KEY.to_owned(), codec::string(k))]))
            .collect();
        let mut found = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            if wanted.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(
                    table,
                    KeysAndAttributes::builder()
                        .set_keys(Some(std::mem::take(&mut wanted)))
                        .consistent_read(true)
                        .build()?,
                )
                .send()
                .await
                .context("reading occupancy items")?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(table).unwrap_or_default());
            }
            if let Some(mut left) = out.unprocessed_keys {
                wanted = left.remove(table).map(|k| k.keys).unwrap_or_default();
            }
        }
        anyhow::ensure!(
            wanted.is_empty(),
            "DynamoDB left occupancy items unread after {BATCH_ATTEMPTS} attempts"
        );
        for item in &found {
            days.insert(
                codec::get_s(item, occupancy::KEY)?.to_owned(),
                occupancy::decode(Some(item))?,
            );
        }
        for key in keys {
            days.entry(key.clone()).or_default();
        }
        Ok(days)
    }

    /// Runs attempts until one is written or refused, at most
    /// [`WRITE_ATTEMPTS`] times.
    async fn write(
        &self,
        a: &Appointment,
        mode: Mode,
        event: Option<&EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        check_shape(a)?;
        let event = event
            .map(|e| {
                Ok::<_, anyhow::Error>((e, serde_json::to_string(e).context("encoding an event")?))
            })
            .transpose()?;
        for attempt in 0..WRITE_ATTEMPTS {
            match self.try_write(a, mode, event.as_ref()).await? {
                Attempt::Written => return Ok(()),
                Attempt::Contended => {
                    tracing::debug!(appointment = %a.id, attempt, "an appointment write met a concurrent one; reading again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Err(anyhow::anyhow!(
            "appointment {}: its provider's or patient's days kept changing for {WRITE_ATTEMPTS} attempts",
            a.id
        )
        .into())
    }

    /// One read–check–commit cycle.
    async fn try_write(
        &self,
        a: &Appointment,
        mode: Mode,
        event: Option<&(&EventEnvelope, String)>,
    ) -> Result<Attempt, AppointmentWriteError> {
        let id = codec::appointment_id(a.id);
        let stored = match mode {
            Mode::Insert => None,
            Mode::Update(expected) => {
                let stored = self
                    .read(a.id)
                    .await?
                    .ok_or(AppointmentWriteError::VersionConflict)?;
                if stored.appointment.version != expected {
                    return Err(AppointmentWriteError::VersionConflict);
                }
                Some(stored)
            }
        };
        let old = stored.as_ref().map(|s| &s.appointment);
        let claim = match mode {
            Mode::Insert => Claim::provider_booking(a),
            Mode::Update(_) => Claim::provider(a),
        };
        let provider = Move::new(old.and_then(Claim::provider), claim);
        let patient = Move::new(old.and_then(Claim::patient), Claim::patient(a));
        let mut keys = provider.keys()?;
        keys.extend(patient.keys()?);
        let days = self.read_days(&keys).await?;
        if provider.clashes(&id, &days)? {
            return Err(AppointmentWriteError::SlotTaken);
        }
        if patient.clashes(&id, &days)? {
            return Err(AppointmentWriteError::PatientBusy);
        }

        let previous = stored.as_ref().and_then(|s| s.last_event.as_ref());
        let (last_event, entry) = match event {
            Some((e, json)) => {
                let created = codec::millis(a.updated_at);
                // Strictly after the appointment's previous event, whatever
                // the clocks that stamped them: per appointment, the outbox
                // order is the version order.
                let order = previous.map_or(created, |(_, prev)| created.max(prev + 1));
                let item =
                    outbox::entry(e, json, created, order, previous.map(|(p, _)| p.as_str()));
                (Some((codec::event_id(e.event_id), order)), Some(item))
            }
            None => (previous.cloned(), None),
        };

        let mut items = Vec::with_capacity(keys.len() + 2);
        let item = encode(
            a,
            stored.as_ref().map_or(1, |s| s.revision + 1),
            last_event.as_ref(),
        )?;
        items.push(match &stored {
            None => conditional_put(
                &self.tables.appointments,
                item,
                "attribute_not_exists(#id)",
                vec![("#id".to_owned(), APPOINTMENT_ID.to_owned())],
                Item::new(),
            )?,
            Some(s) => conditional_put(
                &self.tables.appointments,
                item,
                "#rev = :rev",
                vec![("#rev".to_owned(), REVISION.to_owned())],
                Item::from([(":rev".to_owned(), codec::number(s.revision))]),
            )?,
        });
        let mut writes = provider.rewrite(&id, &days)?;
        writes.extend(patient.rewrite(&id, &days)?);
        let day_count = writes.len();
        for w in writes {
            let (condition, names, values) = w.condition();
            items.push(conditional_put(
                &self.tables.occupancy,
                w.item(),
                condition,
                names,
                values,
            )?);
        }
        if let Some(entry) = entry {
            items.push(conditional_put(
                &self.tables.outbox,
                entry,
                "attribute_not_exists(#e)",
                vec![("#e".to_owned(), super::schema::EVENT_ID.to_owned())],
                Item::new(),
            )?);
        }

        // The SDK gives the request a client token and reuses it when it
        // retries, so a retry of a transaction that did commit succeeds
        // instead of failing its own conditions.
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Attempt::Written),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    cancelled(c.cancellation_reasons(), mode, day_count, a.id)
                }
                _ => Err(anyhow::Error::new(e)
                    .context(format!("writing appointment {}", a.id))
                    .into()),
            },
        }
    }

    /// Appointments from a listing index, in (start, id) order: the
    /// owner's items with a position strictly between `after` and `before`
    /// (each optional), matching `filter`, at most `limit`.
    async fn read_index(&self, read: IndexRead<'_>) -> anyhow::Result<Vec<Appointment>> {
        let mut found = Vec::new();
        if read.limit == 0 {
            return Ok(found);
        }
        let mut key = "#owner = :owner".to_owned();
        let mut names = HashMap::from([("#owner".to_owned(), read.owner_attribute.to_owned())]);
        let mut values = read.values;
        values.insert(":owner".to_owned(), codec::string(read.owner));
        match (&read.after, &read.before) {
            (Some(lo), Some(hi)) => {
                if lo >= hi {
                    return Ok(found);
                }
                // BETWEEN is inclusive: an item at `lo` (a cursor position)
                // is skipped below; no item sits at `hi` (a bound).
                key.push_str(" AND #pos BETWEEN :lo AND :hi");
                values.insert(":lo".to_owned(), codec::string(lo));
                values.insert(":hi".to_owned(), codec::string(hi));
            }
            (Some(lo), None) => {
                key.push_str(" AND #pos > :lo");
                values.insert(":lo".to_owned(), codec::string(lo));
            }
            (None, Some(hi)) => {
                key.push_str(" AND #pos < :hi");
                values.insert(":hi".to_owned(), codec::string(hi));
            }
            (None, None) => {}
        }
        if read.after.is_some() || read.before.is_some() {
            names.insert("#pos".to_owned(), POSITION.to_owned());
        }
        names.extend(read.names);
        // A page a little larger than what is wanted: the filter may drop some.
        let page = i32::try_from(read.limit.saturating_add(1).min(1000)).unwrap_or(1000);
        let mut pages = self
            .client
            .query()
            .table_name(&self.tables.appointments)
            .index_name(read.index)
            .key_condition_expression(key)
            .set_filter_expression(read.filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .limit(page)
            .into_paginator()
            .send();
        while let Some(out) = pages.try_next().await.context("querying appointments")? {
            for item in out.items() {
                if let Some(lo) = &read.after
                    && codec::opt_s(item, POSITION)? == Some(lo.as_str())
                {
                    continue;
                }
                found.push(decode(item)?.appointment);
                if found.len() == read.limit {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }
}

/// A read of a listing index.
struct IndexRead<'a> {
    index: &'static str,
    owner_attribute: &'static str,
    owner: &'a str,
    after: Option<String>,
    before: Option<String>,
    filter: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    limit: usize,
}

#[async_trait]
impl AppointmentStore for DynamoAppointmentStore {
    async fn insert(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        self.write(appointment, Mode::Insert, Some(event)).await
    }

    async fn update<'a>(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&'a EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        self.write(appointment, Mode::Update(expected), event).await
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<Appointment>> {
        Ok(self.read(id).await?.map(|s| s.appointment))
    }

    async fn list(&self, query: &AppointmentQuery) -> anyhow::Result<Vec<Appointment>> {
        let (index, owner_attribute, owner) = match (&query.provider, &query.patient) {
            (Some(p), _) => (BY_PROVIDER, PROVIDER, p.as_str()),
            (None, Some(x)) => (BY_PATIENT, PATIENT, x.as_str()),
            (None, None) => anyhow::bail!("a listing names a patient or a provider"),
        };
        let mut filters = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        if let (Some(_), Some(x)) = (&query.provider, &query.patient) {
            filters.push("#patient = :patient");
            names.insert("#patient".to_owned(), PATIENT.to_owned());
            values.insert(":patient".to_owned(), codec::string(x.as_str()));
        }
        if let Some(s) = query.status {
            filters.push("#status = :status");
            names.insert("#status".to_owned(), STATUS.to_owned());
            values.insert(":status".to_owned(), codec::string(codec::status(s)));
        }
        // "start ≥ from" is the bound below every position of `from`; the
        // cursor is a position itself. The later of the two is the lower end.
        let from = query.from.map(|t| codec::position_bound(codec::millis(t)));
        let cursor = query
            .after
            .map(|(t, id)| codec::position(codec::millis(t), id));
        self.read_index(IndexRead {
            index,
            owner_attribute,
            owner,
            after: from.max(cursor),
            before: query.until.map(|t| codec::position_bound(codec::millis(t))),
            filter: (!filters.is_empty()).then(|| filters.join(" AND ")),
            names,
            values,
            limit: query.limit,
        })
        .await
    }

    async fn active_in_range(
        &self,
        provider: &ProviderId,
        from: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Vec<Appointment>> {
        if until <= from {
            return Ok(Vec::new());
        }
        // An appointment lasts at most MAX_APPOINTMENT, so one that reaches
        // `from` starts at most that long before it: the index range is the
        // asked range plus that, whatever the provider's history.
        let earliest = from.checked_sub(MAX_APPOINTMENT).unwrap_or(Timestamp::MIN);
        self.read_index(IndexRead {
            index: BY_PROVIDER,
            owner_attribute: PROVIDER,
            owner: provider.as_str(),
            after: Some(codec::position_bound(codec::millis(earliest))),
            before: Some(codec::position_bound(codec::millis(until))),
            filter: Some("#status <> :cancelled AND #end > :from".to_owned()),
            names: HashMap::from([
                ("#status".to_owned(), STATUS.to_owned()),
                ("#end".to_owned(), END.to_owned()),
            ]),
            values: HashMap::from([
                (
                    ":cancelled".to_owned(),
                    codec::string(codec::status(
                        cita_core::booking::AppointmentStatus::Cancelled,
                    )),
                ),
                (":from".to_owned(), codec::number(codec::millis(from))),
            ]),
            limit: usize::MAX,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStatus;
    use cita_core::ids::{PatientId, ProviderId};
    use cita_core::routing::CountryCode;
    use jiff::SignedDuration;

    use super::*;

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect()
    }

    fn kind(r: Result<Attempt, AppointmentWriteError>) -> &'static str {
        match r {
            Ok(Attempt::Written) => "written",
            Ok(Attempt::Contended) => "contended",
            Err(AppointmentWriteError::Unexpected(_)) => "unexpected",
            Err(_) => "refused",
        }
    }

    fn sample() -> Appointment {
        let start: Timestamp = "2031-03-03T10:00:00.007Z".parse().unwrap();
        Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("p").unwrap(),
            patient_id: PatientId::parse("x").unwrap(),
            country: CountryCode::CL,
            start,
            end: start + SignedDuration::from_mins(480),
            buffer: BufferMinutes::new(240).unwrap(),
            status: AppointmentStatus::Confirmed,
            version: Version::new(3).unwrap(),
            notes: Some(Notes::parse("n").unwrap()),
            cancel_reason: None,
            created_at: start,
            updated_at: start + SignedDuration::from_millis(1),
        }
    }

    #[test]
    fn cancellation_reasons_say_whether_to_read_again() {
        let id = AppointmentId::new();
        let update = Mode::Update(Version::FIRST);
        let c = |codes: &[&str], mode| kind(cancelled(&reasons(codes), mode, 2, id));
        // [appointment, day, day, outbox]
        assert_eq!(
            c(
                &["None", "ConditionalCheckFailed", "None", "None"],
                Mode::Insert
            ),
            "contended"
        );
        assert_eq!(
            c(&["ConditionalCheckFailed", "None", "None", "None"], update),
            "contended"
        );
        assert_eq!(
            c(
                &["ConditionalCheckFailed", "None", "None", "None"],
                Mode::Insert
            ),
            "unexpected"
        );
        assert_eq!(
            c(
                &["None", "None", "None", "ConditionalCheckFailed"],
                Mode::Insert
            ),
            "unexpected"
        );
        assert_eq!(
            c(&["None", "TransactionConflict", "None", "None"], update),
            "contended"
        );
        assert_eq!(
            c(&["ValidationError", "None", "None", "None"], update),
            "unexpected"
        );
        assert_eq!(c(&["None", "None", "None", "None"], update), "unexpected");
    }

    #[test]
    fn items_round_trip_and_shapes_are_checked() {
        let a = sample();
        let last = ("e".to_owned(), 42);
        let stored = decode(&encode(&a, 7, Some(&last)).unwrap()).unwrap();
        assert_eq!(stored.appointment, a);
        assert_eq!(stored.revision, 7);
        assert_eq!(stored.last_event, Some(last));
        assert!(
            check_shape(&a).is_ok(),
            "the longest appointment and buffer"
        );

        let mut longer = a.clone();
        longer.end += SignedDuration::from_millis(1);
        assert!(check_shape(&longer).is_err(), "a hold over 12 hours");
        let mut empty = a;
        empty.end = empty.start;
        assert!(
            check_shape(&empty).is_err(),
            "an appointment ending as it starts"
        );
    }
}
