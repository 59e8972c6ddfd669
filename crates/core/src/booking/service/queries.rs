use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::BookingService;
use crate::booking::errors::{GetAppointmentError, ListError};
use crate::booking::models::{Appointment, AppointmentStatus};
use crate::booking::ports::{AppointmentQuery, MissingOwner};
use crate::ids::{AppointmentId, PatientId, ProviderId};
use crate::slots::OutOfRange;

/// A page size: 1–200, default 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(usize);

impl PageLimit {
    /// The largest page.
    pub const MAX: usize = 200;

    /// Checks the bounds.
    ///
    /// # Errors
    /// [`OutOfRange`] outside 1–200.
    pub fn new(n: usize) -> Result<Self, OutOfRange> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(OutOfRange { min: 1, max: 200 })
        }
    }

    /// The number.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(50)
    }
}

/// Where the next page starts: after this (start, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Start of the last item shown.
    pub start: Timestamp,
    /// Id of the last item shown.
    pub id: AppointmentId,
}

/// The cursor text was not one Cita issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a cursor from a previous page")]
pub struct CursorError;

impl fmt::Display for Cursor {
    /// An opaque token: `{unix seconds}.{nanoseconds}.{uuid as 32 hex digits}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.start.as_second(),
            self.start.subsec_nanosecond(),
            self.id.as_uuid().simple()
        )
    }
}

impl FromStr for Cursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, CursorError> {
        let mut parts = s.split('.');
        let (Some(secs), Some(nanos), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CursorError);
        };
        let secs: i64 = secs.parse().map_err(|_| CursorError)?;
        let nanos: i32 = nanos.parse().map_err(|_| CursorError)?;
        let start = Timestamp::new(secs, nanos).map_err(|_| CursorError)?;
        let uuid = uuid::Uuid::try_parse(id).map_err(|_| CursorError)?;
        let id = AppointmentId::from_uuid(uuid).map_err(|_| CursorError)?;
        Ok(Self { start, id })
    }
}

/// A listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Which appointments: a patient's and/or a provider's.
    pub owner: AppointmentQuery,
    /// First UTC date of `start`, inclusive.
    pub from: Option<Date>,
    /// Last UTC date of `start`, inclusive.
    pub to: Option<Date>,
    /// Only this status.
    pub status: Option<AppointmentStatus>,
    /// Page size.
    pub limit: PageLimit,
    /// Continue after a previous page.
    pub cursor: Option<Cursor>,
}

impl ListRequest {
    /// A first page of a patient's and/or provider's appointments.
    ///
    /// # Errors
    /// [`MissingOwner`] when neither is given.
    pub fn new(
        patient: Option<PatientId>,
        provider: Option<ProviderId>,
    ) -> Result<Self, MissingOwner> {
        Ok(Self {
            owner: AppointmentQuery::new(patient, provider, PageLimit::default().get())?,
            from: None,
            to: None,
            status: None,
            limit: PageLimit::default(),
            cursor: None,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Ordered by start, then id.
    pub items: Vec<Appointment>,
    /// Present when more items follow.
    pub next_cursor: Option<Cursor>,
}

fn utc_midnight(d: Date) -> anyhow::Result<Timestamp> {
    Ok(d.to_zoned(TimeZone::UTC)?.timestamp())
}

impl BookingService {
    /// Reads one appointment.
    ///
    /// # Errors
    /// `NotFound`, or `Unexpected`.
    pub async fn get_appointment(
        &self,
        id: AppointmentId,
    ) -> Result<Appointment, GetAppointmentError> {
        self.appointments
            .get(id)
            .await?
            .ok_or(GetAppointmentError::NotFound)
    }

    /// Lists appointments by patient and/or provider, ordered by start then
    /// id, a page at a time.
    ///
    /// # Errors
    /// `ToBeforeFrom`, or `Unexpected`.
    pub async fn list_appointments(&self, request: ListRequest) -> Result<Page, ListError> {
        if let (Some(f), Some(t)) = (request.from, request.to)
            && t < f
        {
            return Err(ListError::ToBeforeFrom);
        }
        let mut query = request.owner;
        query.from = request.from.map(utc_midnight).transpose()?;
        query.until = request
            .to
            .map(|t| {
                t.tomorrow()
                    .map_err(anyhow::Error::from)
                    .and_then(utc_midnight)
            })
            .transpose()?;
        query.status = request.status;
        query.after = request.cursor.map(|c| (c.start, c.id));
        let limit = request.limit.get();
        query.limit = limit + 1;
        let mut items = self.appointments.list(&query).await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|a| Cursor {
                start: a.start,
                id: a.id,
            })
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
