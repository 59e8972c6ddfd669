//! The HTTP server: hyper (HTTP/1.1 and cleartext HTTP/2) serving the
//! router, with what `axum::serve` leaves unbounded bounded.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never
//! fires there: a client could hold a connection open forever by sending
//! nothing, or a request head one byte at a time. Here:
//!
//! - a new connection must show within `header_read_timeout` which
//!   protocol it speaks (hyper's version detection has no timeout of its
//!   own);
//! - HTTP/1: a request head must arrive within `header_read_timeout`, and
//!   an idle keep-alive connection waiting for its next request is closed
//!   after the same time (hyper's timer runs from the moment it waits for
//!   a head);
//! - HTTP/2: the server pings an idle connection every 20 s and closes it
//!   when a ping is not answered within 20 s (a dead peer), and at most 200
//!   streams run at once per connection. A live HTTP/2 client may keep an
//!   idle connection open;
//! - every request is bounded by the request timeout (the router's
//!   `TimeoutLayer`), which includes reading its body;
//! - the head's size is bounded by the router's limits, with hyper's
//!   ([`MAX_PARSED_HEADERS`] fields, its 400 KiB read buffer, 64 KiB of
//!   request target) above them.
//!
//! Shutdown stops accepting, lets each connection finish the request in
//! hand (keep-alive connections close after it), and waits for them.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::http::MAX_PARSED_HEADERS;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// How long a client may take to send a request head, and how long an
    /// idle HTTP/1 keep-alive connection stays open.
    pub header_read_timeout: Duration,
}

/// HTTP/2 keep-alive pings: interval and how long an answer may take.
const H2_PING: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the connections to finish the requests in hand.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(MAX_PARSED_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING)
        .max_concurrent_streams(200);
    let connections = GracefulShutdown::new();
    // Connections still showing their protocol are not hyper's yet: this
    // tells them to give up at shutdown.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as a
                    // tight loop would only make it worse.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = tower::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            // What `into_make_service_with_connect_info` would insert: the
            // rate limiter keys clients by it.
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let builder = builder.clone();
        let watcher = connections.watcher();
        let within = settings.header_read_timeout;
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let shown = tokio::select! {
                shown = protocol_in_time(&stream, within) => shown,
                _ = stop.wait_for(|stopping| *stopping) => false,
            };
            if !shown {
                return;
            }
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    connections.shutdown().await;
}

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client sent enough, within `within`, for hyper to tell
/// HTTP/1 from HTTP/2. hyper's header read timeout starts only once it
/// has, so a client that sends nothing (or a prefix of the HTTP/2 preface,
/// and stops) is dropped here instead of being held forever.
async fn protocol_in_time(stream: &tokio::net::TcpStream, within: Duration) -> bool {
    let decided = async {
        let mut first = [0u8; 24];
        loop {
            let n = stream.peek(&mut first).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(false);
            }
            if n == first.len() || first[..n] != H2_PREFACE[..n] {
                return Ok(true);
            }
            // A prefix of the preface: `peek` answers at once while bytes
            // are waiting, so wait a little for the rest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    matches!(tokio::time::timeout(within, decided).await, Ok(Ok(true)))
}
