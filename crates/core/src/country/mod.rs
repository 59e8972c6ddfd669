//! The country side of the pipeline as plain logic over ports, so every
//! transport (in-process bus, SQS, …) reuses it: [`CountryProcessor`] records
//! an appointment event in the country's own store and confirms it;
//! [`ConfirmationHandler`] applies confirmations to the primary store.

mod confirmation;
mod ports;
mod processor;

pub use confirmation::{ConfirmOutcome, ConfirmationHandler};
#[cfg(test)]
pub use ports::MockCountryStore;
pub use ports::{CountryStore, CountryWrite};
pub use processor::{CountryError, CountryOutcome, CountryProcessor};
