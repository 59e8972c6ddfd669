//! Providers cached in the process, kept fresh by PostgreSQL's
//! `LISTEN`/`NOTIFY`.
//!
//! Every booking and every availability request reads its provider; on
//! PostgreSQL that is a statement per request, most of them reading a row
//! that has not changed for days. So [`PostgresProviderStore::cached`]
//! keeps the providers it read, and a trigger on the table
//! (`0007_provider_notify.sql`) announces every change, by any process, on
//! the channel [`CHANNEL`]; a task of the store listens and drops the
//! provider named.
//!
//! # How fresh an answer is
//!
//! A provider changed by another process is served as it was until the
//! notification arrives (it is sent when the change commits; on one
//! machine that takes well under a millisecond, across a network a round
//! trip). A request that read the provider just before the change commits
//! acts on the old one anyway, cached or not, so this only widens that
//! window by the notification's delay. Changes made through this store are
//! seen at once. Nothing is served from the cache while the listening
//! connection is down: the cache is emptied when it is lost and again when
//! it is back (notifications sent in between are lost), and in between
//! every read goes to the database.
//!
//! # Why a racing read cannot leave a stale entry
//!
//! The cache keeps a clock that ticks on every drop. A read that misses
//! notes the clock before it asks the database and stores what it got only
//! if the clock has not moved since: if any provider was dropped in
//! between, the answer may predate that change and is not kept.
//!
//! [`PostgresProviderStore::cached`]: super::PostgresProviderStore::cached

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use cita_core::providers::Provider;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::oneshot;

/// The channel the providers' trigger notifies, with the provider's id as
/// the payload.
pub(super) const CHANNEL: &str = "cita_provider_changed";

/// The most providers kept before the cache starts over.
const BUDGET: usize = 10_000;

/// How long the listener waits before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// The cached providers (see the module's documentation).
#[derive(Debug)]
pub(super) struct ProviderCache {
    state: Mutex<State>,
    /// Dropped with the cache: stops the listening task.
    _stop: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the listener is connected: only then is the cache used.
    live: bool,
    clock: u64,
    entries: HashMap<String, Provider>,
}

impl ProviderCache {
    /// A cache whose listener connects as `pool` does, on a connection of
    /// its own (outside the pool, which keeps all its connections for
    /// requests), while the cache lives. Must be called within a Tokio
    /// runtime.
    pub(super) fn start(pool: &PgPool) -> Arc<Self> {
        let (stop, stopped) = oneshot::channel();
        let cache = Arc::new(Self {
            state: Mutex::new(State::default()),
            _stop: stop,
        });
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        tokio::spawn(listen(Arc::downgrade(&cache), own, pool.clone(), stopped));
        cache
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached provider, or else the ticket a read of the database needs
    /// to fill the cache afterwards (`None` when the cache is not in use).
    pub(super) fn lookup(&self, id: &str) -> Result<Provider, Option<u64>> {
        let state = self.state();
        if !state.live {
            return Err(None);
        }
        state.entries.get(id).cloned().ok_or(Some(state.clock))
    }

    /// Keeps `provider`, read with `ticket`, unless something was dropped since.
    pub(super) fn fill(&self, ticket: u64, provider: &Provider) {
        let mut state = self.state();
        if !state.live || state.clock != ticket {
            return;
        }
        if state.entries.len() >= BUDGET {
            state.entries.clear();
        }
        state
            .entries
            .insert(provider.id.as_str().to_owned(), provider.clone());
    }

    /// Drops one provider.
    pub(super) fn drop_one(&self, id: &str) {
        let mut state = self.state();
        state.clock += 1;
        state.entries.remove(id);
    }

    /// Drops everything, and uses the cache from now on or not.
    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.clock += 1;
        state.entries.clear();
        state.live = live;
    }
}

/// Listens on [`CHANNEL`] with `pool`'s one connection while the cache
/// lives and `store` (the store's pool) is open, connecting again after a
/// failure.
async fn listen(
    cache: Weak<ProviderCache>,
    pool: PgPool,
    store: PgPool,
    mut stopped: oneshot::Receiver<()>,
) {
    let _closing = Closing(pool.clone());
    loop {
        let connected = tokio::select! {
            _ = &mut stopped => return,
            () = store.close_event() => return,
            connected = subscribe(&pool) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "provider cache: cannot listen for changes; reading every provider from the database");
                tokio::select! {
                    _ = &mut stopped => return,
                    () = store.close_event() => return,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        let Some(c) = cache.upgrade() else { return };
        c.reset(true);
        drop(c);
        loop {
            let received = tokio::select! {
                _ = &mut stopped => return,
                () = store.close_event() => return,
                received = listener.try_recv() => received,
            };
            let Some(c) = cache.upgrade() else { return };
            match received {
                Ok(Some(notification)) => c.drop_one(notification.payload()),
                // The connection was lost and is back (the listener
                // reconnects before answering): changes in between were
                // not heard.
                Ok(None) => c.reset(true),
                Err(e) => {
                    c.reset(false);
                    tracing::warn!(error = %e, "provider cache: lost the change listener; reading every provider from the database until it is back");
                    break;
                }
            }
        }
    }
}

/// Closes the listener's own pool when the task ends.
struct Closing(PgPool);

impl Drop for Closing {
    fn drop(&mut self) {
        let pool = self.0.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { pool.close().await });
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
