//! Embedded mode: the in-process pipeline confirms appointments, and the
//! data survives a restart on the same data directory.

use crate::helpers::{slot, spawn_app};

#[tokio::test]
async fn a_booking_is_confirmed_within_a_second() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    assert_eq!(a["status"], "pending");
    let id = a["id"].as_str().unwrap();

    let started = std::time::Instant::now();
    let c = app.wait_for(id, |a| a["status"] == "confirmed").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "confirmed after {:?}",
        started.elapsed()
    );
    assert_eq!(c["version"], 1, "confirmation does not change the version");
    assert_eq!(c["start"], a["start"]);
}

#[tokio::test]
async fn a_rescheduled_appointment_goes_pending_then_confirmed_again() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = a["id"].as_str().unwrap();
    app.wait_for(id, |a| a["status"] == "confirmed").await;

    let moved = app.reschedule(id, &slot(3, "11:00"), None).await.ok(200);
    assert_eq!(moved["status"], "pending");
    assert_eq!(moved["version"], 2);
    let c = app
        .wait_for(id, |a| a["status"] == "confirmed" && a["version"] == 2)
        .await;
    assert_eq!(c["start"], slot(3, "11:00"));

    // A cancelled one stays cancelled (the pipeline never rolls it back).
    let c = app.cancel(id, None, None).await.ok(200);
    assert_eq!(c["version"], 3);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = app.appointment(id).await.ok(200);
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["version"], 3);
}

#[tokio::test]
async fn a_restart_on_the_same_data_directory_keeps_everything() {
    let app = spawn_app().await;
    let provider = app.open_provider("ana").await;
    let kept = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let moved = app.booked("ana", "p2", &slot(3, "11:00")).await;
    let gone = app.booked("ana", "p3", &slot(3, "12:00")).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let moved_id = moved["id"].as_str().unwrap().to_owned();
    let gone_id = gone["id"].as_str().unwrap().to_owned();
    app.wait_for(&kept_id, |a| a["status"] == "confirmed").await;
    let moved = app
        .reschedule(&moved_id, &slot(4, "09:00"), None)
        .await
        .ok(200);
    let gone = app.cancel(&gone_id, None, None).await.ok(200);

    let app = app.restart().await;

    assert_eq!(app.get("/v1/providers/ana").await.ok(200), provider);
    let k = app.appointment(&kept_id).await.ok(200);
    assert_eq!(k["status"], "confirmed");
    assert_eq!(k["start"], kept["start"]);
    assert_eq!(k["createdAt"], kept["createdAt"]);
    let m = app.appointment(&moved_id).await.ok(200);
    assert_eq!(m["start"], moved["start"]);
    assert_eq!(m["version"], 2);
    let g = app.appointment(&gone_id).await.ok(200);
    assert_eq!(g, gone);
    let page = app.list("providerId=ana").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);

    // The restored state still rules bookings.
    app.book("ana", "p9", &slot(3, "10:00"))
        .await
        .problem(409, "slot_taken");
    app.booked("ana", "p9", &slot(3, "12:00")).await;
    let again = app.booked("ana", "p3", &slot(3, "13:00")).await;
    app.wait_for(again["id"].as_str().unwrap(), |a| {
        a["status"] == "confirmed"
    })
    .await;
}

#[tokio::test]
async fn a_change_pending_at_shutdown_is_confirmed_after_a_restart() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = a["id"].as_str().unwrap().to_owned();
    app.wait_for(&id, |a| a["status"] == "confirmed").await;
    app.reschedule(&id, &slot(3, "11:00"), None).await.ok(200);
    let booked = app.booked("ana", "p2", &slot(3, "12:00")).await;

    let app = app.restart().await;

    // At-least-once: whatever was committed before the stop is processed after it.
    app.wait_for(&id, |a| a["status"] == "confirmed" && a["version"] == 2)
        .await;
    app.wait_for(booked["id"].as_str().unwrap(), |a| {
        a["status"] == "confirmed"
    })
    .await;
}
