//! Reports what the booking service observes (lock outages) as metrics and logs.

use cita_core::booking::BookingObserver;

/// Counts `cita_lock_unavailable_total` and logs each occurrence.
pub struct MetricsObserver;

impl BookingObserver for MetricsObserver {
    fn lock_unavailable(&self, error: &anyhow::Error) {
        metrics::counter!("cita_lock_unavailable_total").increment(1);
        tracing::warn!(error = %error, "slot lock unavailable; the store's own checks decide");
    }

    fn idempotency_unavailable(&self, error: &anyhow::Error) {
        tracing::warn!(error = %error, "could not record an idempotent answer");
    }
}
