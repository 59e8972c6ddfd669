//! Inputs at the edges, each answered as a problem of the contract: dates
//! at the end of the calendar, offsets RFC 3339 does not have, path
//! segments that do not decode, oversized request heads, and control
//! characters in free text.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{book_body, day, fields, open_provider, slot, spawn_app};

#[tokio::test]
async fn dates_past_the_end_of_the_calendar_are_invalid_not_500() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    for from in ["9999-12-31", "9999-12-29", "9999-01-01"] {
        app.availability("ana", &format!("from={from}"))
            .await
            .invalid("from");
        app.get(&format!("/v1/appointments?patientId=p1&from={from}"))
            .await
            .invalid("from");
        app.get(&format!("/v1/appointments?patientId=p1&to={from}"))
            .await
            .invalid("to");
    }
    app.availability("ana", "from=9998-12-30&to=9999-01-01")
        .await
        .invalid("to");
    let mut body = open_provider();
    body["dateOverrides"] = json!([{ "date": "9999-12-31", "hours": [] }]);
    app.put_provider("ana", &body)
        .await
        .invalid("dateOverrides[0].date");

    // The last date is answered: no slots so far ahead, but the day is there.
    let r = app
        .availability("ana", "from=9998-12-30&to=9998-12-31")
        .await
        .ok(200);
    assert_eq!(r["days"].as_array().unwrap().len(), 2, "{r}");
    for zone in ["Pacific/Kiritimati", "Etc/GMT%2B12", "America/Lima"] {
        app.availability("ana", &format!("from=9998-12-31&timezone={zone}"))
            .await
            .ok(200);
    }
    app.get("/v1/appointments?patientId=p1&from=9998-12-31&to=9998-12-31")
        .await
        .ok(200);
}

#[tokio::test]
async fn offsets_beyond_23_59_are_invalid() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let at = |offset: &str| format!("{}T10:00:00{offset}", day(3));
    for offset in ["+25:00", "-25:00", "+24:00", "+99:59", "+05:30:15"] {
        app.book("ana", "p1", &at(offset)).await.invalid("start");
    }
    let id = app.booked("ana", "p1", &slot(3, "10:00")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.reschedule(&id, &at("+25:00"), None)
        .await
        .invalid("start");
    assert_eq!(app.appointment(&id).await.ok(200)["version"], 1);
    // The widest real offsets are fine: 10:00+14:00 is 20:00Z the day before.
    let kiritimati = format!("{}T10:00:00+14:00", day(4));
    let booked = app.booked("ana", "p2", &kiritimati).await;
    assert_eq!(booked["start"], format!("{}T20:00:00Z", day(3)));
    app.booked("ana", "p3", &format!("{}T10:00:00-12:00", day(3)))
        .await;
}

#[tokio::test]
async fn path_segments_that_do_not_decode_are_not_found_problems() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.appointment("%FF")
        .await
        .problem(404, "appointment_not_found");
    app.appointment("%C3%28")
        .await
        .problem(404, "appointment_not_found");
    app.reschedule("%FF", &slot(3, "10:00"), None)
        .await
        .problem(404, "appointment_not_found");
    app.cancel("%FF", None, None)
        .await
        .problem(404, "appointment_not_found");
    app.get("/v1/providers/%FF")
        .await
        .problem(404, "provider_not_found");
    app.availability("%FF", &format!("from={}", day(3)))
        .await
        .problem(404, "provider_not_found");
    // Creating one is a validation failure of the id, as for any bad id.
    app.put_provider("%FF", &open_provider())
        .await
        .invalid("providerId");
}

#[tokio::test]
async fn oversized_request_heads_are_problems() {
    let app = spawn_app().await;
    let long = format!("/v1/providers/{}", "a".repeat(9 * 1024));
    app.get(&long).await.problem(414, "uri_too_long");
    let long_query = format!("/v1/appointments?patientId=p1&cursor={}", "c".repeat(9000));
    app.get(&long_query).await.problem(414, "uri_too_long");

    let big = "v".repeat(33 * 1024);
    app.send(Method::GET, "/health", &[("x-big", big.as_str())], None)
        .await
        .problem(431, "headers_too_large");
    let names: Vec<String> = (0..120).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    app.send(Method::GET, "/health", &many, None)
        .await
        .problem(431, "headers_too_large");

    // Under the limits, answered as usual.
    let fine = format!("/v1/providers/{}", "a".repeat(64));
    app.get(&fine).await.problem(404, "provider_not_found");
    let some = "v".repeat(16 * 1024);
    app.send(Method::GET, "/health", &[("x-big", some.as_str())], None)
        .await
        .ok(200);
}

#[tokio::test]
async fn control_characters_are_refused_in_names_notes_and_reasons() {
    let app = spawn_app().await;
    for bad in [
        "Dra. \u{1b}[31mAna",
        "Ana\u{7}",
        "Ana\nTorres",
        "Ana\u{9b}1m",
    ] {
        let mut body = open_provider();
        body["name"] = json!(bad);
        app.put_provider("ana", &body).await.invalid("name");
    }
    app.get("/v1/providers/ana")
        .await
        .problem(404, "provider_not_found");
    app.open_provider("ana").await;

    for bad in ["\u{1b}[2Jhola", "ding\u{7}", "nul\u{0}", "c1\u{85}"] {
        let mut body = book_body("ana", "p1", &slot(3, "10:00"));
        body["notes"] = json!(bad);
        app.post_appointment(&body).await.invalid("notes");
    }
    // Line breaks and tabs are text in notes.
    let mut body = book_body("ana", "p1", &slot(3, "10:00"));
    body["notes"] = json!("primera consulta\n\tsegunda línea\r\n");
    let booked = app.post_appointment(&body).await.ok(201);
    assert_eq!(booked["notes"], "primera consulta\n\tsegunda línea\r\n");
    let id = booked["id"].as_str().unwrap().to_owned();

    app.cancel(&id, Some(&json!({ "reason": "\u{1b}]0;pwned\u{7}" })), None)
        .await
        .invalid("reason");
    // Nothing changed (the pipeline may have confirmed it meanwhile).
    let unchanged = app.appointment(&id).await.ok(200);
    assert_eq!(unchanged["version"], 1, "{unchanged}");
    assert_ne!(unchanged["status"], "cancelled", "{unchanged}");
    let cancelled = app
        .cancel(
            &id,
            Some(&json!({ "reason": "de viaje\nvuelvo en enero" })),
            None,
        )
        .await
        .ok(200);
    assert_eq!(cancelled["cancelReason"], "de viaje\nvuelvo en enero");
}

#[tokio::test]
async fn every_problem_of_a_query_is_reported_at_once() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let p = app
        .availability("ana", "from=someday&to=2026-02-30&colour=blue&size=xl")
        .await
        .problem(422, "validation_failed");
    let mut f = fields(&p);
    f.sort();
    assert_eq!(f, ["colour", "from", "size", "to"], "{p}");
    let p = app
        .get("/v1/appointments?limit=0&status=lost&cursor=x&from=2026-1-1&page=2")
        .await
        .problem(422, "validation_failed");
    let mut f = fields(&p);
    f.sort();
    assert_eq!(
        f,
        ["cursor", "from", "limit", "page", "patientId", "status"],
        "{p}"
    );
    // A parameter given twice is refused by name instead of one silently winning.
    let p = app
        .availability("ana", &format!("from={}&from={}", day(3), day(4)))
        .await
        .invalid("from");
    assert_eq!(fields(&p), ["from"]);
    app.get("/v1/appointments?patientId=p1&patientId=p2")
        .await
        .invalid("patientId");
}
