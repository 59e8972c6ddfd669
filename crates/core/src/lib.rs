//! Cita's domain: slot generation, booking rules, country routing, the ports
//! every adapter implements, and the use cases over them. No I/O: time comes
//! from the [`clock::Clock`] port, everything else through the ports.
//!
//! # Layout
//!
//! - [`ids`]: identifiers (`ProviderId`, `PatientId`, `AppointmentId`,
//!   `EventId`) and [`ids::Version`].
//! - [`routing`]: [`routing::CountryCode`] and the [`routing::CountryRouter`]
//!   that says which countries are served.
//! - [`slots`]: schedule values (slot length, buffer, notice, horizon, weekly
//!   hours, overrides, zones) and the pure slot generator.
//! - [`providers`]: the provider model and its store port.
//! - [`booking`]: the appointment state machine, the booking ports
//!   (`AppointmentStore`, `IdempotencyStore`, `SlotLock`) and
//!   [`booking::BookingService`] with every use case.
//! - [`events`]: the event envelope, the publishing ports, the outbox port and
//!   the relay.
//! - [`country`]: the country side: [`country::CountryProcessor`] and
//!   [`country::ConfirmationHandler`] over the `CountryStore` port.
//! - [`clock`]: the `Clock` port.

pub mod booking;
pub mod clock;
pub mod country;
pub mod events;
pub mod ids;
pub mod providers;
pub mod routing;
pub mod slots;
