//! `/v1/appointments`: book, read, list, reschedule, cancel, idempotency.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    APPOINTMENT_KEYS, TestApp, book_body, day, is_utc_millis, open_provider, slot, spawn_app,
    starts,
};

fn id_of(a: &Value) -> String {
    a["id"].as_str().expect("an id").to_owned()
}

// ---- booking ----

#[tokio::test]
async fn booking_answers_201_with_location_etag_and_the_exact_body() {
    let app = spawn_app().await;
    app.open_provider("ana").await;

    let r = app
        .post_appointment(&json!({
            "providerId": "ana", "patientId": "12345", "start": slot(3, "14:00"),
            "countryIso": "PE", "notes": "primera consulta"
        }))
        .await;
    let a = r.ok(201);
    let id = id_of(&a);
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/appointments/{id}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert!(r.header("idempotent-replayed").is_none());

    let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = APPOINTMENT_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly these fields: {a}");

    let uuid = uuid::Uuid::parse_str(&id).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 7, "a UUIDv7");
    assert_eq!(a["providerId"], "ana");
    assert_eq!(a["patientId"], "12345");
    assert_eq!(a["countryIso"], "PE");
    assert_eq!(a["start"], slot(3, "14:00"));
    assert_eq!(a["end"], slot(3, "14:30"));
    assert_eq!(a["status"], "pending");
    assert_eq!(a["version"], 1);
    assert_eq!(a["notes"], "primera consulta");
    assert_eq!(a["cancelReason"], Value::Null);
    assert!(is_utc_millis(a["createdAt"].as_str().unwrap()), "{a}");
    assert!(is_utc_millis(a["updatedAt"].as_str().unwrap()), "{a}");

    // Without notes and countryIso: notes is null, the country the provider's.
    let b = app.booked("ana", "67890", &slot(3, "15:00")).await;
    assert_eq!(b["notes"], Value::Null);
    assert_eq!(b["countryIso"], "PE");
}

#[tokio::test]
async fn start_may_carry_any_offset_and_responses_are_utc() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    // 15:30+05:30 is 10:00Z.
    let a = app
        .booked("ana", "p1", &format!("{}T15:30:00+05:30", day(3)))
        .await;
    assert_eq!(a["start"], slot(3, "10:00"));
    assert_eq!(a["end"], slot(3, "10:30"));
    let b = app
        .booked("ana", "p2", &format!("{}T06:00:00-05:00", day(3)))
        .await;
    assert_eq!(b["start"], slot(3, "11:00"));
    let c = app
        .booked("ana", "p3", &format!("{}T12:00:00.000+00:00", day(3)))
        .await;
    assert_eq!(c["start"], slot(3, "12:00"));
    // Rescheduling to the same instant written with another offset is no move.
    let same = app
        .reschedule(
            c["id"].as_str().unwrap(),
            &format!("{}T07:00:00-05:00", day(3)),
            None,
        )
        .await
        .ok(200);
    assert_eq!(same["version"], 1);
}

#[tokio::test]
async fn get_answers_200_with_etag_or_404() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = id_of(&a);

    let r = app.appointment(&id).await;
    let got = r.ok(200);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(got["id"], a["id"]);
    assert_eq!(got["start"], a["start"]);
    assert_eq!(got["version"], 1);
    assert_eq!(got["createdAt"], a["createdAt"]);

    app.appointment(&uuid::Uuid::now_v7().to_string())
        .await
        .problem(404, "appointment_not_found");
    app.appointment("not-a-uuid")
        .await
        .problem(404, "appointment_not_found");
}

// ---- listing ----

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn lists_by_patient_and_by_provider_with_an_inclusive_utc_date_range() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.open_provider("bob").await;
    let a3 = id_of(&app.booked("ana", "p1", &slot(3, "23:30")).await);
    let b4 = id_of(&app.booked("bob", "p1", &slot(4, "00:00")).await);
    let a5 = id_of(&app.booked("ana", "p1", &slot(5, "10:00")).await);
    let other = id_of(&app.booked("ana", "p2", &slot(4, "10:00")).await);

    let all = app.list("patientId=p1").await;
    assert_eq!(ids(&all), vec![a3.clone(), b4.clone(), a5.clone()]);
    assert_eq!(all["nextCursor"], Value::Null);
    assert_eq!(all["items"][0]["patientId"], "p1");
    assert_eq!(all["items"][0]["start"], slot(3, "23:30"));

    let ana = app.list("providerId=ana").await;
    assert_eq!(ids(&ana), vec![a3.clone(), other.clone(), a5.clone()]);

    // UTC dates of `start`, both ends inclusive, each open-ended when absent.
    let d4 = app
        .list(&format!("patientId=p1&from={}&to={}", day(4), day(4)))
        .await;
    assert_eq!(ids(&d4), vec![b4.clone()]);
    let from4 = app.list(&format!("patientId=p1&from={}", day(4))).await;
    assert_eq!(ids(&from4), vec![b4.clone(), a5.clone()]);
    let to4 = app.list(&format!("patientId=p1&to={}", day(4))).await;
    assert_eq!(ids(&to4), vec![a3.clone(), b4.clone()]);
    let span = app
        .list(&format!("providerId=ana&from={}&to={}", day(3), day(4)))
        .await;
    assert_eq!(ids(&span), vec![a3.clone(), other.clone()]);

    // Both owners: their intersection.
    let both = app.list("patientId=p1&providerId=bob").await;
    assert_eq!(ids(&both), vec![b4]);
}

#[tokio::test]
async fn lists_filter_by_status_and_honour_limit() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let first = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    let second = id_of(&app.booked("ana", "p1", &slot(3, "11:00")).await);
    let third = id_of(&app.booked("ana", "p1", &slot(3, "12:00")).await);
    app.cancel(&second, None, None).await.ok(200);

    let cancelled = app.list("patientId=p1&status=cancelled").await;
    assert_eq!(ids(&cancelled), vec![second.clone()]);
    assert_eq!(cancelled["items"][0]["status"], "cancelled");

    // Once the pipeline has confirmed the active ones, they list as confirmed.
    app.wait_for(&first, |a| a["status"] == "confirmed").await;
    app.wait_for(&third, |a| a["status"] == "confirmed").await;
    let confirmed = app.list("patientId=p1&status=confirmed").await;
    assert_eq!(ids(&confirmed), vec![first.clone(), third.clone()]);
    assert_eq!(
        ids(&app.list("patientId=p1&status=pending").await),
        Vec::<String>::new()
    );
    // A fresh booking is pending.
    let fourth = id_of(&app.booked("ana", "p1", &slot(3, "13:00")).await);
    let pending = app.list("patientId=p1&status=pending").await;
    assert!(ids(&pending).iter().all(|id| *id == fourth), "{pending}");

    let one = app.list("providerId=ana&limit=1").await;
    assert_eq!(ids(&one), vec![first]);
    assert!(one["nextCursor"].is_string());

    app.get("/v1/appointments?patientId=p1&status=lost")
        .await
        .invalid("status");
    app.get("/v1/appointments?patientId=p1&limit=0")
        .await
        .invalid("limit");
    app.get("/v1/appointments?patientId=p1&limit=201")
        .await
        .invalid("limit");
    app.get("/v1/appointments?patientId=p1&from=tomorrow")
        .await
        .invalid("from");
    app.get("/v1/appointments?patientId=p1&cursor=nonsense")
        .await
        .invalid("cursor");
}

#[tokio::test]
async fn cursor_pagination_walks_three_pages_ordered_by_start_then_id() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    // Seven appointments; two share a start (the first was cancelled and its
    // slot booked again), so the order falls back to the id there.
    let mut expected = Vec::new();
    for (n, hm) in [(3, "09:00"), (3, "08:00"), (4, "10:00"), (5, "07:30")] {
        expected.push((
            slot(n, hm),
            id_of(
                &app.booked("ana", &format!("p{n}{}", &hm[..2]), &slot(n, hm))
                    .await,
            ),
        ));
    }
    let cancelled = id_of(&app.booked("ana", "px", &slot(6, "12:00")).await);
    app.cancel(&cancelled, None, None).await.ok(200);
    expected.push((slot(6, "12:00"), cancelled));
    expected.push((
        slot(6, "12:00"),
        id_of(&app.booked("ana", "py", &slot(6, "12:00")).await),
    ));
    expected.push((
        slot(4, "09:30"),
        id_of(&app.booked("ana", "pz", &slot(4, "09:30")).await),
    ));
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    let page1 = app.list("providerId=ana&limit=3").await;
    assert_eq!(ids(&page1), expected[0..3]);
    let cursor = page1["nextCursor"].as_str().expect("a cursor").to_owned();
    let page2 = app
        .list(&format!("providerId=ana&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ids(&page2), expected[3..6]);
    let cursor = page2["nextCursor"].as_str().expect("a cursor").to_owned();
    let page3 = app
        .list(&format!("providerId=ana&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ids(&page3), expected[6..7]);
    assert_eq!(page3["nextCursor"], Value::Null);
}

#[tokio::test]
async fn listing_needs_a_patient_or_a_provider() {
    let app = spawn_app().await;
    app.get("/v1/appointments")
        .await
        .problem(422, "validation_failed");
    app.get("/v1/appointments?status=pending")
        .await
        .invalid("patientId");
}

// ---- rescheduling ----

#[tokio::test]
async fn reschedule_moves_bumps_the_version_and_honours_if_match() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = id_of(&a);

    let r = app.reschedule(&id, &slot(3, "11:00"), None).await;
    let moved = r.ok(200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(moved["id"], a["id"]);
    assert_eq!(moved["start"], slot(3, "11:00"));
    assert_eq!(moved["end"], slot(3, "11:30"));
    assert_eq!(moved["status"], "pending");
    assert_eq!(moved["version"], 2);
    assert_eq!(moved["createdAt"], a["createdAt"]);

    // The same start again: 200, nothing changes.
    let same = app.reschedule(&id, &slot(3, "11:00"), None).await.ok(200);
    assert_eq!(same["version"], 2);
    assert_eq!(same["start"], slot(3, "11:00"));
    assert_eq!(same["createdAt"], moved["createdAt"]);

    // The old slot is free again, the new one taken.
    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    assert!(s.contains(&format!("{}T10:00:00+00:00", day(3))));
    assert!(!s.contains(&format!("{}T11:00:00+00:00", day(3))));

    let r = app.reschedule(&id, &slot(3, "12:00"), Some("\"2\"")).await;
    assert_eq!(r.ok(200)["version"], 3);
    assert_eq!(r.header("etag"), Some("\"3\""));

    let stale = app.reschedule(&id, &slot(3, "13:00"), Some("\"2\"")).await;
    stale.problem(412, "version_mismatch");
    let now = app.appointment(&id).await.ok(200);
    assert_eq!(
        now["start"],
        slot(3, "12:00"),
        "a refused move changes nothing"
    );
    assert_eq!(now["version"], 3);
}

#[tokio::test]
async fn the_appointments_own_slot_does_not_block_its_move() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["bufferMinutes"] = json!(30);
    app.create_provider("ana", &body).await;
    let id = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    // [10:30, 11:30) overlaps its own [10:00, 11:00) buffered range.
    let moved = app.reschedule(&id, &slot(3, "10:30"), None).await.ok(200);
    assert_eq!(moved["start"], slot(3, "10:30"));
    assert_eq!(moved["version"], 2);
}

#[tokio::test]
async fn rescheduling_onto_another_appointments_slot_is_slot_taken() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let id = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    app.booked("ana", "p2", &slot(3, "11:00")).await;

    app.reschedule(&id, &slot(3, "11:00"), None)
        .await
        .problem(409, "slot_taken");
    let after = app.appointment(&id).await.ok(200);
    assert_eq!(after["start"], slot(3, "10:00"));
    assert_eq!(after["version"], 1);
}

#[tokio::test]
async fn rescheduling_a_cancelled_appointment_is_409_before_if_match() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let id = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    app.cancel(&id, None, None).await.ok(200);

    app.reschedule(&id, &slot(3, "11:00"), None)
        .await
        .problem(409, "appointment_cancelled");
    // Even with a stale If-Match (the current version is 2).
    app.reschedule(&id, &slot(3, "11:00"), Some("\"1\""))
        .await
        .problem(409, "appointment_cancelled");
    app.reschedule(&uuid::Uuid::now_v7().to_string(), &slot(3, "11:00"), None)
        .await
        .problem(404, "appointment_not_found");
}

// ---- cancelling ----

#[tokio::test]
async fn cancel_answers_cancelled_with_reason_and_again_unchanged_whatever_if_match() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let a = app.booked("ana", "p1", &slot(3, "10:00")).await;
    let id = id_of(&a);

    let r = app
        .cancel(&id, Some(&json!({ "reason": "se mudó" })), Some("\"1\""))
        .await;
    let c = r.ok(200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["version"], 2);
    assert_eq!(c["cancelReason"], "se mudó");
    assert_eq!(c["start"], a["start"]);

    for if_match in [None, Some("\"1\""), Some("\"2\""), Some("\"99\"")] {
        let again = app.cancel(&id, None, if_match).await.ok(200);
        assert_eq!(again, c, "unchanged (If-Match {if_match:?})");
    }
    let again = app
        .cancel(&id, Some(&json!({ "reason": "otra" })), None)
        .await
        .ok(200);
    assert_eq!(again["cancelReason"], "se mudó");
    assert_eq!(again["version"], 2);
    assert_eq!(app.appointment(&id).await.ok(200)["status"], "cancelled");
}

#[tokio::test]
async fn cancel_frees_the_slot_at_once() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let id = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    app.book("ana", "p2", &slot(3, "10:00"))
        .await
        .problem(409, "slot_taken");
    app.cancel(&id, None, None).await.ok(200);

    let s = starts(
        &app.availability("ana", &format!("from={}", day(3)))
            .await
            .ok(200)["days"][0],
    );
    assert_eq!(s.len(), 48);
    let again = app.booked("ana", "p2", &slot(3, "10:00")).await;
    assert_ne!(again["id"], json!(id));
}

#[tokio::test]
async fn cancel_takes_an_empty_body_or_a_json_body() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let one = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    let two = id_of(&app.booked("ana", "p2", &slot(3, "11:00")).await);
    let three = id_of(&app.booked("ana", "p3", &slot(3, "12:00")).await);

    // No body, no content type.
    let c = app.cancel(&one, None, None).await.ok(200);
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["cancelReason"], Value::Null);
    // An empty JSON object.
    let c = app.cancel(&two, Some(&json!({})), None).await.ok(200);
    assert_eq!(c["status"], "cancelled");
    // A reason.
    let c = app
        .cancel(&three, Some(&json!({ "reason": "x" })), None)
        .await
        .ok(200);
    assert_eq!(c["cancelReason"], "x");

    app.cancel(&uuid::Uuid::now_v7().to_string(), None, None)
        .await
        .problem(404, "appointment_not_found");
    app.cancel("nope", None, None)
        .await
        .problem(404, "appointment_not_found");
}

#[tokio::test]
async fn cancel_with_a_stale_if_match_on_an_active_appointment_is_412() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let id = id_of(&app.booked("ana", "p1", &slot(3, "10:00")).await);
    app.reschedule(&id, &slot(3, "11:00"), None).await.ok(200);

    app.cancel(&id, None, Some("\"1\""))
        .await
        .problem(412, "version_mismatch");
    let still = app.appointment(&id).await.ok(200);
    assert_ne!(still["status"], "cancelled");
    assert_eq!(still["version"], 2);

    let c = app.cancel(&id, None, Some("\"2\"")).await.ok(200);
    assert_eq!(c["version"], 3);
}

// ---- idempotency ----

async fn post_with_key(app: &TestApp, key: &str, raw: &str) -> crate::helpers::Reply {
    app.send(
        Method::POST,
        "/v1/appointments",
        &[("idempotency-key", key)],
        Some(("application/json", raw.as_bytes().to_vec())),
    )
    .await
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let start = slot(3, "10:00");
    let first_body =
        format!(r#"{{"providerId":"ana","patientId":"p1","start":"{start}","notes":"hola"}}"#);
    // Same JSON value: keys reordered, whitespace changed.
    let same_value = format!(
        "{{\n  \"notes\" : \"hola\",\n  \"start\": \"{start}\",   \"patientId\":\"p1\", \"providerId\": \"ana\"\n}}"
    );

    let first = post_with_key(&app, "key-1", &first_body).await;
    let a = first.ok(201);
    assert!(first.header("idempotent-replayed").is_none());

    for raw in [&first_body, &same_value] {
        let replay = post_with_key(&app, "key-1", raw).await;
        assert_eq!(replay.ok(201), a);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.header("location"), first.header("location"));
        assert_eq!(replay.header("etag"), Some("\"1\""));
    }
    let page = app.list("patientId=p1").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "one appointment"
    );

    // A different body under the same key.
    let other =
        format!(r#"{{"providerId":"ana","patientId":"p1","start":"{start}","notes":"adiós"}}"#);
    post_with_key(&app, "key-1", &other)
        .await
        .problem(422, "idempotency_key_reused");
    // Another key books anew (and meets the slot taken).
    post_with_key(&app, "key-2", &other)
        .await
        .problem(409, "slot_taken");
}

#[tokio::test]
async fn refusals_are_replayed_too() {
    let app = spawn_app().await;
    app.open_provider("ana").await;

    // slot_not_offered (off the grid)…
    let off = serde_json::to_string(&book_body("ana", "p1", &slot(3, "10:15"))).unwrap();
    let first = post_with_key(&app, "k-off", &off).await;
    let p = first.problem(422, "slot_not_offered");
    assert!(first.header("idempotent-replayed").is_none());
    let replay = post_with_key(&app, "k-off", &off).await;
    assert_eq!(replay.problem(422, "slot_not_offered"), p);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // …and validation_failed.
    let bad = r#"{"providerId":"ana","patientId":"not ok!","start":"soon"}"#;
    let first = post_with_key(&app, "k-bad", bad).await;
    let p = first.invalid("patientId");
    assert!(first.header("idempotent-replayed").is_none());
    let replay = post_with_key(&app, "k-bad", bad).await;
    assert_eq!(replay.invalid("patientId"), p);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    post_with_key(&app, "k-bad", &off)
        .await
        .problem(422, "idempotency_key_reused");

    // A replayed refusal stays a refusal even once the request would succeed.
    let taken = serde_json::to_string(&book_body("ana", "p2", &slot(3, "11:00"))).unwrap();
    let holder = app.booked("ana", "p1", &slot(3, "11:00")).await;
    post_with_key(&app, "k-taken", &taken)
        .await
        .problem(409, "slot_taken");
    app.cancel(holder["id"].as_str().unwrap(), None, None)
        .await
        .ok(200);
    let replay = post_with_key(&app, "k-taken", &taken).await;
    replay.problem(409, "slot_taken");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn an_idempotency_key_must_be_1_to_255_characters() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let body = serde_json::to_string(&book_body("ana", "p1", &slot(3, "10:00"))).unwrap();
    post_with_key(&app, &"k".repeat(256), &body)
        .await
        .invalid("Idempotency-Key");
    post_with_key(&app, "", &body)
        .await
        .invalid("Idempotency-Key");
    post_with_key(&app, &"k".repeat(255), &body).await.ok(201);
}
