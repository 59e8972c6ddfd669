use jiff::Timestamp;

use crate::ids::{ProviderId, Version};
use crate::routing::CountryCode;
use crate::slots::Schedule;

/// A provider's display name: 1–200 characters, not blank, one line of
/// printable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 200 characters, not blank, without control characters")]
pub struct ProviderNameError;

impl ProviderName {
    /// Checks the length (in characters), that it is not only whitespace,
    /// and that it holds no control character (C0, DEL or C1: U+0000–U+001F,
    /// U+007F–U+009F), tabs and line breaks included. Names are shown on one
    /// line, often on terminals and in logs, where an ESC or BEL would act
    /// instead of print; NUL cannot be stored by every database.
    ///
    /// # Errors
    /// [`ProviderNameError`].
    pub fn parse(s: &str) -> Result<Self, ProviderNameError> {
        let n = s.chars().count();
        if n == 0 || n > 200 || s.trim().is_empty() || s.chars().any(char::is_control) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_line_of_printable_text() {
        for ok in [
            "Dra. Ana Torres",
            "Ñusta Pérez-O'Higgins \"Ana\" 👩‍⚕️",
            "a",
            &"n".repeat(200),
        ] {
            assert_eq!(ProviderName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "   ",
            &"n".repeat(201),
            "Ana\0",
            "Ana\u{1b}[31mred",
            "Ana\u{7}",
            "Ana\tTorres",
            "Ana\nTorres",
            "Ana\rTorres",
            "Ana\u{7f}",
            "Ana\u{85}",
            "Ana\u{9b}31m",
        ] {
            assert_eq!(ProviderName::parse(bad), Err(ProviderNameError), "{bad:?}");
        }
    }
}
