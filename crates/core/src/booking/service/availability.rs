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
