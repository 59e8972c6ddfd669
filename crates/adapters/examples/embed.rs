//! Cita as a library: build the booking service on in-memory adapters, set a
//! provider, list slots, book, and watch the appointment get confirmed by the
//! in-process pipeline (relay → country processor → confirmation).
//!
//! Run with `cargo run --example embed -p cita-adapters`.

use std::sync::Arc;

use cita_adapters::clock::SystemClock;
use cita_adapters::memory::InMemoryCita;
use cita_core::booking::{AppointmentStatus, AvailabilityQuery, BookRequest};
use cita_core::ids::{PatientId, ProviderId};
use cita_core::providers::{ProviderDraft, ProviderName};
use cita_core::routing::{CountryCode, CountryRouter};
use cita_core::slots::{DayHours, LocalInterval, Schedule, WEEKDAYS, WallTime, Zone};
use jiff::ToSpan;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cita = InMemoryCita::new(CountryRouter::default(), Arc::new(SystemClock));

    // A provider in Lima working 09:00–13:00 and 14:00–18:00 every day.
    let hours = DayHours::new(vec![
        LocalInterval::new(WallTime::parse("09:00")?, WallTime::parse("13:00")?)?,
        LocalInterval::new(WallTime::parse("14:00")?, WallTime::parse("18:00")?)?,
    ])?;
    let mut schedule = Schedule::new(Zone::parse("America/Lima")?);
    for day in WEEKDAYS {
        schedule.weekly.set(day, hours.clone());
    }
    let ana = ProviderId::parse("ana")?;
    cita.service
        .set_provider(
            ana.clone(),
            ProviderDraft {
                name: ProviderName::parse("Dra. Ana Torres")?,
                country: CountryCode::PE,
                schedule,
            },
        )
        .await?;
    println!("provider {ana} set (America/Lima, 30-minute slots)");

    // Tomorrow's free slots, shown in Madrid time.
    let lima = Zone::parse("America/Lima")?;
    let tomorrow = jiff::Timestamp::now()
        .to_zoned(lima.tz().clone())
        .date()
        .checked_add(1.day())?;
    let availability = cita
        .service
        .availability(AvailabilityQuery {
            provider_id: ana.clone(),
            from: tomorrow,
            to: None,
            display: Some(Zone::parse("Europe/Madrid")?),
        })
        .await?;
    let day = &availability.days[0];
    println!(
        "{} free slots on {} (Europe/Madrid)",
        day.slots.len(),
        day.date
    );
    let first = day
        .slots
        .first()
        .ok_or_else(|| anyhow::anyhow!("no free slot"))?;
    let madrid = Zone::parse("Europe/Madrid")?;
    println!("first: {}", first.start.to_zoned(madrid.tz().clone()));

    // Book it.
    let (booked, _) = cita
        .service
        .book(BookRequest {
            provider_id: ana,
            patient_id: PatientId::parse("12345")?,
            start: first.start,
            country: Some(CountryCode::PE),
            notes: None,
            idempotency: None,
        })
        .await;
    let booked = booked?;
    println!(
        "booked {} at {}: {}",
        booked.id, booked.start, booked.status
    );

    // Run the pipeline until everything is processed.
    cita.pipeline().drain().await?;
    let now = cita.service.get_appointment(booked.id).await?;
    let recorded = cita.countries[&CountryCode::PE].len();
    println!(
        "after the pipeline: {} (the PE store holds {recorded} appointment)",
        now.status
    );
    anyhow::ensure!(
        now.status == AppointmentStatus::Confirmed,
        "expected confirmed"
    );
    Ok(())
}
