//! Prometheus metrics through the `metrics` facade: one recorder per
//! process, rendered at `/metrics`.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::error::ProblemCode;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) for request histograms.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the recorder once per process (tests start several apps in one
/// process; they share it) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("cita_http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "cita_http_requests_total",
        "HTTP requests by route, method and status"
    );
    metrics::describe_histogram!(
        "cita_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route, method and status"
    );
    metrics::describe_counter!("cita_bookings_total", "Booking requests by outcome");
    metrics::describe_gauge!("cita_outbox_backlog", "Outbox events not yet published");
    metrics::describe_gauge!(
        "cita_outbox_oldest_age_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest unpublished outbox event (0 when empty)"
    );
    metrics::describe_counter!(
        "cita_lock_unavailable_total",
        "Slot-lock operations that failed; bookings went on without the lock"
    );
}

/// The two series one request updates.
#[derive(Clone)]
struct RequestSeries {
    count: metrics::Counter,
    latency: metrics::Histogram,
}

impl RequestSeries {
    fn register(route: &str, method: &str, status: u16) -> Self {
        let labels = [
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ];
        Self {
            count: metrics::counter!("cita_http_requests_total", &labels),
            latency: metrics::histogram!("cita_http_request_duration_seconds", &labels),
        }
    }
}

/// Series by route, then (method, status): looking one up allocates nothing
/// and hashes a route and two small values, where registering labels each
/// time would build three strings and hash them in the registry. Routes are
/// the router's templates, so the map stays small.
type SeriesByRoute = HashMap<Box<str>, HashMap<(&'static str, u16), RequestSeries>>;

static REQUEST_SERIES: LazyLock<RwLock<SeriesByRoute>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// The standard methods' names as static strings (the only ones cached).
fn standard_method(method: &str) -> Option<&'static str> {
    [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ]
    .into_iter()
    .find(|m| *m == method)
}

/// Counts one request and its latency.
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let series = match standard_method(method) {
        None => RequestSeries::register(route, method, status),
        Some(method) => {
            let found = REQUEST_SERIES
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(route)
                .and_then(|by| by.get(&(method, status)))
                .cloned();
            found.unwrap_or_else(|| {
                let series = RequestSeries::register(route, method, status);
                REQUEST_SERIES
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(route.into())
                    .or_default()
                    .insert((method, status), series.clone());
                series
            })
        }
    };
    series.count.increment(1);
    series.latency.record(elapsed.as_secs_f64());
}

/// How one booking request ended: the `outcome` label of
/// `cita_bookings_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingOutcome {
    /// `booked`: a new appointment.
    Booked,
    /// `replayed`: an earlier answer under the same idempotency key, booking
    /// or refusal alike.
    Replayed,
    /// The problem code it was refused or failed with (`slot_taken`,
    /// `validation_failed`, `unavailable`, …).
    Refused(ProblemCode),
}

impl BookingOutcome {
    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Replayed => "replayed",
            Self::Refused(code) => code.as_str(),
        }
    }
}

/// Counts one booking request by outcome.
pub fn record_booking(outcome: BookingOutcome) {
    metrics::counter!("cita_bookings_total", "outcome" => outcome.label()).increment(1);
}
