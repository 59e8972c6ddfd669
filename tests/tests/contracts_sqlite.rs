//! The contract suites against the SQLite adapters, each on a fresh file.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use cita_adapters::sqlite::{
    SqliteAppointmentStore, SqliteCountryStore, SqliteDatabase, SqliteIdempotencyStore,
    SqliteProviderStore,
};
use cita_tests::contracts;
use tempfile::TempDir;

/// A migrated database in a fresh temporary directory (kept alive by the
/// returned guard: WAL mode adds `-wal` and `-shm` files next to it).
async fn fresh() -> (SqliteDatabase, TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("cita.db");
    let db = SqliteDatabase::connect(path.to_str().expect("UTF-8 path"))
        .await
        .expect("database opens");
    (db, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_store() {
    let (db, _dir) = fresh().await;
    contracts::provider_store_contract(Arc::new(SqliteProviderStore::new(&db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_and_outbox() {
    let (db, _dir) = fresh().await;
    let store = Arc::new(SqliteAppointmentStore::new(&db));
    contracts::appointment_store_contract(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store() {
    let (db, _dir) = fresh().await;
    contracts::idempotency_store_contract(Arc::new(SqliteIdempotencyStore::new(&db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_finds_the_booking_whose_answer_was_lost() {
    let (db, _dir) = fresh().await;
    contracts::lost_answer_contract(
        Arc::new(SqliteProviderStore::new(&db)),
        Arc::new(SqliteAppointmentStore::new(&db)),
        Arc::new(SqliteIdempotencyStore::new(&db)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn country_store() {
    let (db, _dir) = fresh().await;
    contracts::country_store_contract(Arc::new(SqliteCountryStore::new(&db))).await;
}

/// Two pools on one file behave like two processes sharing it: the write
/// lock, not the pool, serialises their writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appointment_store_shared_by_two_pools() {
    let (db, dir) = fresh().await;
    let other = SqliteDatabase::connect(dir.path().join("cita.db").to_str().expect("UTF-8 path"))
        .await
        .expect("second pool opens");
    let a = Arc::new(SqliteAppointmentStore::new(&db));
    let b = Arc::new(SqliteAppointmentStore::new(&other));
    contracts::appointment_store_contract(a, b).await;
}

#[tokio::test]
async fn connect_accepts_a_url_and_reopens_a_migrated_file() {
    use cita_core::providers::ProviderStore as _;

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("by-url.db");
    let url = format!("sqlite://{}", path.display());
    let first = SqliteDatabase::connect(&url)
        .await
        .expect("a URL opens and creates the file");
    assert!(path.exists(), "the file was created");
    assert!(
        dir.path().join("by-url.db-wal").exists(),
        "the database is in WAL mode"
    );
    first.close().await;

    let again = SqliteDatabase::connect(path.to_str().expect("UTF-8 path"))
        .await
        .expect("a migrated file reopens");
    let id = cita_core::ids::ProviderId::parse("nobody").expect("valid id");
    let got = SqliteProviderStore::new(&again)
        .get(&id)
        .await
        .expect("the schema is there");
    assert!(got.is_none());
}
