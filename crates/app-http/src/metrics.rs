//! Prometheus metrics through the `metrics` facade: one recorder per
//! process, rendered at `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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

/// Counts one request and its latency.
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("cita_http_requests_total", &labels).increment(1);
    metrics::histogram!("cita_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
}

/// Counts one booking request by outcome (`booked`, `slot_taken`, `replayed`, …).
pub fn record_booking(outcome: &'static str) {
    metrics::counter!("cita_bookings_total", "outcome" => outcome).increment(1);
}
