use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderStore, ProviderWriteError};

use super::lock;

/// Providers in a map.
#[derive(Debug, Default)]
pub struct InMemoryProviderStore {
    providers: Mutex<HashMap<ProviderId, Provider>>,
}

impl InMemoryProviderStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ProviderStore for InMemoryProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        Ok(lock(&self.providers).get(id).cloned())
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let mut map = lock(&self.providers);
        let stored = map.get(&provider.id).map(|p| p.version);
        if stored != expected {
            return Err(ProviderWriteError::VersionConflict);
        }
        map.insert(provider.id.clone(), provider.clone());
        Ok(())
    }
}
