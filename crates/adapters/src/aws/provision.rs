//! [`provision`]: creates or verifies every resource of a [`Topology`],
//! idempotently, and says what it did to each one.
//!
//! Every resource is first looked up; only what is missing is created, and
//! only attributes that differ from what the topology needs are written.
//! A second run against an unchanged account therefore writes nothing and
//! reports every resource as [`ProvisionStatus::AlreadyPresent`].

use std::collections::HashMap;
use std::fmt;

use anyhow::{Context as _, anyhow, bail};
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use super::resolve;
use super::topology::Topology;

/// Dead letters are kept as long as SQS allows (14 days), so there is time
/// to look at them.
const DLQ_RETENTION_SECS: &str = "1209600";
/// The statement id of the permission a country queue gives the topic.
const TOPIC_SID: &str = "cita-topic-sends";
/// The statement id of the permission the confirmations queue gives the rule.
const RULE_SID: &str = "cita-rule-sends";
/// The id of the rule's only target.
const TARGET_ID: &str = "confirmations-queue";

/// What kind of resource a report line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// The SNS topic.
    Topic,
    /// A work queue (country or confirmations).
    Queue,
    /// A dead-letter queue.
    DeadLetterQueue,
    /// A queue's access policy (who may send to it).
    QueuePolicy,
    /// A country queue's subscription to the topic.
    Subscription,
    /// The EventBridge bus.
    EventBus,
    /// The EventBridge rule.
    Rule,
    /// The rule's target (the confirmations queue).
    RuleTarget,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so the report's columns line up.
        f.pad(match self {
            Self::Topic => "SNS topic",
            Self::Queue => "SQS queue",
            Self::DeadLetterQueue => "SQS dead-letter queue",
            Self::QueuePolicy => "SQS queue policy",
            Self::Subscription => "SNS subscription",
            Self::EventBus => "EventBridge bus",
            Self::Rule => "EventBridge rule",
            Self::RuleTarget => "EventBridge target",
        })
    }
}

/// What provisioning did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProvisionStatus {
    /// It did not exist and was created.
    Created,
    /// It existed as required; nothing was written.
    AlreadyPresent,
    /// It existed, but some attributes had to be fixed.
    Updated,
}

impl fmt::Display for ProvisionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Created => "Created",
            Self::AlreadyPresent => "AlreadyPresent",
            Self::Updated => "Updated",
        })
    }
}

/// One line of a [`ProvisionReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedResource {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// Its name (`topic → queue` for a subscription, `rule → queue` for a target).
    pub name: String,
    /// What was done.
    pub status: ProvisionStatus,
    /// The attributes that were fixed (only for [`ProvisionStatus::Updated`]).
    pub fixed: Vec<String>,
}

impl fmt::Display for ProvisionedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<22} {:<56} {}", self.kind, self.name, self.status)?;
        if !self.fixed.is_empty() {
            write!(f, " ({})", self.fixed.join(", "))?;
        }
        Ok(())
    }
}

/// What [`provision`] found and did, resource by resource, in the order it
/// went through them. Displays as one line per resource and a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    resources: Vec<ProvisionedResource>,
}

impl ProvisionReport {
    /// Every resource, in provisioning order.
    pub fn resources(&self) -> &[ProvisionedResource] {
        &self.resources
    }

    /// How many resources ended with `status`.
    pub fn count(&self, status: ProvisionStatus) -> usize {
        self.resources.iter().filter(|r| r.status == status).count()
    }

    /// Whether anything was created or fixed.
    pub fn changed_anything(&self) -> bool {
        self.resources
            .iter()
            .any(|r| r.status != ProvisionStatus::AlreadyPresent)
    }

    fn push(&mut self, kind: ResourceKind, name: impl Into<String>, change: Change) {
        let (status, fixed) = match change {
            Change::Created => (ProvisionStatus::Created, Vec::new()),
            Change::Fixed(fixed) if fixed.is_empty() => {
                (ProvisionStatus::AlreadyPresent, Vec::new())
            }
            Change::Fixed(fixed) => (ProvisionStatus::Updated, fixed),
        };
        let line = ProvisionedResource {
            kind,
            name: name.into(),
            status,
            fixed,
        };
        tracing::info!(kind = %line.kind, name = %line.name, status = %line.status, fixed = ?line.fixed, "provisioned");
        self.resources.push(line);
    }
}

impl fmt::Display for ProvisionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.resources {
            writeln!(f, "{r}")?;
        }
        write!(
            f,
            "{} resources: {} created, {} updated, {} already present",
            self.resources.len(),
            self.count(ProvisionStatus::Created),
            self.count(ProvisionStatus::Updated),
            self.count(ProvisionStatus::AlreadyPresent)
        )
    }
}

/// What ensuring one resource did.
enum Change {
    Created,
    /// It existed; these attributes were rewritten (none: untouched).
    Fixed(Vec<String>),
}

/// A queue as provisioning left it.
struct QueueRef {
    url: String,
    arn: String,
}

/// Creates or verifies every resource of `topology`: the topic; per
/// country a DLQ, a queue redriving to it after `max_receives` receives, a
/// policy letting the topic send, and a raw-delivery subscription filtered
/// to that country's work; the confirmations DLQ and queue; the bus, the
/// rule on `appointment.confirmed`, the queue's policy letting the rule
/// send, and the rule's target. Idempotent.
///
/// # Errors
/// The first AWS failure (what was done until then stays done; running
/// again continues from there).
pub async fn provision(sdk: &SdkConfig, topology: &Topology) -> anyhow::Result<ProvisionReport> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut report = ProvisionReport::default();

    let topic = topology.topic();
    let topic_arn = ensure_topic(&sns, &topic, &mut report).await?;

    for &country in topology.countries() {
        let (queue, dlq) = (
            topology.country_queue(country),
            topology.country_dlq(country),
        );
        let q = ensure_queue_pair(&sqs, topology, &queue, &dlq, &mut report).await?;
        // The permission goes first so the subscription's first delivery
        // is already allowed.
        let change =
            ensure_send_permission(&sqs, &q, "sns.amazonaws.com", &topic_arn, TOPIC_SID).await?;
        report.push(ResourceKind::QueuePolicy, &queue, change);
        let change =
            ensure_subscription(&sns, &topic_arn, &q.arn, &topology.filter_policy(country)).await?;
        report.push(
            ResourceKind::Subscription,
            format!("{topic} → {queue}"),
            change,
        );
    }

    let (queue, dlq) = (topology.confirmations_queue(), topology.confirmations_dlq());
    let q = ensure_queue_pair(&sqs, topology, &queue, &dlq, &mut report).await?;

    let bus = topology.event_bus();
    let change = ensure_bus(&events, &bus).await?;
    report.push(ResourceKind::EventBus, &bus, change);
    let rule = topology.confirmations_rule();
    let (rule_arn, change) =
        ensure_rule(&events, &bus, &rule, &topology.confirmations_pattern()).await?;
    report.push(ResourceKind::Rule, &rule, change);
    let change =
        ensure_send_permission(&sqs, &q, "events.amazonaws.com", &rule_arn, RULE_SID).await?;
    report.push(ResourceKind::QueuePolicy, &queue, change);
    let change = ensure_target(&events, &bus, &rule, &q.arn).await?;
    report.push(
        ResourceKind::RuleTarget,
        format!("{rule} → {queue}"),
        change,
    );

    Ok(report)
}

async fn ensure_topic(
    sns: &aws_sdk_sns::Client,
    name: &str,
    report: &mut ProvisionReport,
) -> anyhow::Result<String> {
    if let Some(arn) = resolve::find_topic_arn(sns, name).await? {
        report.push(ResourceKind::Topic, name, Change::Fixed(Vec::new()));
        return Ok(arn);
    }
    let out = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .with_context(|| format!("creating SNS topic {name}"))?;
    let arn = out
        .topic_arn()
        .ok_or_else(|| anyhow!("SNS created topic {name} but returned no ARN"))?
        .to_owned();
    report.push(ResourceKind::Topic, name, Change::Created);
    Ok(arn)
}

/// A dead-letter queue, then the queue that redrives to it.
async fn ensure_queue_pair(
    sqs: &aws_sdk_sqs::Client,
    topology: &Topology,
    queue: &str,
    dlq: &str,
    report: &mut ProvisionReport,
) -> anyhow::Result<QueueRef> {
    let dead = ensure_queue(
        sqs,
        dlq,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_owned(),
        )],
    )
    .await?;
    report.push(ResourceKind::DeadLetterQueue, dlq, dead.1);
    let redrive = json!({
        "deadLetterTargetArn": dead.0.arn,
        "maxReceiveCount": topology.max_receives(),
    });
    let (q, change) = ensure_queue(
        sqs,
        queue,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                topology.visibility_timeout_secs().to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    report.push(ResourceKind::Queue, queue, change);
    Ok(q)
}

async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    wanted: &[(QueueAttributeName, String)],
) -> anyhow::Result<(QueueRef, Change)> {
    let Some(url) = resolve::find_queue_url(sqs, name).await? else {
        let out = sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(wanted.iter().cloned().collect()))
            .send()
            .await
            .with_context(|| format!("creating SQS queue {name}"))?;
        let url = out
            .queue_url()
            .ok_or_else(|| anyhow!("SQS created queue {name} but returned no URL"))?
            .to_owned();
        let arn = resolve::queue_arn(sqs, &url).await?;
        return Ok((QueueRef { url, arn }, Change::Created));
    };
    let have = queue_attributes(sqs, &url).await?;
    let arn = have
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .ok_or_else(|| anyhow!("SQS returned no ARN for queue {name}"))?;
    let mut fixes: HashMap<QueueAttributeName, String> = HashMap::new();
    for (attribute, want) in wanted {
        if !same_queue_attribute(attribute, have.get(attribute).map(String::as_str), want) {
            fixes.insert(attribute.clone(), want.clone());
        }
    }
    let mut fixed: Vec<String> = fixes.keys().map(|a| a.as_str().to_owned()).collect();
    fixed.sort();
    if !fixes.is_empty() {
        // moto's SetQueueAttributes drops a policy it is not given (AWS
        // leaves unnamed attributes alone), so the one in place is written
        // along unchanged.
        if let Some(policy) = have.get(&QueueAttributeName::Policy) {
            fixes
                .entry(QueueAttributeName::Policy)
                .or_insert_with(|| policy.clone());
        }
        sqs.set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(fixes))
            .send()
            .await
            .with_context(|| format!("fixing attributes {fixed:?} of SQS queue {name}"))?;
    }
    Ok((QueueRef { url, arn }, Change::Fixed(fixed)))
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<HashMap<QueueAttributeName, String>> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .with_context(|| format!("reading the attributes of SQS queue {url}"))?;
    Ok(out.attributes().cloned().unwrap_or_default())
}

/// Whether a queue attribute already says what is wanted. The redrive
/// policy is compared as JSON, because SQS may hand it back reformatted
/// (and `maxReceiveCount` as a number or as text).
fn same_queue_attribute(attribute: &QueueAttributeName, have: Option<&str>, want: &str) -> bool {
    let Some(have) = have else {
        return false;
    };
    if *attribute != QueueAttributeName::RedrivePolicy {
        return have.trim() == want.trim();
    }
    let (Ok(have), Ok(want)) = (
        serde_json::from_str::<Value>(have),
        serde_json::from_str::<Value>(want),
    ) else {
        return false;
    };
    let count = |v: &Value| {
        v.get("maxReceiveCount").and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
    };
    have.get("deadLetterTargetArn") == want.get("deadLetterTargetArn")
        && count(&have).is_some()
        && count(&have) == count(&want)
}

/// Makes sure the queue's policy lets `service` send to it on behalf of
/// `source_arn`. Statements of other origins are kept.
async fn ensure_send_permission(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    service: &str,
    source_arn: &str,
    sid: &str,
) -> anyhow::Result<Change> {
    let have = queue_attributes(sqs, &queue.url).await?;
    let current: Option<Value> = have
        .get(&QueueAttributeName::Policy)
        .filter(|p| !p.trim().is_empty())
        .map(|p| serde_json::from_str(p))
        .transpose()
        .with_context(|| format!("the policy of SQS queue {} is not JSON", queue.url))?;
    let statements: Vec<Value> = match current.as_ref().and_then(|p| p.get("Statement")) {
        Some(Value::Array(s)) => s.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        _ => Vec::new(),
    };
    if statements.iter().any(|s| grants(s, service, source_arn)) {
        return Ok(Change::Fixed(Vec::new()));
    }
    let ours = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sqs:SendMessage",
        "Resource": queue.arn,
        "Condition": { "ArnEquals": { "aws:SourceArn": source_arn } },
    });
    let mut kept: Vec<Value> = statements
        .into_iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) != Some(sid))
        .collect();
    kept.push(ours);
    let policy = json!({ "Version": "2012-10-17", "Statement": kept });
    sqs.set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .with_context(|| format!("writing the policy of SQS queue {}", queue.url))?;
    Ok(match current {
        None => Change::Created,
        Some(_) => Change::Fixed(vec![format!("Statement {sid}")]),
    })
}

/// Whether a policy statement lets `service` send messages on behalf of
/// `source_arn`, whichever of the equivalent spellings IAM allows it uses.
fn grants(statement: &Value, service: &str, source_arn: &str) -> bool {
    fn lists(v: Option<&Value>, want: &str) -> bool {
        match v {
            Some(Value::String(s)) => s == want,
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(want)),
            _ => false,
        }
    }
    let action = statement.get("Action");
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
        && lists(
            statement.get("Principal").and_then(|p| p.get("Service")),
            service,
        )
        && (lists(action, "sqs:SendMessage") || lists(action, "sqs:*"))
        && statement.get("Condition").is_some_and(|c| {
            ["ArnEquals", "ArnLike"]
                .iter()
                .any(|op| lists(c.get(*op).and_then(|o| o.get("aws:SourceArn")), source_arn))
        })
}

async fn ensure_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
    filter: &Value,
) -> anyhow::Result<Change> {
    let filter_text = filter.to_string();
    let Some(subscription) = find_subscription(sns, topic_arn, queue_arn).await? else {
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("FilterPolicyScope", "MessageAttributes")
            .attributes("FilterPolicy", &filter_text)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .with_context(|| format!("subscribing {queue_arn} to {topic_arn}"))?;
        return Ok(Change::Created);
    };
    let out = sns
        .get_subscription_attributes()
        .subscription_arn(&subscription)
        .send()
        .await
        .with_context(|| format!("reading subscription {subscription}"))?;
    let have = out.attributes().cloned().unwrap_or_default();
    let mut fixes: Vec<(&str, String)> = Vec::new();
    // The scope goes first: SNS validates a filter policy against it.
    if have
        .get("FilterPolicyScope")
        .is_some_and(|s| s != "MessageAttributes")
    {
        fixes.push(("FilterPolicyScope", "MessageAttributes".to_owned()));
    }
    let same_filter = have
        .get("FilterPolicy")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .is_some_and(|p| normalized(&p) == normalized(filter));
    if !same_filter {
        fixes.push(("FilterPolicy", filter_text));
    }
    if !have
        .get("RawMessageDelivery")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        fixes.push(("RawMessageDelivery", "true".to_owned()));
    }
    for (name, value) in &fixes {
        sns.set_subscription_attributes()
            .subscription_arn(&subscription)
            .attribute_name(*name)
            .attribute_value(value)
            .send()
            .await
            .with_context(|| format!("setting {name} of subscription {subscription}"))?;
    }
    Ok(Change::Fixed(
        fixes.into_iter().map(|(n, _)| n.to_owned()).collect(),
    ))
}

/// The ARN of the topic's confirmed SQS subscription for `queue_arn`.
async fn find_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
) -> anyhow::Result<Option<String>> {
    let mut next: Option<String> = None;
    loop {
        let page = sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next.take())
            .send()
            .await
            .with_context(|| format!("listing the subscriptions of {topic_arn}"))?;
        let found = page.subscriptions().iter().find(|s| {
            s.protocol() == Some("sqs")
                && s.endpoint() == Some(queue_arn)
                && s.subscription_arn().is_some_and(|a| a.starts_with("arn:"))
        });
        if let Some(arn) = found.and_then(|s| s.subscription_arn()) {
            return Ok(Some(arn.to_owned()));
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(None),
        }
    }
}

/// JSON with every array sorted, for comparing policies whose lists may
/// come back in another order.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn ensure_bus(events: &aws_sdk_eventbridge::Client, name: &str) -> anyhow::Result<Change> {
    match events.describe_event_bus().name(name).send().await {
        Ok(_) => return Ok(Change::Fixed(Vec::new())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("looking up EventBridge bus {name}")));
        }
    }
    events
        .create_event_bus()
        .name(name)
        .send()
        .await
        .with_context(|| format!("creating EventBridge bus {name}"))?;
    Ok(Change::Created)
}

/// The rule and its ARN.
async fn ensure_rule(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    name: &str,
    pattern: &Value,
) -> anyhow::Result<(String, Change)> {
    let existing = match events
        .describe_rule()
        .name(name)
        .event_bus_name(bus)
        .send()
        .await
    {
        Ok(rule) => Some(rule),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("looking up EventBridge rule {name} on bus {bus}")));
        }
    };
    let mut fixed = Vec::new();
    if let Some(rule) = &existing {
        let same_pattern = rule
            .event_pattern()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .is_some_and(|p| normalized(&p) == normalized(pattern));
        if !same_pattern {
            fixed.push("EventPattern".to_owned());
        }
        if rule.state() != Some(&RuleState::Enabled) {
            fixed.push("State".to_owned());
        }
        if fixed.is_empty() {
            let arn = rule
                .arn()
                .ok_or_else(|| anyhow!("EventBridge returned no ARN for rule {name}"))?;
            return Ok((arn.to_owned(), Change::Fixed(fixed)));
        }
    }
    // PutRule creates the rule or replaces its pattern and state.
    let out = events
        .put_rule()
        .name(name)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .state(RuleState::Enabled)
        .description("Routes countries' appointment.confirmed events to the confirmations queue")
        .send()
        .await
        .with_context(|| format!("writing EventBridge rule {name} on bus {bus}"))?;
    let arn = out
        .rule_arn()
        .ok_or_else(|| anyhow!("EventBridge returned no ARN for rule {name}"))?
        .to_owned();
    let change = match existing {
        None => Change::Created,
        Some(_) => Change::Fixed(fixed),
    };
    Ok((arn, change))
}

async fn ensure_target(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &str,
    queue_arn: &str,
) -> anyhow::Result<Change> {
    let mut next: Option<String> = None;
    let mut existing: Option<Target> = None;
    loop {
        let page = events
            .list_targets_by_rule()
            .rule(rule)
            .event_bus_name(bus)
            .set_next_token(next.take())
            .send()
            .await
            .with_context(|| format!("listing the targets of EventBridge rule {rule}"))?;
        if let Some(t) = page.targets().iter().find(|t| t.arn() == queue_arn) {
            existing = Some(t.clone());
            break;
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => break,
        }
    }
    // The worker reads the event exactly as the bus emits it; an input or
    // transformer on the target would change the body.
    let (id, change) = match &existing {
        Some(t)
            if t.input().is_none()
                && t.input_path().is_none()
                && t.input_transformer().is_none() =>
        {
            return Ok(Change::Fixed(Vec::new()));
        }
        Some(t) => (t.id().to_owned(), Change::Fixed(vec!["Input".to_owned()])),
        None => (TARGET_ID.to_owned(), Change::Created),
    };
    let target = Target::builder()
        .id(id)
        .arn(queue_arn)
        .build()
        .context("building an EventBridge target")?;
    let out = events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .with_context(|| format!("adding {queue_arn} as target of EventBridge rule {rule}"))?;
    if out.failed_entry_count() > 0 {
        let reasons: Vec<String> = out
            .failed_entries()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.error_code().unwrap_or_default(),
                    e.error_message().unwrap_or_default()
                )
            })
            .collect();
        bail!(
            "EventBridge refused target {queue_arn} of rule {rule}: {}",
            reasons.join("; ")
        );
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policies_compare_as_json() {
        let want = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":5}"#;
        let a = QueueAttributeName::RedrivePolicy;
        assert!(same_queue_attribute(
            &a,
            Some(
                r#"{"maxReceiveCount":"5", "deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq"}"#
            ),
            want
        ));
        assert!(!same_queue_attribute(
            &a,
            Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":3}"#),
            want
        ));
        assert!(!same_queue_attribute(&a, None, want));
        assert!(same_queue_attribute(
            &QueueAttributeName::VisibilityTimeout,
            Some("30"),
            "30"
        ));
    }

    #[test]
    fn a_grant_is_recognised_in_every_spelling() {
        let topic = "arn:aws:sns:us-east-1:1:cita-appointments";
        let plain = json!({"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},
            "Action":"sqs:SendMessage","Condition":{"ArnEquals":{"aws:SourceArn":topic}}});
        let lists = json!({"Effect":"Allow","Principal":{"Service":["sns.amazonaws.com"]},
            "Action":["sqs:*"],"Condition":{"ArnLike":{"aws:SourceArn":[topic]}}});
        let other_source = json!({"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},
            "Action":"sqs:SendMessage","Condition":{"ArnEquals":{"aws:SourceArn":"arn:other"}}});
        let deny = json!({"Effect":"Deny","Principal":{"Service":"sns.amazonaws.com"},
            "Action":"sqs:SendMessage","Condition":{"ArnEquals":{"aws:SourceArn":topic}}});
        assert!(grants(&plain, "sns.amazonaws.com", topic));
        assert!(grants(&lists, "sns.amazonaws.com", topic));
        assert!(!grants(&other_source, "sns.amazonaws.com", topic));
        assert!(!grants(&deny, "sns.amazonaws.com", topic));
        assert!(!grants(&plain, "events.amazonaws.com", topic));
    }

    #[test]
    fn filter_policies_compare_whatever_the_list_order() {
        let a = json!({"countryIso":["PE"],"eventType":["b","a"]});
        let b = json!({"eventType":["a","b"],"countryIso":["PE"]});
        assert_eq!(normalized(&a), normalized(&b));
    }

    #[test]
    fn the_report_prints_one_line_per_resource_and_a_summary() {
        let mut report = ProvisionReport::default();
        report.push(ResourceKind::Topic, "cita-appointments", Change::Created);
        report.push(
            ResourceKind::Queue,
            "cita-appointments-pe",
            Change::Fixed(vec!["VisibilityTimeout".to_owned()]),
        );
        report.push(ResourceKind::EventBus, "cita", Change::Fixed(Vec::new()));
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("SNS topic") && lines[0].ends_with("Created"));
        assert!(lines[1].ends_with("Updated (VisibilityTimeout)"), "{text}");
        assert!(lines[2].ends_with("AlreadyPresent"));
        assert_eq!(
            lines[3],
            "3 resources: 1 created, 1 updated, 1 already present"
        );
        assert!(report.changed_anything());
    }
}
