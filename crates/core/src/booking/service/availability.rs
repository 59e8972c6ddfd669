use jiff::SignedDuration;
use jiff::civil::Date;

use super::BookingService;
use crate::booking::errors::AvailabilityError;
use crate::ids::ProviderId;
use crate::slots::{
    AvailabilityRequest, Busy, DaySlots, LAST_DATE, MAX_APPOINTMENT, SlotMinutes, Zone,
    available_slots,
};

/// An availability question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// Whose slots.
    pub provider_id: ProviderId,
    /// First date (display zone), inclusive.
    pub from: Date,
    /// Last date, inclusive; `from` when absent.
    pub to: Option<Date>,
    /// The display zone; the provider's when absent.
    pub display: Option<Zone>,
}

/// The free slots of a provider, by display-zone date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    /// The provider.
    pub provider_id: ProviderId,
    /// The display zone used.
    pub zone: Zone,
    /// The provider's slot length.
    pub slot: SlotMinutes,
    /// Every date of the range, in order.
    pub days: Vec<DaySlots>,
}

impl BookingService {
    /// The free slots of a provider over at most
    /// [`super::BookingSettings::max_availability_days`] dates.
    ///
    /// # Errors
    /// `ProviderNotFound`, `ToBeforeFrom`, `RangeTooLarge`, or `Unexpected`.
    pub async fn availability(
        &self,
        query: AvailabilityQuery,
    ) -> Result<Availability, AvailabilityError> {
        let to = query.to.unwrap_or(query.from);
        if to < query.from {
            return Err(AvailabilityError::ToBeforeFrom);
        }
        let max = self.settings.max_availability_days;
        let days = query
            .from
            .until(to)
            .map_err(anyhow::Error::from)?
            .get_days();
        if usize::try_from(days).map_or(true, |d| d + 1 > max) {
            return Err(AvailabilityError::RangeTooLarge { max });
        }
        let provider = self
            .providers
            .get(&query.provider_id)
            .await?
            .ok_or(AvailabilityError::ProviderNotFound)?;
        let schedule = &provider.schedule;
        let display = query.display.unwrap_or_else(|| schedule.zone.clone());
        let now = self.clock.now();

        // Appointments that can touch the range: one day of margin on each
        // side covers every zone offset, plus the longest hold. Checked:
        // dates past `LAST_DATE` have no representable margin (callers
        // refuse them; here they fail instead of overflowing).
        let margin = SignedDuration::from_hours(26) + MAX_APPOINTMENT + schedule.buffer.duration();
        let start = query
            .from
            .to_zoned(display.tz().clone())
            .and_then(|z| z.timestamp().checked_sub(margin))
            .map_err(anyhow::Error::from)?;
        let end = to
            .tomorrow()
            .and_then(|d| d.to_zoned(display.tz().clone()))
            .and_then(|z| z.timestamp().checked_add(margin))
            .map_err(|e| {
                anyhow::Error::from(e).context(format!(
                    "availability up to {to}: past the last date Cita reasons about ({LAST_DATE})"
                ))
            })?;
        let active = self
            .appointments
            .active_in_range(&provider.id, start, end)
            .await?;
        let mut busy: Vec<Busy> = active
            .iter()
            .map(|a| Busy {
                start: a.start,
                end: a.end,
            })
            .collect();
        // Stores return them ordered by start; sorting a handful again is cheap
        // insurance for the generator's precondition.
        busy.sort_unstable();
        let days = available_slots(&AvailabilityRequest {
            schedule,
            display: &display,
            from: query.from,
            to,
            busy: &busy,
            now,
        });
        Ok(Availability {
            provider_id: provider.id,
            zone: display,
            slot: schedule.slot,
            days,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::Timestamp;

    use super::*;
    use crate::booking::{MockAppointmentStore, MockIdempotencyStore};
    use crate::clock::MockClock;
    use crate::ids::Version;
    use crate::providers::{MockProviderStore, Provider, ProviderName};
    use crate::routing::{CountryCode, CountryRouter};
    use crate::slots::Schedule;

    /// A provider on UTC, and appointment and idempotency stores that must
    /// not be called.
    fn service() -> BookingService {
        let t: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let provider = Provider {
            id: ProviderId::parse("ana").unwrap(),
            name: ProviderName::parse("Ana").unwrap(),
            country: CountryCode::PE,
            schedule: Schedule::new(Zone::parse("UTC").unwrap()),
            version: Version::FIRST,
            created_at: t,
            updated_at: t,
        };
        let mut providers = MockProviderStore::new();
        providers
            .expect_get()
            .returning(move |_| Ok(Some(provider.clone())));
        let mut clock = MockClock::new();
        clock.expect_now().return_const(t);
        BookingService::new(
            Arc::new(providers),
            Arc::new(MockAppointmentStore::new()),
            Arc::new(MockIdempotencyStore::new()),
            CountryRouter::default(),
            Arc::new(clock),
        )
    }

    #[tokio::test]
    async fn dates_past_the_last_date_fail_instead_of_overflowing() {
        for date in ["9999-12-29", "9999-12-31"] {
            let query = AvailabilityQuery {
                provider_id: ProviderId::parse("ana").unwrap(),
                from: date.parse().unwrap(),
                to: None,
                display: None,
            };
            let e = service().availability(query).await.unwrap_err();
            assert!(
                matches!(&e, AvailabilityError::Unexpected(_)),
                "{date}: {e:?}"
            );
        }
    }
}
