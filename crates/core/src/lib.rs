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
//!   the relay. Its [`events::AppointmentSnapshot`] is the one wire shape of
//!   an appointment: what events carry, what a country records and what the
//!   HTTP API answers with.
//! - [`country`]: the country side: [`country::CountryProcessor`] and
//!   [`country::ConfirmationHandler`] over the `CountryStore` port.
//! - [`clock`]: the `Clock` port.
//!
//! # Features
//!
//! - `utoipa`: OpenAPI schemas (`utoipa::ToSchema`) for the wire types the
//!   HTTP API answers with ([`events::AppointmentSnapshot`],
//!   [`booking::AppointmentStatus`]). The schema sits on the type whose serde
//!   writes the JSON, so the two cannot drift; cita-http turns it on.

pub mod booking;
pub mod clock;
pub mod country;
pub mod events;
pub mod ids;
pub mod providers;
pub mod routing;
pub mod slots;
