//! Helpers for the stores' race tests: random picks and writes released
//! together.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cita_core::booking::AppointmentWriteError;

/// A random number below `n` (uuid's random bits; no RNG crate needed).
pub fn below(n: u64) -> u64 {
    u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(n)).expect("fits")
}

/// One of `items`, at random.
pub fn pick<T: Clone>(items: &[T]) -> T {
    let i = usize::try_from(below(items.len() as u64)).expect("fits");
    items[i].clone()
}

/// Runs `write` for every item at once (each in its own task, released by
/// one barrier) and returns the results in order.
pub async fn race<T, F, Fut>(items: Vec<T>, write: F) -> Vec<Result<(), AppointmentWriteError>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AppointmentWriteError>> + Send,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(items.len()));
    let write = Arc::new(write);
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| {
            let (barrier, write) = (Arc::clone(&barrier), Arc::clone(&write));
            tokio::spawn(async move {
                barrier.wait().await;
                write(item).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.expect("racing task does not panic"));
    }
    results
}

/// Tallies results by kind (`ok`, `slot_taken`, `patient_busy`,
/// `version_conflict`); an unexpected failure fails the test.
pub fn tally(results: &[Result<(), AppointmentWriteError>]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        let kind = match r {
            Ok(()) => "ok",
            Err(AppointmentWriteError::SlotTaken) => "slot_taken",
            Err(AppointmentWriteError::PatientBusy) => "patient_busy",
            Err(AppointmentWriteError::VersionConflict) => "version_conflict",
            Err(AppointmentWriteError::Unexpected(e)) => panic!("a racing write failed: {e:#}"),
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}
