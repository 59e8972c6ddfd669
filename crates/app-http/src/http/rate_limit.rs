//! Per-client rate limiting (keyed by the peer's IP address) with governor:
//! 429 `rate_limited` and `retry-after` when a client exceeds its quota.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// The limiter, or none when disabled.
pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl RateLimit {
    /// `per_second` sustained requests per client with bursts of `burst`;
    /// `per_second == 0` disables limiting.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Forgets clients idle long enough to be back at full quota (bounds memory).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }
}

/// The middleware.
pub async fn limit(State(limit): State<Arc<RateLimit>>, request: Request, next: Next) -> Response {
    if let (Some(limiter), Some(ConnectInfo(peer))) = (
        &limit.limiter,
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) && let Err(not_until) = limiter.check_key(&peer.ip())
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return ApiError::rate_limited(secs).into_response();
    }
    next.run(request).await
}
