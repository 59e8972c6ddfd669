//! Booking: the appointment and its state machine, the ports the use cases
//! need, their errors, and [`BookingService`].

mod errors;
mod models;
mod ports;
mod service;

pub use errors::{
    AvailabilityError, BookError, CancelError, ConfirmError, GetAppointmentError, GetProviderError,
    ListError, RescheduleError, SetProviderError,
};
pub use models::{
    AlreadyCancelled, Appointment, AppointmentStatus, CancelReason, Confirmation, Notes,
    TextTooLong, UnknownStatus,
};
pub use ports::{
    AppointmentQuery, AppointmentStore, AppointmentWriteError, BookRefusal, FieldError,
    Fingerprint, IdempotencyKey, IdempotencyKeyError, IdempotencyRecord, IdempotencyState,
    IdempotencyStore, IdempotentOutcome, LockKey, LockToken, MissingOwner, Reservation, SlotLock,
};
#[cfg(test)]
pub use ports::{MockAppointmentStore, MockIdempotencyStore, MockSlotLock};
pub use service::{
    Availability, AvailabilityQuery, BookRequest, BookingObserver, BookingService, BookingSettings,
    CancelOutcome, CancelRequest, Cursor, CursorError, ListRequest, Page, PageLimit, Replay,
    RescheduleOutcome, RescheduleRequest, SetProviderOutcome,
};
