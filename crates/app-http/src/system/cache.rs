//! Read-through caches for embedded mode, in front of the primary store's
//! providers and of the appointment ranges availability reads.
//!
//! **Valid only because this process is the single writer of its SQLite
//! files.** Every write to a cached store goes through the cache's own
//! write methods, which invalidate what the write can change; a write by
//! another process would never be seen. So these are wired in embedded mode
//! only (see [`super::System::open`]), never in front of a store that
//! other processes share.
//!
//! # Why a racing read cannot leave a stale entry
//!
//! Each cache keeps a write clock and, per key, the clock of the key's last
//! write. A write ticks the clock and stamps its key twice: before it starts
//! (dropping the key's cached values) and after it ends, whatever its
//! outcome (dropping them again). A read that misses takes a ticket (the
//! clock) before it asks the store, and fills the cache only if its key's
//! stamp is still no later than the ticket, that is if no write to the key
//! began since. A read that ran during a write may fill with what it saw,
//! but the write's second stamp drops it before the write returns. When a
//! cache outgrows its budget it starts over, and the keys it forgot are
//! treated as stamped at that moment.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use cita_core::booking::{Appointment, AppointmentQuery, AppointmentStore, AppointmentWriteError};
use cita_core::events::EventEnvelope;
use cita_core::ids::{AppointmentId, ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};
use jiff::Timestamp;

/// What a cache keeps per key, and how much of the budget it uses.
trait Cached: Default {
    /// Budget units this value uses (at least 1 per key).
    fn weight(&self) -> usize;
}

/// The write clock and the cached values (see the module's documentation).
struct Stamped<K, V> {
    state: RwLock<State<K, V>>,
    budget: usize,
}

struct State<K, V> {
    clock: u64,
    /// The stamp of every key not in `entries`.
    floor: u64,
    entries: HashMap<K, Entry<V>>,
    weight: usize,
}

struct Entry<V> {
    written: u64,
    value: V,
}

impl<K: Hash + Eq + Clone, V: Cached> Stamped<K, V> {
    fn new(budget: usize) -> Self {
        Self {
            state: RwLock::new(State {
                clock: 0,
                floor: 0,
                entries: HashMap::new(),
                weight: 0,
            }),
            budget,
        }
    }

    /// What `find` answers from `key`'s value, or else the ticket a read
    /// of the store must take to fill the cache afterwards.
    fn lookup<R>(&self, key: &K, find: impl FnOnce(&V) -> Option<R>) -> Result<R, u64> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.entries.get(key).and_then(|e| find(&e.value)) {
            Some(found) => Ok(found),
            None => Err(state.clock),
        }
    }

    /// Lets `fill` add to `key`'s value, unless a write to `key` began
    /// after `ticket` was taken.
    fn fill(&self, key: &K, ticket: u64, fill: impl FnOnce(&mut V)) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let stamp = state.entries.get(key).map_or(state.floor, |e| e.written);
        if stamp > ticket {
            return;
        }
        if state.weight >= self.budget {
            state.forget_all();
        }
        let floor = state.floor;
        let entry = state.entries.entry(key.clone()).or_insert_with(|| Entry {
            written: floor,
            value: V::default(),
        });
        let before = entry.value.weight();
        fill(&mut entry.value);
        let after = entry.value.weight();
        state.weight = state.weight - before.min(state.weight) + after.max(1);
    }

    /// Records that a write to `key` begins: drops its values now, and again
    /// when the returned guard is dropped, after the write, however it ends
    /// (a request dropped mid-write included, whose write may still commit).
    fn writing<'a>(&'a self, key: &'a K) -> WriteStamp<'a, K, V> {
        self.written(key);
        WriteStamp { cache: self, key }
    }

    /// Records a write to `key` (before and after it): drops its values.
    fn written(&self, key: &K) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.clock += 1;
        let clock = state.clock;
        if let Some(entry) = state.entries.get_mut(key) {
            let weight = entry.value.weight();
            entry.written = clock;
            entry.value = V::default();
            state.weight = state.weight.saturating_sub(weight);
        } else {
            state.entries.insert(
                key.clone(),
                Entry {
                    written: clock,
                    value: V::default(),
                },
            );
        }
    }
}

/// Stamps its key again when dropped (see [`Stamped::writing`]).
struct WriteStamp<'a, K: Hash + Eq + Clone, V: Cached> {
    cache: &'a Stamped<K, V>,
    key: &'a K,
}

impl<K: Hash + Eq + Clone, V: Cached> Drop for WriteStamp<'_, K, V> {
    fn drop(&mut self) {
        self.cache.written(self.key);
    }
}

impl<K, V> State<K, V> {
    fn forget_all(&mut self) {
        self.entries.clear();
        self.floor = self.clock;
        self.weight = 0;
    }
}

impl Cached for Option<Provider> {
    fn weight(&self) -> usize {
        1
    }
}

/// The providers of embedded mode's primary store, cached, so availability
/// and booking do not read and parse a provider's schedule (JSON, time-zone
/// lookup) on every request. Valid only in embedded mode (see the module's
/// documentation); only providers that exist are cached, at most
/// [`Self::BUDGET`] of them.
pub struct SingleWriterProviderCache {
    store: std::sync::Arc<dyn ProviderStore>,
    cache: Stamped<ProviderId, Option<Provider>>,
}

impl SingleWriterProviderCache {
    /// The most providers kept before the cache starts over.
    pub const BUDGET: usize = 10_000;

    /// A cache in front of `store`, which only this process writes.
    pub fn new(store: std::sync::Arc<dyn ProviderStore>) -> Self {
        Self {
            store,
            cache: Stamped::new(Self::BUDGET),
        }
    }
}

#[async_trait]
impl ProviderStore for SingleWriterProviderCache {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let ticket = match self.cache.lookup(id, Clone::clone) {
            Ok(provider) => return Ok(Some(provider)),
            Err(ticket) => ticket,
        };
        let provider = self.store.get(id).await?;
        if let Some(p) = &provider {
            self.cache.fill(id, ticket, |v| *v = Some(p.clone()));
        }
        Ok(provider)
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let _stamp = self.cache.writing(&provider.id);
        self.store.put(provider, expected).await
    }
}

/// One provider's cached answers to `active_in_range`, newest last.
#[derive(Default)]
struct Ranges(Vec<(Timestamp, Timestamp, Vec<Appointment>)>);

impl Ranges {
    /// Answers kept per provider.
    const PER_PROVIDER: usize = 8;
}

impl Cached for Ranges {
    fn weight(&self) -> usize {
        self.0
            .iter()
            .map(|(_, _, a)| 1 + a.len())
            .sum::<usize>()
            .max(1)
    }
}

/// Embedded mode's appointment store with its answers to `active_in_range`
/// (what availability reads) cached per provider and range, so a popular
/// provider's calendar is not read and decoded again for every visitor.
/// Every other call goes to the store. Valid only in embedded mode (see the
/// module's documentation).
///
/// A write invalidates the provider of the appointment it writes. That is
/// every provider whose answers it can change, because an appointment never
/// changes provider: cita-core's use cases (reschedule, cancel, confirm)
/// keep `provider_id`, and its store contract looks appointments up by id
/// only to replace them. At most [`Self::BUDGET`] providers plus cached
/// appointments are kept before the cache starts over.
pub struct SingleWriterAppointmentCache {
    store: std::sync::Arc<dyn AppointmentStore>,
    cache: Stamped<ProviderId, Ranges>,
}

impl SingleWriterAppointmentCache {
    /// Cached providers plus cached appointments kept before starting over.
    pub const BUDGET: usize = 50_000;

    /// A cache in front of `store`, which only this process writes.
    pub fn new(store: std::sync::Arc<dyn AppointmentStore>) -> Self {
        Self {
            store,
            cache: Stamped::new(Self::BUDGET),
        }
    }
}

#[async_trait]
impl AppointmentStore for SingleWriterAppointmentCache {
    async fn insert(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError> {
        let _stamp = self.cache.writing(&appointment.provider_id);
        self.store.insert(appointment, event).await
    }

    async fn update<'a>(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&'a EventEnvelope>,
    ) -> Result<(), AppointmentWriteError> {
        let _stamp = self.cache.writing(&appointment.provider_id);
        self.store.update(appointment, expected, event).await
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<Appointment>> {
        self.store.get(id).await
    }

    async fn list(&self, query: &AppointmentQuery) -> anyhow::Result<Vec<Appointment>> {
        self.store.list(query).await
    }

    async fn active_in_range(
        &self,
        provider: &ProviderId,
        from: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Vec<Appointment>> {
        let cached = self.cache.lookup(provider, |ranges| {
            ranges
                .0
                .iter()
                .find(|(f, u, _)| *f == from && *u == until)
                .map(|(_, _, appointments)| appointments.clone())
        });
        let ticket = match cached {
            Ok(appointments) => return Ok(appointments),
            Err(ticket) => ticket,
        };
        let appointments = self.store.active_in_range(provider, from, until).await?;
        self.cache.fill(provider, ticket, |ranges| {
            if ranges.0.len() >= Ranges::PER_PROVIDER {
                ranges.0.remove(0);
            }
            ranges.0.push((from, until, appointments.clone()));
        });
        Ok(appointments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Value(Vec<u32>);

    impl Cached for Value {
        fn weight(&self) -> usize {
            self.0.len().max(1)
        }
    }

    fn cached(c: &Stamped<&'static str, Value>, key: &'static str) -> Option<Vec<u32>> {
        c.lookup(&key, |v| (!v.0.is_empty()).then(|| v.0.clone()))
            .ok()
    }

    #[test]
    fn a_read_that_raced_a_write_does_not_fill() {
        let c = Stamped::<&'static str, Value>::new(100);
        let ticket = c.lookup(&"a", |_| None::<()>).unwrap_err();
        // A write to "a" begins (and maybe ends) while the read is at the store.
        c.written(&"a");
        c.fill(&"a", ticket, |v| v.0.push(1));
        assert_eq!(cached(&c, "a"), None);
        // A read begun after the write fills.
        let ticket = c.lookup(&"a", |_| None::<()>).unwrap_err();
        c.fill(&"a", ticket, |v| v.0.push(2));
        assert_eq!(cached(&c, "a"), Some(vec![2]));
        // Writes to other keys do not matter.
        let ticket = c.lookup(&"b", |_| None::<()>).unwrap_err();
        c.written(&"a");
        c.fill(&"b", ticket, |v| v.0.push(3));
        assert_eq!(cached(&c, "b"), Some(vec![3]));
        assert_eq!(cached(&c, "a"), None, "the write dropped a's value");
    }

    #[test]
    fn a_fill_during_a_write_is_dropped_when_the_write_ends() {
        let c = Stamped::<&'static str, Value>::new(100);
        c.written(&"a"); // the write begins
        let ticket = c.lookup(&"a", |_| None::<()>).unwrap_err();
        c.fill(&"a", ticket, |v| v.0.push(1)); // saw the store before the commit
        c.written(&"a"); // the write ends
        assert_eq!(cached(&c, "a"), None);
    }

    #[test]
    fn a_write_dropped_midway_still_stamps_its_key() {
        let c = Stamped::<&'static str, Value>::new(100);
        let stamp = c.writing(&"a");
        let ticket = c.lookup(&"a", |_| None::<()>).unwrap_err();
        c.fill(&"a", ticket, |v| v.0.push(1));
        drop(stamp); // the request's future is dropped; its write may commit
        assert_eq!(cached(&c, "a"), None);
    }

    #[test]
    fn starting_over_keeps_the_race_rule() {
        let c = Stamped::<&'static str, Value>::new(3);
        let stale = c.lookup(&"a", |_| None::<()>).unwrap_err();
        c.written(&"a");
        for (i, key) in ["b", "c", "d", "e"].into_iter().enumerate() {
            let t = c.lookup(&key, |_| None::<()>).unwrap_err();
            c.fill(&key, t, |v| v.0.push(u32::try_from(i).unwrap()));
        }
        // The budget was exceeded and "a"'s stamp forgotten, yet the read
        // that began before a's write still may not fill.
        c.fill(&"a", stale, |v| v.0.push(9));
        assert_eq!(cached(&c, "a"), None);
        assert!(c.state.read().unwrap().weight <= 3);
    }
}
