//! Providers: the [`Provider`] model and the [`ProviderStore`] port.

mod models;
mod ports;

pub use models::{Provider, ProviderDraft, ProviderName, ProviderNameError};
#[cfg(test)]
pub use ports::MockProviderStore;
pub use ports::{ProviderStore, ProviderWriteError};
