use super::{BookingService, MAX_ATTEMPTS};
use crate::booking::errors::{GetProviderError, SetProviderError};
use crate::clock::now_millis;
use crate::ids::{ProviderId, Version};
use crate::providers::{Provider, ProviderDraft, ProviderWriteError};

/// What setting a provider did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetProviderOutcome {
    /// The provider as stored.
    pub provider: Provider,
    /// Whether it was created (else replaced).
    pub created: bool,
}

impl BookingService {
    /// Creates or replaces a provider. Existing appointments are never moved
    /// or cancelled by a schedule change.
    ///
    /// # Errors
    /// [`SetProviderError::CountryNotServed`], or `Unexpected` when a port fails.
    pub async fn set_provider(
        &self,
        id: ProviderId,
        draft: ProviderDraft,
    ) -> Result<SetProviderOutcome, SetProviderError> {
        if !self.router.serves(draft.country) {
            return Err(SetProviderError::CountryNotServed(draft.country));
        }
        for _ in 0..MAX_ATTEMPTS {
            let now = now_millis(self.clock.as_ref());
            let current = self.providers.get(&id).await?;
            let (version, created_at, expected) = match &current {
                Some(p) => (p.version.next(), p.created_at, Some(p.version)),
                None => (Version::FIRST, now, None),
            };
            let provider = Provider {
                id: id.clone(),
                name: draft.name.clone(),
                country: draft.country,
                schedule: draft.schedule.clone(),
                version,
                created_at,
                updated_at: now,
            };
            match self.providers.put(&provider, expected).await {
                Ok(()) => {
                    return Ok(SetProviderOutcome {
                        provider,
                        created: current.is_none(),
                    });
                }
                Err(ProviderWriteError::VersionConflict) => continue,
                Err(ProviderWriteError::Unexpected(e)) => return Err(e.into()),
            }
        }
        Err(anyhow::anyhow!("provider {id} kept changing concurrently").into())
    }

    /// Reads a provider.
    ///
    /// # Errors
    /// [`GetProviderError::NotFound`], or `Unexpected` when the store fails.
    pub async fn get_provider(&self, id: &ProviderId) -> Result<Provider, GetProviderError> {
        self.providers
            .get(id)
            .await?
            .ok_or(GetProviderError::NotFound)
    }
}
