//! A real outage of the primary store: `cita-http` on PostgreSQL
//! (`TEST_POSTGRES_URL`) reached through a TCP proxy of the test's own,
//! which the test cuts (open connections closed, new ones refused) and
//! restores. While it is cut every request that needs the database answers
//! `503 unavailable`, never a 500; once restored, requests succeed again.

use std::net::SocketAddr;
use std::time::Duration;

use cita_http::config::SecretUrl;
use cita_tests::servers::{PgScratch, server_url as server};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Reply, TestApp, day, slot, spawn_app_with};

/// Forwards `127.0.0.1:{port}` to `upstream` until [`Self::cut`].
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    /// Bumped by every cut: a connection of an earlier generation closes,
    /// and so does the accept loop that listened then.
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let proxy = Self {
            port,
            upstream,
            generation: watch::Sender::new(0),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let mine = *self.generation.borrow();
        let mut cut = self.generation.subscribe();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => return,
                    },
                    _ = cut.wait_for(|g| *g != mine) => return,
                };
                let mut closed = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = closed.wait_for(|g| *g != mine) => {}
                    }
                });
            }
        });
    }

    /// Closes every open connection and stops listening: new connections
    /// are refused.
    async fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
        // Refused means nothing listens: wait until the listener is gone.
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
            tokio::task::yield_now().await;
        }
    }

    /// Listens on the same port again.
    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the proxy's port is free again");
        self.serve(listener);
    }

    /// `url` (`postgres://user@host:port/db`) with the proxy as its host.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (user, rest) = rest.split_once('@').expect("a user in the URL");
        let (_, path) = rest.split_once('/').expect("a database in the URL");
        format!("{scheme}://{user}@127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
fn server_address(url: &str) -> SocketAddr {
    let authority = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a host in the URL");
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:5432")
    };
    authority
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("a numeric loopback address")
}

#[track_caller]
fn unavailable(r: &Reply) {
    let p = r.problem(503, "unavailable");
    assert_eq!(r.header("retry-after"), Some("1"), "{p}");
    assert!(
        p["requestId"].as_str().is_some_and(|id| !id.is_empty()),
        "{p}"
    );
    for leak in ["sqlx", "pool", "PostgreSQL", "127.0.0.1"] {
        assert!(!r.text.contains(leak), "{leak} in {}", r.text);
    }
}

/// Retries `GET path` until it answers 200 (the pool reconnects on
/// demand; the first attempts may still meet a connection that died).
async fn eventually_ok(app: &TestApp, path: &str) -> Reply {
    let mut last = None;
    for _ in 0..100 {
        let r = app.get(path).await;
        if r.status == 200 {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered 200 again; last: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_the_service_recovers() {
    const TEST: &str = "a_database_outage_answers_503_and_the_service_recovers";
    let Some(pg) = server("TEST_POSTGRES_URL", TEST) else {
        return;
    };
    let pg = PgScratch::new(&pg).await;
    let proxy = Proxy::start(server_address(pg.url())).await;
    let app = spawn_app_with(|c| {
        c.database_url = Some(SecretUrl::new(proxy.url(pg.url())));
        c.database_max_connections = 4;
        // Requests give up waiting for a connection quickly while it is cut.
        c.database_acquire_timeout_ms = 200;
    })
    .await;
    app.open_provider("ana").await;
    let id = app.booked("ana", "p1", &slot(2, "10:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let availability = format!("/v1/providers/ana/availability?from={}", day(2));
    app.get(&availability).await.ok(200);

    // (A provider read may still be answered from the provider cache until
    // the cache's listener notices its connection is gone: not asked here.)
    proxy.cut().await;
    unavailable(&app.book("ana", "p2", &slot(2, "11:00")).await);
    unavailable(&app.appointment(&id).await);
    unavailable(&app.get(&availability).await);
    unavailable(&app.get("/v1/appointments?patientId=p1").await);
    app.get("/ready").await.problem(503, "unavailable");

    proxy.restore().await;
    eventually_ok(&app, &format!("/v1/appointments/{id}")).await;
    app.get(&availability).await.ok(200);
    app.booked("ana", "p2", &slot(2, "11:00")).await;
    app.stop().await;
}
