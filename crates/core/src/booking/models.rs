//! The appointment and its state machine.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{AppointmentId, PatientId, ProviderId, Version};
use crate::routing::CountryCode;
use crate::slots::BufferMinutes;

/// Where an appointment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AppointmentStatus {
    /// Booked or rescheduled; the country has not recorded this version yet.
    Pending,
    /// The country recorded the current version.
    Confirmed,
    /// Cancelled: final.
    Cancelled,
}

impl AppointmentStatus {
    /// The lower-case name used in the API, events and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the appointment still holds its time.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Cancelled)
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of pending, confirmed, cancelled")]
pub struct UnknownStatus;

impl FromStr for AppointmentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        match s {
            "pending" => Ok(Self::Pending),
            "confirmed" => Ok(Self::Confirmed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(UnknownStatus),
        }
    }
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest text allowed, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Checks the length in characters and that the only control
            /// characters are tabs and line breaks (`\t`, `\n`, `\r`): free
            /// text may span lines, but an ESC, BEL or other C0/C1 control
            /// would act instead of print where the text is shown
            /// (terminals, logs), and NUL cannot be stored by every database
            /// (PostgreSQL text).
            ///
            /// # Errors
            /// [`TextTooLong`] past the limit or with another control character.
            pub fn parse(s: &str) -> Result<Self, TextTooLong> {
                let control = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
                if s.chars().count() > Self::MAX_CHARS || s.chars().any(control) {
                    Err(TextTooLong { max: Self::MAX_CHARS })
                } else {
                    Ok(Self(s.to_owned()))
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A text was longer than allowed, or held a control character other than
/// a tab or a line break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be at most {max} characters, without control characters other than tabs and line breaks"
)]
pub struct TextTooLong {
    /// The limit, in characters.
    pub max: usize,
}

bounded_text!(
    /// Free text attached to an appointment (≤ 1000 characters).
    Notes, 1000
);
bounded_text!(
    /// Why an appointment was cancelled (≤ 500 characters).
    CancelReason, 500
);

/// An appointment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    /// UUIDv7.
    pub id: AppointmentId,
    /// Whose time it takes.
    pub provider_id: ProviderId,
    /// Who comes.
    pub patient_id: PatientId,
    /// The country that processes it (the provider's).
    pub country: CountryCode,
    /// When it starts.
    pub start: Timestamp,
    /// When it ends (`start` + the provider's slot length at booking).
    pub end: Timestamp,
    /// Time the provider keeps free after it (the provider's buffer at booking
    /// or rescheduling); stores include it when they refuse provider overlaps.
    pub buffer: BufferMinutes,
    /// Where it stands.
    pub status: AppointmentStatus,
    /// 1 on booking, + 1 per reschedule or cancel; confirmations keep it.
    pub version: Version,
    /// Free text from the booking.
    pub notes: Option<Notes>,
    /// Set when cancelled with a reason.
    pub cancel_reason: Option<CancelReason>,
    /// When it was booked.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A transition that the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the appointment is cancelled")]
pub struct AlreadyCancelled;

/// What a confirmation does to an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Pending at this version: now confirmed.
    Applies(Appointment),
    /// Already confirmed at this version: nothing to do.
    AlreadyConfirmed,
    /// For another version (late or early): ignored.
    OtherVersion,
    /// The appointment is cancelled: ignored.
    Cancelled,
}

impl Appointment {
    /// The time the provider is held: `[start, end + buffer)`.
    pub fn provider_hold(&self) -> (Timestamp, Timestamp) {
        (self.start, self.end + self.buffer.duration())
    }

    /// Whether two appointments' times clash for the provider (buffers included).
    pub fn provider_overlaps(&self, other: &Appointment) -> bool {
        let (a0, a1) = self.provider_hold();
        let (b0, b1) = other.provider_hold();
        a0 < b1 && b0 < a1
    }

    /// Whether `self`, an active appointment of the provider, keeps `new`
    /// from being booked: their provider holds overlap, or `new`'s buffer
    /// (the provider's current one) put after `self`'s end too reaches
    /// `new`'s start — `self.start < new.end + b` and
    /// `new.start < self.end + max(self.buffer, b)`. The second part is the
    /// rule availability shows when a provider's buffer has grown since
    /// earlier bookings; every [`super::AppointmentStore::insert`] applies
    /// the whole rule.
    pub fn blocks_booking(&self, new: &Appointment) -> bool {
        let buffer = new.buffer.duration();
        self.provider_overlaps(new)
            || (self.start < new.end + buffer && new.start < self.end + buffer)
    }

    /// Whether two appointments' times clash for the patient (no buffers).
    pub fn patient_overlaps(&self, other: &Appointment) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Moves to a new slot: version + 1, back to pending.
    ///
    /// # Errors
    /// [`AlreadyCancelled`]: cancelled is terminal.
    pub fn reschedule(
        &self,
        start: Timestamp,
        end: Timestamp,
        buffer: BufferMinutes,
        now: Timestamp,
    ) -> Result<Appointment, AlreadyCancelled> {
        if self.status == AppointmentStatus::Cancelled {
            return Err(AlreadyCancelled);
        }
        Ok(Appointment {
            start,
            end,
            buffer,
            status: AppointmentStatus::Pending,
            version: self.version.next(),
            updated_at: now,
            ..self.clone()
        })
    }

    /// Cancels: version + 1, final.
    ///
    /// # Errors
    /// [`AlreadyCancelled`] when it already is (callers answer "unchanged").
    pub fn cancel(
        &self,
        reason: Option<CancelReason>,
        now: Timestamp,
    ) -> Result<Appointment, AlreadyCancelled> {
        if self.status == AppointmentStatus::Cancelled {
            return Err(AlreadyCancelled);
        }
        Ok(Appointment {
            status: AppointmentStatus::Cancelled,
            version: self.version.next(),
            cancel_reason: reason,
            updated_at: now,
            ..self.clone()
        })
    }

    /// Applies a country's confirmation of `version`: only a pending
    /// appointment at exactly that version becomes confirmed (version kept).
    pub fn confirm(&self, version: Version, now: Timestamp) -> Confirmation {
        match self.status {
            AppointmentStatus::Cancelled => Confirmation::Cancelled,
            _ if self.version != version => Confirmation::OtherVersion,
            AppointmentStatus::Confirmed => Confirmation::AlreadyConfirmed,
            AppointmentStatus::Pending => Confirmation::Applies(Appointment {
                status: AppointmentStatus::Confirmed,
                updated_at: now,
                ..self.clone()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::BufferMinutes;

    fn sample() -> Appointment {
        let t0: Timestamp = "2026-11-23T14:00:00Z".parse().unwrap();
        Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("ana").unwrap(),
            patient_id: PatientId::parse("p1").unwrap(),
            country: CountryCode::PE,
            start: t0,
            end: t0 + jiff::SignedDuration::from_mins(30),
            buffer: BufferMinutes::new(10).unwrap(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: t0,
            updated_at: t0,
        }
    }

    #[test]
    fn confirmation_applies_only_to_the_current_pending_version() {
        let a = sample();
        let now = a.created_at;
        let Confirmation::Applies(c) = a.confirm(Version::FIRST, now) else {
            panic!()
        };
        assert_eq!(c.status, AppointmentStatus::Confirmed);
        assert_eq!(c.version, Version::FIRST);
        assert_eq!(
            c.confirm(Version::FIRST, now),
            Confirmation::AlreadyConfirmed
        );
        let moved = c.reschedule(a.start, a.end, a.buffer, now).unwrap();
        assert_eq!(moved.version.get(), 2);
        assert_eq!(moved.status, AppointmentStatus::Pending);
        assert_eq!(
            moved.confirm(Version::FIRST, now),
            Confirmation::OtherVersion
        );
    }

    #[test]
    fn cancelled_is_terminal() {
        let a = sample();
        let c = a
            .cancel(Some(CancelReason::parse("ill").unwrap()), a.created_at)
            .unwrap();
        assert_eq!(c.version.get(), 2);
        assert_eq!(c.cancel(None, a.created_at), Err(AlreadyCancelled));
        assert_eq!(
            c.reschedule(a.start, a.end, a.buffer, a.created_at),
            Err(AlreadyCancelled)
        );
        assert_eq!(c.confirm(c.version, a.created_at), Confirmation::Cancelled);
    }

    #[test]
    fn free_text_may_span_lines_but_holds_no_other_control_character() {
        let multi = "primera consulta\n\tsegunda línea\r\n👍";
        assert_eq!(Notes::parse(multi).unwrap().as_str(), multi);
        assert_eq!(CancelReason::parse(multi).unwrap().as_str(), multi);
        assert!(Notes::parse(&"ñ".repeat(1000)).is_ok());
        assert_eq!(
            Notes::parse(&"n".repeat(1001)),
            Err(TextTooLong { max: 1000 })
        );
        assert_eq!(
            CancelReason::parse(&"r".repeat(501)),
            Err(TextTooLong { max: 500 })
        );
        for bad in [
            "\0",
            "\u{1b}[2J",
            "ding\u{7}",
            "\u{8}",
            "\u{7f}",
            "\u{85}",
            "\u{9b}",
        ] {
            assert!(Notes::parse(bad).is_err(), "{bad:?}");
            assert!(CancelReason::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn provider_overlap_includes_buffers_patient_overlap_does_not() {
        let a = sample();
        let mut b = sample();
        b.start = a.end + jiff::SignedDuration::from_mins(5);
        b.end = b.start + jiff::SignedDuration::from_mins(30);
        assert!(a.provider_overlaps(&b));
        assert!(!a.patient_overlaps(&b));
    }

    #[test]
    fn a_booking_is_blocked_by_the_new_buffer_after_an_earlier_end() {
        let mins = jiff::SignedDuration::from_mins;
        let mut earlier = sample();
        earlier.buffer = BufferMinutes::new(0).unwrap();
        let at = |offset: i64, buffer: u32| {
            let mut b = sample();
            b.start = earlier.end + mins(offset);
            b.end = b.start + mins(30);
            b.buffer = BufferMinutes::new(buffer).unwrap();
            b
        };
        // No overlap of the holds, but 15 minutes of new buffer after the
        // earlier end reach a start 10 minutes later.
        let near = at(10, 15);
        assert!(!earlier.provider_overlaps(&near));
        assert!(earlier.blocks_booking(&near));
        // One buffer later is free; so is any start when the new buffer is 0.
        assert!(!earlier.blocks_booking(&at(15, 15)));
        assert!(!earlier.blocks_booking(&at(0, 0)));
        // Before it, the new buffer runs into the earlier start.
        let mut before = at(0, 15);
        before.start = earlier.start - mins(40);
        before.end = before.start + mins(30);
        assert!(earlier.blocks_booking(&before));
        // The earlier appointment's own buffer still counts.
        earlier.buffer = BufferMinutes::new(20).unwrap();
        assert!(earlier.blocks_booking(&at(15, 5)));
    }
}
