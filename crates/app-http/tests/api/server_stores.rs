//! `cita-http` on server stores: PostgreSQL as the primary store, MariaDB
//! databases as the countries' own stores, Redis as the slot lock — the
//! servers named by `TEST_POSTGRES_URL`, `TEST_MYSQL_URL` and
//! `TEST_REDIS_URL` (`./scripts/test` makes sure they run and exports them).
//! Without them these tests say they were skipped and pass, except in CI
//! (`CI=true`), where a missing server is a failure.
//!
//! Every test creates its own databases (`cita_http_<random>`) and drops
//! them at the end, so tests never share data.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cita_adapters::mysql::sqlx::{self as mysqlx, MySqlPool};
use cita_adapters::postgres::sqlx::{self as pgx, PgPool};
use cita_http::config::{Config, SecretUrl};
use cita_tests::servers::{MySqlScratch, PgScratch, server_url as server};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{Reply, TestApp, open_provider, slot, spawn_app_with};

/// A configuration for PostgreSQL at `pg`, with small pools (several apps
/// and tests share the servers).
fn on_postgres(config: &mut Config, pg: &str) {
    config.database_url = Some(SecretUrl::new(pg));
    config.database_max_connections = 8;
}

/// A provider like [`open_provider`] in `country`.
fn provider_in(country: &str) -> Value {
    let mut p = open_provider();
    p["countryIso"] = json!(country);
    p
}

/// Books `(provider, start)` with `n` clients at once, spread round-robin
/// over `apps`; returns each answer's status and problem code.
async fn race(apps: &[Arc<TestApp>], n: usize, provider: &str, start: &str) -> Vec<(u16, String)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = JoinSet::new();
    for i in 0..n {
        let app = Arc::clone(&apps[i % apps.len()]);
        let (barrier, provider, start) =
            (Arc::clone(&barrier), provider.to_owned(), start.to_owned());
        set.spawn(async move {
            barrier.wait().await;
            let r: Reply = app
                .book(
                    &provider,
                    &format!("racer-{i}-{}", uuid::Uuid::new_v4().simple()),
                    &start,
                )
                .await;
            let code = if r.status.is_success() {
                String::new()
            } else {
                r.json()["code"].as_str().unwrap_or("").to_owned()
            };
            (r.status.as_u16(), code)
        });
    }
    set.join_all().await
}

#[track_caller]
fn one_winner(answers: &[(u16, String)]) {
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let taken = answers
        .iter()
        .filter(|(s, c)| *s == 409 && c == "slot_taken")
        .count();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(taken, answers.len() - 1, "{answers:?}");
}

/// Active appointments per (provider, start) in the primary store, read
/// with SQL: more than one anywhere is a double booking.
async fn max_active_per_slot(pg: &PgPool) -> i64 {
    pgx::query_scalar::<_, Option<i64>>(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM appointments \
         WHERE status <> 'cancelled' GROUP BY provider_id, start_at) AS per_slot",
    )
    .fetch_one(pg)
    .await
    .expect("the appointments table answers")
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_primary_redis_lock_and_mariadb_countries_book_and_confirm() {
    const TEST: &str = "postgres_primary_redis_lock_and_mariadb_countries_book_and_confirm";
    let (Some(pg), Some(my), Some(redis)) = (
        server("TEST_POSTGRES_URL", TEST),
        server("TEST_MYSQL_URL", TEST),
        server("TEST_REDIS_URL", TEST),
    ) else {
        return;
    };
    let pg = PgScratch::new(&pg).await;
    let countries = MySqlScratch::new(&my, 2).await;
    let app = spawn_app_with(|c| {
        on_postgres(c, pg.url());
        c.lock_url = Some(SecretUrl::new(redis.clone()));
        c.country_database_urls
            .insert("PE".into(), SecretUrl::new(countries.url(0)));
        c.country_database_urls
            .insert("CL".into(), SecretUrl::new(countries.url(1)));
    })
    .await;

    let ready = app.get("/ready").await.ok(200);
    for name in [
        "primary-store",
        "slot-lock",
        "country-store-pe",
        "country-store-cl",
    ] {
        assert_eq!(ready["checks"][name], "ok", "{ready}");
    }

    app.create_provider("lima", &provider_in("PE")).await;
    app.create_provider("santiago", &provider_in("CL")).await;
    let pe = app.booked("lima", "p-1", &slot(2, "10:00")).await;
    let cl = app.booked("santiago", "p-2", &slot(2, "10:00")).await;
    for a in [&pe, &cl] {
        let id = a["id"].as_str().unwrap();
        app.wait_for(id, |a| a["status"] == "confirmed").await;
    }

    // Each appointment is in its own country's database only.
    let pe_db = countries.pool(0).await;
    let cl_db = countries.pool(1).await;
    let ids = |pool: MySqlPool| async move {
        mysqlx::query_scalar::<_, String>("SELECT id FROM country_appointments ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("the country table answers")
    };
    assert_eq!(
        ids(pe_db).await,
        vec![pe["id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(
        ids(cl_db).await,
        vec![cl["id"].as_str().unwrap().to_owned()]
    );

    // The data is in PostgreSQL: a second instance on it sees it.
    let other = spawn_app_with(|c| on_postgres(c, pg.url())).await;
    let seen = other.appointment(pe["id"].as_str().unwrap()).await.ok(200);
    assert_eq!(seen["status"], "confirmed");
    other.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_and_redis_have_one_winner_per_slot() {
    const TEST: &str = "two_instances_on_one_postgres_and_redis_have_one_winner_per_slot";
    let (Some(pg), Some(redis)) = (
        server("TEST_POSTGRES_URL", TEST),
        server("TEST_REDIS_URL", TEST),
    ) else {
        return;
    };
    let pg = PgScratch::new(&pg).await;
    let configure = |c: &mut Config| {
        on_postgres(c, pg.url());
        c.lock_url = Some(SecretUrl::new(redis.clone()));
    };
    let apps = [
        Arc::new(spawn_app_with(configure).await),
        Arc::new(spawn_app_with(configure).await),
    ];
    apps[0].open_provider("ana").await;

    for hour in ["09:00", "10:00", "11:00", "12:00"] {
        let answers = race(&apps, 32, "ana", &slot(3, hour)).await;
        one_winner(&answers);
    }
    // The slot between two booked ones is free (touching is not
    // overlapping) and still goes to exactly one of its racers.
    let answers = race(&apps, 16, "ana", &slot(3, "09:30")).await;
    one_winner(&answers);

    let pool = pg.pool().await;
    assert_eq!(max_active_per_slot(&pool).await, 1);
    let listed = apps[1].list("providerId=ana").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
    pool.close().await;
    for app in apps {
        Arc::into_inner(app).expect("no clones left").stop().await;
    }
}

/// A `redis-server` of this test's own on a spare port, stopped when dropped.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (it runs the TEST_REDIS_URL server)");
        let me = Self {
            port,
            child: Some(child),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn lock_outages(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text;
    text.lines()
        .find_map(|l| l.strip_prefix("cita_lock_unavailable_total "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_run_bookings_go_on_without_double_booking() {
    const TEST: &str = "redis_stopped_mid_run_bookings_go_on_without_double_booking";
    let (Some(pg), Some(_)) = (
        server("TEST_POSTGRES_URL", TEST),
        server("TEST_REDIS_URL", TEST),
    ) else {
        return;
    };
    let pg = PgScratch::new(&pg).await;
    let mut redis = OwnRedis::start(spare_port());
    let url = redis.url();
    let app = Arc::new(
        spawn_app_with(|c| {
            on_postgres(c, pg.url());
            c.lock_url = Some(SecretUrl::new(url.clone()));
        })
        .await,
    );
    app.open_provider("ana").await;
    let apps = [Arc::clone(&app)];

    one_winner(&race(&apps, 16, "ana", &slot(3, "09:00")).await);
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);

    redis.stop();
    for hour in ["10:00", "11:00"] {
        one_winner(&race(&apps, 16, "ana", &slot(3, hour)).await);
    }
    assert!(lock_outages(&app).await > 0.0, "the outage was counted");
    let ready = app.get("/ready").await;
    let problem = ready.problem(503, "unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("slot-lock"),
        "{problem}"
    );

    let mut redis = OwnRedis::start(redis.port);
    one_winner(&race(&apps, 16, "ana", &slot(3, "12:00")).await);
    assert_eq!(app.get("/ready").await.status, StatusCode::OK);
    redis.stop();

    let pool = pg.pool().await;
    assert_eq!(max_active_per_slot(&pool).await, 1);
    pool.close().await;
    drop(apps);
    Arc::into_inner(app).expect("no clones left").stop().await;
}
