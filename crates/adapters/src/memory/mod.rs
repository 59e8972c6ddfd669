//! In-memory adapters: every port of `cita-core`, an in-process bus, and
//! [`InMemoryCita`], which wires them into a complete system.
//!
//! Each store keeps its state behind one `std::sync::Mutex`: every operation
//! is short and never awaits while holding it, so a blocking mutex is both
//! simpler and faster than an async one (the same reasoning as mini-redis's
//! `Db`). Holding one lock for a whole write is also what makes the overlap
//! check and the outbox write atomic.

mod appointments;
mod bus;
mod country;
mod idempotency;
mod lock;
mod providers;
mod system;

pub use appointments::InMemoryAppointmentStore;
pub use bus::{InMemoryBus, InMemoryQueue, QueueFilter};
pub use country::InMemoryCountryStore;
pub use idempotency::InMemoryIdempotencyStore;
pub use lock::InMemorySlotLock;
pub use providers::InMemoryProviderStore;
pub use system::InMemoryCita;

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from poisoning: state is only mutated after
/// every check passed, so a panic elsewhere cannot leave it half-written.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
