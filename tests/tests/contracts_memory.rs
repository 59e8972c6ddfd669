//! The contract suites against the in-memory adapters, each on a fresh store.

use std::sync::Arc;

use cita_adapters::memory::{
    InMemoryAppointmentStore, InMemoryCountryStore, InMemoryIdempotencyStore,
    InMemoryProviderStore, InMemorySlotLock,
};
use cita_tests::contracts;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_store() {
    contracts::provider_store_contract(Arc::new(InMemoryProviderStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_and_outbox() {
    let store = Arc::new(InMemoryAppointmentStore::new());
    contracts::appointment_store_contract(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store() {
    contracts::idempotency_store_contract(Arc::new(InMemoryIdempotencyStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_finds_the_booking_whose_answer_was_lost() {
    contracts::lost_answer_contract(
        Arc::new(InMemoryProviderStore::new()),
        Arc::new(InMemoryAppointmentStore::new()),
        Arc::new(InMemoryIdempotencyStore::new()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn country_store() {
    contracts::country_store_contract(Arc::new(InMemoryCountryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slot_lock() {
    contracts::slot_lock_contract(Arc::new(InMemorySlotLock::new())).await;
}
