//! The resource names and settings of EVENTS.md, derived from one prefix.

use std::time::Duration;

use anyhow::{bail, ensure};
use cita_core::events::EventType;
use cita_core::routing::{CountryCode, CountryRouter};
use serde_json::{Value, json};

/// The prefix of every resource name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "cita";

/// Receives before SQS moves a message to its dead-letter queue (EVENTS.md).
pub const MAX_RECEIVES: u32 = crate::pipeline::MAX_DELIVERIES;

/// The default visibility timeout of every queue.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest prefix: the rule name `{prefix}-confirmations` must fit
/// EventBridge's 64 characters (queue names allow 80, topics 256).
const MAX_PREFIX_LEN: usize = 64 - "-confirmations".len();

/// The AWS resources of the pipeline: an SNS topic, one SQS queue (and its
/// DLQ) per served country, an EventBridge bus with a rule routing
/// confirmations to their own queue (and DLQ), plus the queue settings
/// every one of those queues gets.
///
/// Names (prefix `cita`, countries PE and CL): topic `cita-appointments`;
/// queues `cita-appointments-pe` / `cita-appointments-pe-dlq`,
/// `cita-appointments-cl` / `cita-appointments-cl-dlq`; bus `cita`; rule
/// `cita-confirmations`; queue `cita-confirmations` / `cita-confirmations-dlq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    countries: Vec<CountryCode>,
    visibility_timeout: Duration,
    max_receives: u32,
}

impl Topology {
    /// The topology for `countries` with resource names starting with `prefix`.
    ///
    /// # Errors
    /// When the prefix is empty, longer than 50 characters or has characters
    /// other than ASCII letters, digits, `-` and `_` (what SQS, SNS and
    /// EventBridge all accept), or when no country is given.
    pub fn new(
        prefix: impl Into<String>,
        countries: impl IntoIterator<Item = CountryCode>,
    ) -> anyhow::Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            bail!("resource prefix {prefix:?} must have 1 to {MAX_PREFIX_LEN} characters");
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("resource prefix {prefix:?} may only contain ASCII letters, digits, '-' and '_'");
        }
        let mut countries: Vec<CountryCode> = countries.into_iter().collect();
        countries.sort();
        countries.dedup();
        ensure!(
            !countries.is_empty(),
            "a topology serves at least one country"
        );
        Ok(Self {
            prefix,
            countries,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_receives: MAX_RECEIVES,
        })
    }

    /// The topology for the countries `router` serves.
    ///
    /// # Errors
    /// As [`Topology::new`].
    pub fn for_router(prefix: impl Into<String>, router: &CountryRouter) -> anyhow::Result<Self> {
        Self::new(prefix, router.countries())
    }

    /// Sets the visibility timeout of every queue (whole seconds, at least 1;
    /// default 30 s).
    ///
    /// # Errors
    /// Outside 1 s ..= 12 h, the range SQS accepts.
    pub fn with_visibility_timeout(mut self, timeout: Duration) -> anyhow::Result<Self> {
        ensure!(
            (Duration::from_secs(1)..=Duration::from_secs(43_200)).contains(&timeout),
            "a visibility timeout must be between 1 s and 12 h, not {timeout:?}"
        );
        self.visibility_timeout = timeout;
        Ok(self)
    }

    /// The prefix of every name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The served countries, in code order.
    pub fn countries(&self) -> &[CountryCode] {
        &self.countries
    }

    /// Whether `country` has a queue.
    pub fn serves(&self, country: CountryCode) -> bool {
        self.countries.contains(&country)
    }

    /// The visibility timeout of every queue.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// The visibility timeout in the whole seconds SQS takes (rounded up).
    pub fn visibility_timeout_secs(&self) -> i32 {
        whole_seconds(self.visibility_timeout)
    }

    /// Receives before a message is dead-lettered (5).
    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// The SNS topic every appointment event is published to: `{prefix}-appointments`.
    pub fn topic(&self) -> String {
        format!("{}-appointments", self.prefix)
    }

    /// A country's queue: `{prefix}-appointments-{cc}` (`cc` in lower case).
    pub fn country_queue(&self, country: CountryCode) -> String {
        format!("{}-appointments-{}", self.prefix, country.lowercase())
    }

    /// A country queue's dead-letter queue: `{prefix}-appointments-{cc}-dlq`.
    pub fn country_dlq(&self, country: CountryCode) -> String {
        format!("{}-dlq", self.country_queue(country))
    }

    /// The EventBridge bus countries confirm on: `{prefix}`.
    pub fn event_bus(&self) -> String {
        self.prefix.clone()
    }

    /// The rule on the bus that routes confirmations: `{prefix}-confirmations`.
    pub fn confirmations_rule(&self) -> String {
        format!("{}-confirmations", self.prefix)
    }

    /// The queue the rule delivers confirmations to: `{prefix}-confirmations`.
    pub fn confirmations_queue(&self) -> String {
        format!("{}-confirmations", self.prefix)
    }

    /// The confirmations queue's dead-letter queue: `{prefix}-confirmations-dlq`.
    pub fn confirmations_dlq(&self) -> String {
        format!("{}-dlq", self.confirmations_queue())
    }

    /// The SNS filter policy of a country's subscription: that country's
    /// requested, rescheduled and cancelled events.
    pub fn filter_policy(&self, country: CountryCode) -> Value {
        let types: Vec<&str> = EventType::ALL
            .into_iter()
            .filter(|t| t.is_country_work())
            .map(EventType::as_str)
            .collect();
        json!({ "countryIso": [country.as_str()], "eventType": types })
    }

    /// The rule's event pattern: every `appointment.confirmed` on the bus.
    pub fn confirmations_pattern(&self) -> Value {
        json!({ "detail-type": [EventType::Confirmed.as_str()] })
    }
}

impl Default for Topology {
    /// Prefix `cita`, countries PE and CL, 30 s visibility, 5 receives.
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            countries: vec![CountryCode::CL, CountryCode::PE],
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_receives: MAX_RECEIVES,
        }
    }
}

/// The EventBridge source of a country's confirmations: `cita.country.{cc}`.
/// It names the sender, not a resource, so it does not follow the prefix.
pub fn confirmation_source(country: CountryCode) -> String {
    format!("cita.country.{}", country.lowercase())
}

/// SQS takes whole seconds; a fraction is rounded up so a timeout is never
/// shorter than asked.
pub(crate) fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_those_of_events_md() {
        let t = Topology::default();
        assert_eq!(t.topic(), "cita-appointments");
        assert_eq!(t.country_queue(CountryCode::PE), "cita-appointments-pe");
        assert_eq!(t.country_dlq(CountryCode::CL), "cita-appointments-cl-dlq");
        assert_eq!(t.event_bus(), "cita");
        assert_eq!(t.confirmations_rule(), "cita-confirmations");
        assert_eq!(t.confirmations_queue(), "cita-confirmations");
        assert_eq!(t.confirmations_dlq(), "cita-confirmations-dlq");
        assert_eq!(t.visibility_timeout_secs(), 30);
        assert_eq!(t.max_receives(), 5);
        assert_eq!(confirmation_source(CountryCode::PE), "cita.country.pe");
        assert_eq!(
            t,
            Topology::for_router(DEFAULT_PREFIX, &CountryRouter::default()).expect("valid")
        );
    }

    #[test]
    fn the_filter_policy_is_the_one_of_events_md() {
        let t = Topology::default();
        assert_eq!(
            t.filter_policy(CountryCode::PE),
            json!({"countryIso":["PE"],"eventType":["appointment.requested","appointment.rescheduled","appointment.cancelled"]})
        );
    }

    #[test]
    fn prefixes_are_checked() {
        let countries = [CountryCode::PE];
        assert!(Topology::new("", countries).is_err());
        assert!(Topology::new("cita test", countries).is_err());
        assert!(Topology::new("x".repeat(51), countries).is_err());
        assert!(Topology::new("x".repeat(50), countries).is_ok());
        assert!(Topology::new("cita", []).is_err());
    }

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        let t = Topology::default()
            .with_visibility_timeout(Duration::from_secs(2))
            .expect("in range");
        assert_eq!(t.visibility_timeout_secs(), 2);
        assert!(
            Topology::default()
                .with_visibility_timeout(Duration::from_millis(10))
                .is_err()
        );
    }
}
