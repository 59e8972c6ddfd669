//! Providers: the [`Provider`] model and the [`ProviderStore`] port.

mod models;
mod ports;

pub use models::{Provider, ProviderDraft, ProviderName, ProviderNameError};
pub use ports::{ProviderStore, ProviderWriteError};
