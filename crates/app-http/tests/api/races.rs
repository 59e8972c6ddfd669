//! Concurrent requests over HTTP: the store, not luck, decides.

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::helpers::{TestApp, slot, spawn_app};

/// Fires `n` requests at once (released together by a barrier) and returns
/// each answer's status and code.
async fn at_once<F, Fut>(app: &Arc<TestApp>, n: usize, request: F) -> Vec<(u16, String)>
where
    F: Fn(Arc<TestApp>, usize) -> Fut,
    Fut: std::future::Future<Output = crate::helpers::Reply> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = JoinSet::new();
    for i in 0..n {
        let barrier = Arc::clone(&barrier);
        let fut = request(Arc::clone(app), i);
        set.spawn(async move {
            barrier.wait().await;
            fut.await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        let r = r.expect("no panic");
        let code = if r.status.is_success() {
            String::new()
        } else {
            r.problem(r.status.as_u16(), r.json()["code"].as_str().unwrap_or(""))["code"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        };
        out.push((r.status.as_u16(), code));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_bookings_of_one_slot_make_one_appointment() {
    let app = Arc::new(spawn_app().await);
    app.open_provider("ana").await;
    let start = slot(3, "10:00");

    let answers = at_once(&app, 32, |app, i| {
        let start = start.clone();
        async move { app.book("ana", &format!("patient-{i}"), &start).await }
    })
    .await;

    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let taken = answers
        .iter()
        .filter(|(s, c)| *s == 409 && c == "slot_taken")
        .count();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(taken, 31, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s < 500), "{answers:?}");

    let page = app.list("providerId=ana").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_reschedules_onto_one_free_slot_move_exactly_one() {
    let app = Arc::new(spawn_app().await);
    app.open_provider("ana").await;
    let mut ids = Vec::new();
    for i in 0..16 {
        let hour = format!("{:02}:00", i + 1);
        let a = app
            .booked("ana", &format!("patient-{i}"), &slot(3, &hour))
            .await;
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    let target = slot(4, "10:00");
    let ids = Arc::new(ids);

    let answers = at_once(&app, 16, |app, i| {
        let (ids, target) = (Arc::clone(&ids), target.clone());
        async move { app.reschedule(&ids[i], &target, None).await }
    })
    .await;

    let moved = answers.iter().filter(|(s, _)| *s == 200).count();
    let taken = answers
        .iter()
        .filter(|(s, c)| *s == 409 && c == "slot_taken")
        .count();
    assert_eq!(moved, 1, "{answers:?}");
    assert_eq!(taken, 15, "{answers:?}");

    let page = app
        .list(&format!(
            "providerId=ana&from={}&to={}",
            crate::helpers::day(4),
            crate::helpers::day(4)
        ))
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["start"], target);
    assert_eq!(items[0]["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_idempotency_key_book_once() {
    let app = Arc::new(spawn_app().await);
    app.open_provider("ana").await;
    let body =
        serde_json::to_vec(&crate::helpers::book_body("ana", "p1", &slot(3, "10:00"))).unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut set = JoinSet::new();
    for _ in 0..8 {
        let (app, barrier, body) = (Arc::clone(&app), Arc::clone(&barrier), body.clone());
        set.spawn(async move {
            barrier.wait().await;
            app.send(
                reqwest::Method::POST,
                "/v1/appointments",
                &[("idempotency-key", "retry-me")],
                Some(("application/json", body)),
            )
            .await
        });
    }
    let mut bodies = Vec::new();
    let mut fresh = 0;
    while let Some(r) = set.join_next().await {
        let r = r.expect("no panic");
        bodies.push(r.ok(201));
        if r.header("idempotent-replayed").is_none() {
            fresh += 1;
        } else {
            assert_eq!(r.header("idempotent-replayed"), Some("true"));
        }
    }
    assert_eq!(fresh, 1, "one answer is computed, the others replayed");
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    let page = app.list("patientId=p1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}
