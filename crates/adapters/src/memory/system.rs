use std::collections::BTreeMap;
use std::sync::Arc;

use cita_core::booking::BookingService;
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryStore};
use cita_core::events::{ConfirmationPublisher, EventPublisher, Outbox};
use cita_core::routing::{CountryCode, CountryRouter};

use super::{
    InMemoryAppointmentStore, InMemoryBus, InMemoryCountryStore, InMemoryIdempotencyStore,
    InMemoryProviderStore, InMemorySlotLock,
};
use crate::pipeline::{InProcessPipeline, PipelineParts};

/// A complete Cita in memory: stores, lock, bus, one country store per served
/// country, the booking service and its pipeline. For embedding, examples
/// and tests.
pub struct InMemoryCita {
    /// Providers.
    pub providers: Arc<InMemoryProviderStore>,
    /// Appointments and the outbox.
    pub appointments: Arc<InMemoryAppointmentStore>,
    /// Idempotency records.
    pub idempotency: Arc<InMemoryIdempotencyStore>,
    /// The slot lock.
    pub lock: Arc<InMemorySlotLock>,
    /// The in-process bus.
    pub bus: Arc<InMemoryBus>,
    /// Each served country's own store.
    pub countries: BTreeMap<CountryCode, Arc<InMemoryCountryStore>>,
    /// The booking use cases.
    pub service: Arc<BookingService>,
    /// Which countries are served.
    pub router: CountryRouter,
    /// The clock everything uses.
    pub clock: Arc<dyn Clock>,
}

impl InMemoryCita {
    /// Wires everything for `router`'s countries, with a slot lock.
    pub fn new(router: CountryRouter, clock: Arc<dyn Clock>) -> Self {
        let providers = Arc::new(InMemoryProviderStore::new());
        let appointments = Arc::new(InMemoryAppointmentStore::new());
        let idempotency = Arc::new(InMemoryIdempotencyStore::new());
        let lock = Arc::new(InMemorySlotLock::new());
        let bus = Arc::new(InMemoryBus::new(&router));
        let countries = router
            .countries()
            .map(|c| (c, Arc::new(InMemoryCountryStore::new())))
            .collect();
        let service = Arc::new(
            BookingService::new(
                providers.clone(),
                appointments.clone(),
                idempotency.clone(),
                router.clone(),
                Arc::clone(&clock),
            )
            .with_lock(lock.clone()),
        );
        Self {
            providers,
            appointments,
            idempotency,
            lock,
            bus,
            countries,
            service,
            router,
            clock,
        }
    }

    /// What applies confirmations to the appointment store. It announces
    /// each one (the external `appointment.confirmed` event in the outbox):
    /// the bus carries it to any queue subscribed to it.
    pub fn confirmation_handler(&self) -> ConfirmationHandler {
        ConfirmationHandler::new(self.appointments.clone(), Arc::clone(&self.clock))
            .announcing(true)
    }

    /// The pipeline: outbox relay → country processors → confirmations.
    pub fn pipeline(&self) -> InProcessPipeline {
        let outbox: Arc<dyn Outbox> = self.appointments.clone();
        let publisher: Arc<dyn EventPublisher> = self.bus.clone();
        let confirmations: Arc<dyn ConfirmationPublisher> = self.bus.clone();
        let stores: BTreeMap<CountryCode, Arc<dyn CountryStore>> = self
            .countries
            .iter()
            .map(|(c, s)| (*c, Arc::clone(s) as Arc<dyn CountryStore>))
            .collect();
        InProcessPipeline::new(
            &self.bus,
            PipelineParts {
                outbox,
                publisher,
                confirmations,
                country_stores: stores,
                confirmation_handler: self.confirmation_handler(),
                router: self.router.clone(),
                clock: Arc::clone(&self.clock),
            },
        )
    }
}
