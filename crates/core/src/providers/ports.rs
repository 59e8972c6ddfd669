use async_trait::async_trait;

use super::models::Provider;
use crate::ids::{ProviderId, Version};

/// A provider write was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProviderWriteError {
    /// The stored version is not the one the write expected (or a provider
    /// exists where none was expected).
    #[error("the provider changed concurrently")]
    VersionConflict,
    /// The store failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Where providers live. Writes are versioned (optimistic concurrency).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Reads a provider.
    ///
    /// # Errors
    /// Any store failure, as an error: a failure is never `Ok(None)`.
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>>;

    /// Writes `provider` if the stored version is `expected` (`None`: no
    /// provider with this id may exist yet).
    ///
    /// # Errors
    /// [`ProviderWriteError::VersionConflict`] when the stored version differs;
    /// [`ProviderWriteError::Unexpected`] for store failures.
    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError>;
}
