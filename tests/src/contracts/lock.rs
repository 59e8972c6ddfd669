//! The [`SlotLock`] contract: exclusive, released only by its holder,
//! expiring by its ttl.

use std::sync::Arc;
use std::time::Duration;

use cita_core::booking::{LockKey, LockToken, SlotLock};
use jiff::SignedDuration;

use super::{at, provider_id};

/// Long enough never to expire during a case.
const LONG: SignedDuration = SignedDuration::from_secs(30);
/// Short enough to wait out.
const SHORT: SignedDuration = SignedDuration::from_millis(200);

/// Runs every case of the [`SlotLock`] contract against `lock`:
///
/// - a free key → `true`; the same key with another token → `false`, and
///   with the holder's own token → `false` too (not re-entrant);
/// - other keys (another start, another provider) are independent;
/// - `release` with a wrong token keeps the lock; with the holder's token it
///   frees it; releasing a free key succeeds;
/// - a lock taken with a 200 ms ttl is held before that and free after it
///   (the suite sleeps 400 ms).
///
/// # Panics
/// On the first broken promise, naming it.
pub async fn slot_lock_contract(lock: Arc<dyn SlotLock>) {
    exclusive_and_released_by_holder(lock.as_ref()).await;
    expires_by_ttl(lock.as_ref()).await;
}

fn key(minutes: i64) -> LockKey {
    LockKey {
        provider: provider_id(),
        start: at(minutes),
    }
}

async fn acquire(
    lock: &dyn SlotLock,
    key: &LockKey,
    token: &LockToken,
    ttl: SignedDuration,
) -> bool {
    lock.try_acquire(key, token, ttl)
        .await
        .expect("try_acquire succeeds")
}

async fn exclusive_and_released_by_holder(lock: &dyn SlotLock) {
    let k = key(600);
    let (holder, other) = (LockToken::new(), LockToken::new());
    assert!(
        acquire(lock, &k, &holder, LONG).await,
        "a free key is acquired"
    );
    assert!(
        !acquire(lock, &k, &other, LONG).await,
        "a held key is refused to another token"
    );
    assert!(
        !acquire(lock, &k, &holder, LONG).await,
        "a held key is refused to its own holder too"
    );

    let later = LockKey {
        start: at(630),
        ..k.clone()
    };
    assert!(
        acquire(lock, &later, &other, LONG).await,
        "another start of the same provider is independent"
    );
    let elsewhere = LockKey {
        provider: provider_id(),
        ..k.clone()
    };
    assert!(
        acquire(lock, &elsewhere, &other, LONG).await,
        "another provider at the same start is independent"
    );

    lock.release(&k, &other)
        .await
        .expect("release with a wrong token succeeds");
    assert!(
        !acquire(lock, &k, &LockToken::new(), LONG).await,
        "release with a wrong token keeps the lock"
    );
    lock.release(&k, &holder)
        .await
        .expect("release with the holder's token succeeds");
    assert!(
        acquire(lock, &k, &other, LONG).await,
        "release with the holder's token frees the key"
    );
    lock.release(&k, &other).await.expect("release succeeds");
    lock.release(&later, &other)
        .await
        .expect("release succeeds");
    lock.release(&elsewhere, &other)
        .await
        .expect("release succeeds");
    lock.release(&key(600), &LockToken::new())
        .await
        .expect("releasing a free key succeeds");
}

async fn expires_by_ttl(lock: &dyn SlotLock) {
    let k = key(700);
    let (first, second) = (LockToken::new(), LockToken::new());
    assert!(
        acquire(lock, &k, &first, SHORT).await,
        "a free key is acquired"
    );
    assert!(
        !acquire(lock, &k, &second, SHORT).await,
        "held within its ttl"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        acquire(lock, &k, &second, LONG).await,
        "free once its ttl has passed"
    );
    lock.release(&k, &first)
        .await
        .expect("release by an expired holder succeeds");
    assert!(
        !acquire(lock, &k, &first, LONG).await,
        "an expired holder's release does not free the new holder's lock"
    );
    lock.release(&k, &second).await.expect("release succeeds");
}
