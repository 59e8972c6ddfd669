use jiff::Timestamp;

use crate::ids::{ProviderId, Version};
use crate::routing::CountryCode;
use crate::slots::Schedule;

/// A provider's display name: 1–200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 200 characters and not blank")]
pub struct ProviderNameError;

impl ProviderName {
    /// Checks the length (in characters) and that it is not only whitespace.
    ///
    /// # Errors
    /// [`ProviderNameError`].
    pub fn parse(s: &str) -> Result<Self, ProviderNameError> {
        let n = s.chars().count();
        if n == 0 || n > 200 || s.trim().is_empty() || s.contains('\0') {
            return Err(ProviderNameError);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a caller sets on a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderDraft {
    /// Display name.
    pub name: ProviderName,
    /// Where the provider works; its appointments are processed by this country.
    pub country: CountryCode,
    /// When the provider works.
    pub schedule: Schedule,
}

/// A provider as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Caller-chosen id.
    pub id: ProviderId,
    /// Display name.
    pub name: ProviderName,
    /// Where the provider works.
    pub country: CountryCode,
    /// When the provider works.
    pub schedule: Schedule,
    /// 1 on creation, + 1 on every replacement.
    pub version: Version,
    /// When it was first created.
    pub created_at: Timestamp,
    /// When it was last replaced.
    pub updated_at: Timestamp,
}
