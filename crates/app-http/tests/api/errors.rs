//! Every problem code of API.md, the problem document's shape, the request
//! id, and the order in which booking errors are checked.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, book_body, day, fields, open_provider, slot, spawn_app, spawn_app_with,
};

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: &str,
    body: &str,
) -> crate::helpers::Reply {
    app.send(
        method,
        path,
        &[],
        Some((content_type, body.as_bytes().to_vec())),
    )
    .await
}

async fn appointment_id(app: &TestApp) -> String {
    app.open_provider("ana").await;
    app.booked("ana", "p1", &slot(3, "10:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---- 400, 404, 405, 413, 415 ----

#[tokio::test]
async fn malformed_json_for_empty_invalid_and_non_object_bodies() {
    let app = spawn_app().await;
    let id = appointment_id(&app).await;
    let targets = [
        (Method::POST, "/v1/appointments".to_owned()),
        (Method::PUT, "/v1/providers/ana".to_owned()),
        (Method::PUT, format!("/v1/appointments/{id}")),
    ];
    for (method, path) in &targets {
        for body in [
            "",
            "   ",
            "{\"providerId\":",
            "not json",
            "[1, 2]",
            "[]",
            "\"text\"",
            "42",
            "null",
        ] {
            let r = raw(&app, method.clone(), path, "application/json", body).await;
            r.problem(400, "malformed_json");
        }
    }
    // DELETE's body is optional, but one that is sent must be an object.
    let path = format!("/v1/appointments/{id}");
    raw(&app, Method::DELETE, &path, "application/json", "[]")
        .await
        .problem(400, "malformed_json");
    raw(&app, Method::DELETE, &path, "application/json", "{oops")
        .await
        .problem(400, "malformed_json");
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let app = spawn_app().await;
    app.get("/nowhere").await.problem(404, "not_found");
    app.get("/v1/patients").await.problem(404, "not_found");
    app.get("/v1/providers").await.problem(404, "not_found");
    app.json(Method::POST, "/v1/nothing", &[], &json!({}))
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn unsupported_methods_are_405() {
    let app = spawn_app().await;
    let id = appointment_id(&app).await;
    let r = app
        .json(
            Method::PATCH,
            &format!("/v1/appointments/{id}"),
            &[],
            &json!({ "start": slot(3, "11:00") }),
        )
        .await;
    r.problem(405, "method_not_allowed");
    let allow = r.header("allow").expect("an allow header").to_owned();
    for m in ["GET", "PUT", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
    app.send(Method::DELETE, "/v1/appointments", &[], None)
        .await
        .problem(405, "method_not_allowed");
    app.send(Method::POST, "/v1/providers/ana", &[], None)
        .await
        .problem(405, "method_not_allowed");
    app.send(Method::POST, "/health", &[], None)
        .await
        .problem(405, "method_not_allowed");
}

#[tokio::test]
async fn bodies_over_64_kib_are_payload_too_large() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let mut body = book_body("ana", "p1", &slot(3, "10:00"));
    body["notes"] = json!("x".repeat(65 * 1024));
    app.post_appointment(&body)
        .await
        .problem(413, "payload_too_large");
    let mut provider = open_provider();
    provider["name"] = json!("n".repeat(70 * 1024));
    app.put_provider("big", &provider)
        .await
        .problem(413, "payload_too_large");
    // Just under the limit is read (and then judged on its fields).
    let mut body = book_body("ana", "p1", &slot(3, "10:00"));
    body["notes"] = json!("x".repeat(60 * 1024));
    app.post_appointment(&body).await.invalid("notes");
}

#[tokio::test]
async fn non_json_bodies_are_unsupported_media_type() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let body = serde_json::to_string(&book_body("ana", "p1", &slot(3, "10:00"))).unwrap();
    raw(&app, Method::POST, "/v1/appointments", "text/plain", &body)
        .await
        .problem(415, "unsupported_media_type");
    raw(
        &app,
        Method::PUT,
        "/v1/providers/x",
        "application/x-www-form-urlencoded",
        "a=b",
    )
    .await
    .problem(415, "unsupported_media_type");
    app.send(
        Method::POST,
        "/v1/appointments",
        &[],
        Some(("", body.clone().into_bytes())),
    )
    .await
    .problem(415, "unsupported_media_type");
    // application/json with parameters is JSON.
    raw(
        &app,
        Method::POST,
        "/v1/appointments",
        "application/json; charset=utf-8",
        &body,
    )
    .await
    .ok(201);
}

// ---- 422 validation_failed ----

#[tokio::test]
async fn validation_failures_name_each_field() {
    let app = spawn_app().await;
    app.open_provider("ana").await;

    let p = app
        .post_appointment(
            &json!({ "providerId": "ana", "patientId": "not ok!", "start": "tomorrow" }),
        )
        .await
        .invalid("patientId");
    let f = fields(&p);
    assert!(f.contains(&"start".to_owned()), "{p}");
    for e in p["errors"].as_array().unwrap() {
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{p}");
    }

    app.post_appointment(&json!({ "providerId": "ana", "patientId": "p1" }))
        .await
        .invalid("start");
    app.post_appointment(&json!({ "providerId": "ana", "patientId": "p1", "start": 5 }))
        .await
        .invalid("start");
    app.post_appointment(
        &json!({ "providerId": "ana", "patientId": "p".repeat(65), "start": slot(3, "10:00") }),
    )
    .await
    .invalid("patientId");
    // No offset: not an instant.
    app.book("ana", "p1", &format!("{}T10:00:00", day(3)))
        .await
        .invalid("start");
    let mut long = book_body("ana", "p1", &slot(3, "10:00"));
    long["notes"] = json!("n".repeat(1001));
    app.post_appointment(&long).await.invalid("notes");
    // Characters, not bytes: 1000 two-byte characters are fine.
    let mut ok = book_body("ana", "p1", &slot(3, "10:00"));
    ok["notes"] = json!("ñ".repeat(1000));
    app.post_appointment(&ok).await.ok(201);

    // Unknown fields are refused by name.
    let mut unknown = book_body("ana", "p2", &slot(3, "11:00"));
    unknown["colour"] = json!("blue");
    let p = app.post_appointment(&unknown).await.invalid("colour");
    assert_eq!(fields(&p), vec!["colour"]);
    let id = app.booked("ana", "p2", &slot(3, "11:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.json(
        Method::PUT,
        &format!("/v1/appointments/{id}"),
        &[],
        &json!({ "start": slot(3, "12:00"), "when": "now" }),
    )
    .await
    .invalid("when");
    app.json(
        Method::PUT,
        &format!("/v1/appointments/{id}"),
        &[],
        &json!({}),
    )
    .await
    .invalid("start");
    app.cancel(&id, Some(&json!({ "why": "x" })), None)
        .await
        .invalid("why");
    app.cancel(&id, Some(&json!({ "reason": "r".repeat(501) })), None)
        .await
        .invalid("reason");
    app.cancel(&id, Some(&json!({ "reason": 5 })), None)
        .await
        .invalid("reason");
    assert_eq!(app.appointment(&id).await.ok(200)["version"], 1);
}

#[tokio::test]
async fn provider_validation_names_nested_fields() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["weeklyHours"] = json!({ "monday": [
        { "start": "09:00", "end": "13:00" }, { "start": "12:00", "end": "14:00" } ] });
    app.put_provider("ana", &body)
        .await
        .invalid("weeklyHours.monday[1]");

    let mut body = open_provider();
    body["weeklyHours"] = json!({ "monday": [
        { "start": "09:00", "end": "13:00" }, { "start": "25:00", "end": "26:00" } ] });
    let p = app
        .put_provider("ana", &body)
        .await
        .problem(422, "validation_failed");
    assert!(
        fields(&p)
            .iter()
            .all(|f| f.starts_with("weeklyHours.monday[1]"))
            && !fields(&p).is_empty(),
        "{p}"
    );

    let mut body = open_provider();
    body["weeklyHours"] = json!({ "monday": [{ "start": "24:00", "end": "24:00" }] });
    app.put_provider("ana", &body)
        .await
        .problem(422, "validation_failed");

    let mut body = open_provider();
    body["weeklyHours"] = json!({ "funday": [] });
    app.put_provider("ana", &body)
        .await
        .invalid("weeklyHours.funday");

    let mut body = open_provider();
    body["colour"] = json!("blue");
    let p = app.put_provider("ana", &body).await.invalid("colour");
    assert_eq!(fields(&p), vec!["colour"]);

    let mut body = open_provider();
    body.as_object_mut().unwrap().remove("weeklyHours");
    app.put_provider("ana", &body).await.invalid("weeklyHours");

    for (field, value) in [
        ("slotMinutes", json!(4)),
        ("slotMinutes", json!(481)),
        ("bufferMinutes", json!(241)),
        ("minNoticeMinutes", json!(525_601)),
        ("horizonDays", json!(0)),
        ("horizonDays", json!(366)),
        ("name", json!("")),
        ("name", json!("n".repeat(201))),
        ("countryIso", json!("peru")),
    ] {
        let mut body = open_provider();
        body[field] = value;
        app.put_provider("ana", &body).await.invalid(field);
    }

    let mut body = open_provider();
    body["dateOverrides"] = json!([{ "date": "25/12/2026", "hours": [] }]);
    app.put_provider("ana", &body)
        .await
        .invalid("dateOverrides[0].date");

    // The id in the path too.
    app.put_provider("bad.id", &open_provider())
        .await
        .invalid("providerId");
    app.put_provider(&"a".repeat(65), &open_provider())
        .await
        .invalid("providerId");
    // Nothing was created by any of these.
    app.get("/v1/providers/ana")
        .await
        .problem(404, "provider_not_found");
}

#[tokio::test]
async fn availability_parameters_are_validated() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.availability("ana", "").await.invalid("from");
    app.availability("ana", "from=2026-13-01")
        .await
        .invalid("from");
    app.availability("ana", &format!("from={}&to={}", day(3), day(2)))
        .await
        .invalid("to");
    app.availability("ana", &format!("from={}&colour=blue", day(3)))
        .await
        .invalid("colour");
    app.availability("nobody", &format!("from={}", day(3)))
        .await
        .problem(404, "provider_not_found");
    app.availability("bad.id", &format!("from={}", day(3)))
        .await
        .problem(404, "provider_not_found");
}

// ---- 422 with codes of their own ----

#[tokio::test]
async fn invalid_timezone_for_providers_and_availability() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["timezone"] = json!("Mars/Olympus_Mons");
    let p = app
        .put_provider("ana", &body)
        .await
        .problem(422, "invalid_timezone");
    assert!(fields(&p).contains(&"timezone".to_owned()), "{p}");

    app.open_provider("ana").await;
    let p = app
        .availability("ana", &format!("from={}&timezone=Nowhere/Special", day(3)))
        .await
        .problem(422, "invalid_timezone");
    assert!(fields(&p).contains(&"timezone".to_owned()), "{p}");
}

#[tokio::test]
async fn a_provider_in_an_unserved_country_is_refused() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["countryIso"] = json!("AR");
    body["timezone"] = json!("America/Argentina/Buenos_Aires");
    app.put_provider("ana", &body)
        .await
        .problem(422, "country_not_served");
    app.get("/v1/providers/ana")
        .await
        .problem(404, "provider_not_found");

    // A deployment that serves AR accepts it.
    let ar = spawn_app_with(|c| {
        c.countries = vec![cita_core::routing::CountryCode::parse("AR").unwrap()];
    })
    .await;
    ar.put_provider("ana", &body).await.ok(201);
}

#[tokio::test]
async fn booking_rule_codes() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let mut hours = open_provider();
    hours["weeklyHours"] = json!({
        "monday": [{ "start": "09:00", "end": "13:00" }], "tuesday": [{ "start": "09:00", "end": "13:00" }],
        "wednesday": [{ "start": "09:00", "end": "13:00" }], "thursday": [{ "start": "09:00", "end": "13:00" }],
        "friday": [{ "start": "09:00", "end": "13:00" }], "saturday": [{ "start": "09:00", "end": "13:00" }],
        "sunday": [{ "start": "09:00", "end": "13:00" }] });
    app.create_provider("morning", &hours).await;
    let mut notice = open_provider();
    notice["minNoticeMinutes"] = json!(3 * 24 * 60);
    app.create_provider("notice", &notice).await;

    app.book("nobody", "p1", &slot(3, "10:00"))
        .await
        .problem(404, "provider_not_found");

    let mut body = book_body("ana", "p1", &slot(3, "10:00"));
    body["countryIso"] = json!("CL");
    app.post_appointment(&body)
        .await
        .problem(422, "country_mismatch");
    body["countryIso"] = json!("PE");
    app.post_appointment(&body).await.ok(201);

    // Off the grid, and outside the hours.
    app.book("ana", "p2", &slot(3, "10:15"))
        .await
        .problem(422, "slot_not_offered");
    app.book("ana", "p2", &format!("{}T10:00:30Z", day(3)))
        .await
        .problem(422, "slot_not_offered");
    app.book("morning", "p2", &slot(3, "14:00"))
        .await
        .problem(422, "slot_not_offered");
    app.book("morning", "p2", &slot(3, "13:00"))
        .await
        .problem(422, "slot_not_offered");
    app.booked("morning", "p2", &slot(3, "12:30")).await;

    // Notice and horizon.
    app.book("ana", "p3", &slot(-1, "10:00"))
        .await
        .problem(422, "too_soon");
    app.book("notice", "p3", &slot(1, "10:00"))
        .await
        .problem(422, "too_soon");
    app.booked("notice", "p3", &slot(5, "10:00")).await;
    app.book("ana", "p3", &slot(95, "10:00"))
        .await
        .problem(422, "too_far");

    // Taken and busy.
    app.book("ana", "p4", &slot(3, "10:00"))
        .await
        .problem(409, "slot_taken");
    app.book("morning", "p1", &slot(3, "10:00"))
        .await
        .problem(409, "patient_busy");

    // Rescheduling meets the same rules.
    let id = app.booked("ana", "p5", &slot(4, "10:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.reschedule(&id, &slot(4, "10:10"), None)
        .await
        .problem(422, "slot_not_offered");
    app.reschedule(&id, &slot(-1, "10:00"), None)
        .await
        .problem(422, "too_soon");
    app.reschedule(&id, &slot(95, "10:00"), None)
        .await
        .problem(422, "too_far");
    app.reschedule(&id, &slot(3, "10:00"), None)
        .await
        .problem(409, "slot_taken");
    app.booked("morning", "p5", &slot(4, "11:00")).await;
    app.reschedule(&id, &slot(4, "11:00"), None)
        .await
        .problem(409, "patient_busy");
    app.reschedule(&id, "not an instant", None)
        .await
        .invalid("start");
    assert_eq!(app.appointment(&id).await.ok(200)["version"], 1);
}

#[tokio::test]
async fn availability_of_more_than_31_dates_is_range_too_large() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.availability("ana", &format!("from={}&to={}", day(1), day(32)))
        .await
        .problem(422, "range_too_large");
    app.availability("ana", &format!("from={}&to={}", day(1), day(31)))
        .await
        .ok(200);
}

#[tokio::test]
async fn too_many_requests_are_rate_limited_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_second = 5;
        c.rate_limit_burst = 5;
    })
    .await;
    let mut limited = None;
    let mut others = Vec::new();
    for _ in 0..20 {
        let r = app.get("/v1/providers/ana").await;
        if r.status == 429 {
            limited.get_or_insert(r);
        } else {
            others.push(r.status.as_u16());
        }
    }
    let r = limited.expect("at least one 429");
    r.problem(429, "rate_limited");
    let secs: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("whole seconds");
    assert!(secs >= 1, "retry-after {secs}");
    assert!(others.iter().all(|s| *s == 404), "{others:?}");
    // Operations endpoints are not limited.
    app.get("/health").await.ok(200);
}

// ---- the order of booking errors ----

#[tokio::test]
async fn booking_errors_are_checked_in_the_documented_order() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.open_provider("bob").await;
    app.open_provider("cid").await;

    // validation_failed before provider_not_found.
    app.book("nobody", "not ok!", &slot(3, "10:00"))
        .await
        .invalid("patientId");
    // provider_not_found before country_mismatch / slot_not_offered.
    let mut body = book_body("nobody", "p1", &slot(3, "10:15"));
    body["countryIso"] = json!("CL");
    app.post_appointment(&body)
        .await
        .problem(404, "provider_not_found");
    // country_mismatch before slot_not_offered and too_soon.
    let mut body = book_body("ana", "p1", &slot(-1, "10:15"));
    body["countryIso"] = json!("CL");
    app.post_appointment(&body)
        .await
        .problem(422, "country_mismatch");
    // slot_not_offered before too_soon and too_far.
    app.book("ana", "p1", &slot(-1, "10:15"))
        .await
        .problem(422, "slot_not_offered");
    app.book("ana", "p1", &slot(95, "10:15"))
        .await
        .problem(422, "slot_not_offered");

    // slot_taken before patient_busy: p1 holds ana at 10:00, p2 holds bob at
    // 10:00; p2 asking for ana at 10:00 is both.
    app.booked("ana", "p1", &slot(3, "10:00")).await;
    app.booked("bob", "p2", &slot(3, "10:00")).await;
    app.book("ana", "p2", &slot(3, "10:00"))
        .await
        .problem(409, "slot_taken");
    app.book("cid", "p2", &slot(3, "10:00"))
        .await
        .problem(409, "patient_busy");

    // too_soon and too_far before slot_taken: the schedule changed after
    // the slot was booked.
    let mut stricter = open_provider();
    stricter["minNoticeMinutes"] = json!(10 * 24 * 60);
    app.put_provider("ana", &stricter).await.ok(200);
    app.book("ana", "p3", &slot(3, "10:00"))
        .await
        .problem(422, "too_soon");
    let mut nearer = open_provider();
    nearer["horizonDays"] = json!(1);
    app.put_provider("ana", &nearer).await.ok(200);
    app.book("ana", "p3", &slot(3, "10:00"))
        .await
        .problem(422, "too_far");
}

// ---- shape and request ids ----

#[tokio::test]
async fn every_response_carries_a_request_id_kept_from_the_client() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let id = app.booked("ana", "p1", &slot(3, "10:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = [
        "/health".to_owned(),
        "/ready".to_owned(),
        "/metrics".to_owned(),
        "/openapi.json".to_owned(),
        "/docs/".to_owned(),
        "/v1/providers/ana".to_owned(),
        "/v1/providers/nobody".to_owned(),
        format!("/v1/appointments/{id}"),
        "/nowhere".to_owned(),
    ];
    let mut seen = Vec::new();
    for path in &paths {
        let r = app.get(path).await;
        let generated = r
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id on {path}"))
            .to_owned();
        assert!(!generated.is_empty());
        assert!(!seen.contains(&generated), "ids are unique");
        seen.push(generated);

        let r = app
            .send(Method::GET, path, &[("x-request-id", "trace-42.abc")], None)
            .await;
        assert_eq!(r.header("x-request-id"), Some("trace-42.abc"), "{path}");
    }
    // On errors raised before any handler, and on 405s, too.
    let r = app
        .send(
            Method::PATCH,
            "/v1/providers/ana",
            &[("x-request-id", "mine")],
            None,
        )
        .await;
    r.problem(405, "method_not_allowed");
    assert_eq!(r.header("x-request-id"), Some("mine"));
    let r = app
        .send(
            Method::POST,
            "/v1/appointments",
            &[("x-request-id", "mine-2")],
            Some(("application/json", b"[]".to_vec())),
        )
        .await;
    r.problem(400, "malformed_json");
    assert_eq!(r.header("x-request-id"), Some("mine-2"));
}

#[tokio::test]
async fn problems_have_the_rfc_9457_shape() {
    let app = spawn_app().await;
    let p: Value = app
        .get("/v1/providers/nobody")
        .await
        .problem(404, "provider_not_found");
    assert_eq!(p["title"], "Provider not found");
    assert!(
        p.get("errors").is_none(),
        "errors only for field problems: {p}"
    );
    let p = app
        .post_appointment(&json!({ "providerId": "ana" }))
        .await
        .problem(422, "validation_failed");
    let errors = p["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    for e in errors {
        assert!(e["field"].is_string() && e["message"].is_string(), "{p}");
    }
    let text = app.get("/v1/providers/nobody").await.text;
    for leak in ["sqlx", "panicked", "cita_core", "src/"] {
        assert!(!text.contains(leak), "{text}");
    }
}
