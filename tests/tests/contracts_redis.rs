//! The slot-lock contract suite against a real Redis (`TEST_REDIS_URL`), and
//! the lock's behaviour when Redis is stopped: calls fail fast instead of
//! hanging, and succeed again once Redis is back.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cita_adapters::redis::{RedisLockSettings, RedisSlotLock};
use cita_core::booking::{LockKey, LockToken, SlotLock};
use cita_core::ids::ProviderId;
use cita_tests::contracts;
use cita_tests::servers::server_url;

fn unique_prefix() -> String {
    format!("cita-test-{}:", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn redis_lock_honours_the_contract() {
    let Some(url) = server_url("TEST_REDIS_URL", "redis_lock_honours_the_contract") else {
        return;
    };
    let lock = RedisSlotLock::new(&url, &unique_prefix(), RedisLockSettings::default()).unwrap();
    lock.ping().await.expect("Redis answers PING");
    contracts::lock::slot_lock_contract(Arc::new(lock)).await;
}

/// A redis-server of our own on a spare port, stopped when dropped.
struct OwnRedis {
    child: Option<Child>,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spare_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_stopped_redis_fails_fast_and_a_restarted_one_works_again() {
    if server_url(
        "TEST_REDIS_URL",
        "a_stopped_redis_fails_fast_and_a_restarted_one_works_again",
    )
    .is_none()
    {
        return;
    }
    let port = spare_port();
    let Some(mut redis) = OwnRedis::start(port) else {
        panic!("redis-server could not be started on port {port}");
    };
    let lock = RedisSlotLock::new(
        &format!("redis://127.0.0.1:{}/", redis.port),
        &unique_prefix(),
        RedisLockSettings::default(),
    )
    .unwrap();
    let key = LockKey {
        provider: ProviderId::parse("ana").unwrap(),
        start: "2026-11-23T14:00:00Z".parse().unwrap(),
    };
    let ttl = jiff::SignedDuration::from_secs(5);
    let token = LockToken::new();
    assert!(lock.try_acquire(&key, &token, ttl).await.unwrap());
    lock.release(&key, &token).await.unwrap();

    redis.stop();
    let started = Instant::now();
    let down = lock.try_acquire(&key, &LockToken::new(), ttl).await;
    assert!(
        down.is_err(),
        "a stopped Redis must be an error, got {down:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing took {:?}: the lock must not hang a booking",
        started.elapsed()
    );

    let _redis = OwnRedis::start(port).expect("redis-server restarts on the same port");
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(true) = lock.try_acquire(&key, &LockToken::new(), ttl).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the lock works again once Redis is back");
}
