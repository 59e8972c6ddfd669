use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cita_core::country::{CountryStore, CountryWrite};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::AppointmentId;

use super::lock;

/// One country's appointment records in a map.
#[derive(Debug, Default)]
pub struct InMemoryCountryStore {
    rows: Mutex<HashMap<AppointmentId, AppointmentSnapshot>>,
}

impl InMemoryCountryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many appointments the country holds.
    pub fn len(&self) -> usize {
        lock(&self.rows).len()
    }

    /// Whether the country holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl CountryStore for InMemoryCountryStore {
    async fn record(&self, snapshot: &AppointmentSnapshot) -> anyhow::Result<CountryWrite> {
        let mut rows = lock(&self.rows);
        match rows.get(&snapshot.id) {
            Some(held) if held.version == snapshot.version => Ok(CountryWrite::Duplicate),
            Some(held) if held.version > snapshot.version => Ok(CountryWrite::Stale),
            _ => {
                rows.insert(snapshot.id, snapshot.clone());
                Ok(CountryWrite::Applied)
            }
        }
    }

    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<AppointmentSnapshot>> {
        Ok(lock(&self.rows).get(&id).cloned())
    }
}
