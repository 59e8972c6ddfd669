//! `PUT` and `GET /v1/providers/{providerId}`.

use serde_json::json;

use crate::helpers::{day, is_utc_millis, open_provider, spawn_app, starts};

fn ana() -> serde_json::Value {
    json!({
        "name": "Dra. Ana Torres", "countryIso": "PE", "timezone": "America/Lima",
        "slotMinutes": 30, "bufferMinutes": 0, "minNoticeMinutes": 60, "horizonDays": 90,
        "weeklyHours": {
            "monday":  [ { "start": "09:00", "end": "13:00" }, { "start": "14:00", "end": "18:00" } ],
            "tuesday": [ { "start": "09:00", "end": "13:00" } ] },
        "dateOverrides": [ { "date": "2026-12-25", "hours": [] } ]
    })
}

#[tokio::test]
async fn put_creates_with_201_then_replaces_with_200() {
    let app = spawn_app().await;

    let created = app.put_provider("ana", &ana()).await;
    let p = created.ok(201);
    assert_eq!(created.header("location"), Some("/v1/providers/ana"));
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(p["id"], "ana");
    assert_eq!(p["name"], "Dra. Ana Torres");
    assert_eq!(p["countryIso"], "PE");
    assert_eq!(p["timezone"], "America/Lima");
    assert_eq!(p["slotMinutes"], 30);
    assert_eq!(p["bufferMinutes"], 0);
    assert_eq!(p["minNoticeMinutes"], 60);
    assert_eq!(p["horizonDays"], 90);
    assert_eq!(p["weeklyHours"], ana()["weeklyHours"]);
    assert_eq!(p["dateOverrides"], ana()["dateOverrides"]);
    assert_eq!(p["version"], 1);
    assert!(is_utc_millis(p["createdAt"].as_str().unwrap()), "{p}");
    assert!(is_utc_millis(p["updatedAt"].as_str().unwrap()), "{p}");

    let mut changed = ana();
    changed["name"] = json!("Dra. Ana María Torres");
    changed["slotMinutes"] = json!(20);
    let replaced = app.put_provider("ana", &changed).await;
    let q = replaced.ok(200);
    assert_eq!(replaced.header("etag"), Some("\"2\""));
    assert_eq!(q["version"], 2);
    assert_eq!(q["name"], "Dra. Ana María Torres");
    assert_eq!(q["slotMinutes"], 20);
    assert_eq!(q["createdAt"], p["createdAt"], "createdAt is kept");
    assert!(q["updatedAt"].as_str().unwrap() >= p["updatedAt"].as_str().unwrap());
}

#[tokio::test]
async fn defaults_apply_to_omitted_fields() {
    let app = spawn_app().await;
    let p = app
        .create_provider(
            "min",
            &json!({ "name": "Min", "countryIso": "CL", "timezone": "America/Santiago",
                     "weeklyHours": {} }),
        )
        .await;
    assert_eq!(p["slotMinutes"], 30);
    assert_eq!(p["bufferMinutes"], 0);
    assert_eq!(p["minNoticeMinutes"], 0);
    assert_eq!(p["horizonDays"], 90);
    assert_eq!(p["dateOverrides"], json!([]));
    assert_eq!(p["weeklyHours"], json!({}));
}

#[tokio::test]
async fn sortable_intervals_are_accepted_and_24_00_ends_a_day() {
    let app = spawn_app().await;
    let mut body = open_provider();
    body["weeklyHours"] = json!({
        "monday": [ { "start": "14:00", "end": "18:00" }, { "start": "09:00", "end": "13:00" } ],
        "friday": [ { "start": "20:00", "end": "24:00" } ] });
    body["name"] = json!("ñ".repeat(200));
    let p = app.create_provider("ana", &body).await;
    let monday = p["weeklyHours"]["monday"].as_array().unwrap();
    assert_eq!(monday.len(), 2);
    assert_eq!(p["weeklyHours"]["friday"], body["weeklyHours"]["friday"]);
}

#[tokio::test]
async fn get_returns_the_provider_or_404() {
    let app = spawn_app().await;
    let put = app.create_provider("ana", &ana()).await;

    let got = app.get("/v1/providers/ana").await;
    assert_eq!(got.ok(200), put);

    app.get("/v1/providers/nobody")
        .await
        .problem(404, "provider_not_found");
    // Malformed ids (characters outside [A-Za-z0-9_-], longer than 64) are
    // simply not found.
    app.get("/v1/providers/bad.id")
        .await
        .problem(404, "provider_not_found");
    app.get(&format!("/v1/providers/{}", "a".repeat(65)))
        .await
        .problem(404, "provider_not_found");
}

#[tokio::test]
async fn days_missing_from_weekly_hours_are_closed_and_overrides_apply() {
    let app = spawn_app().await;
    app.create_provider(
        "shut",
        &json!({ "name": "Shut", "countryIso": "PE", "timezone": "UTC", "weeklyHours": {} }),
    )
    .await;
    let days = app
        .availability("shut", &format!("from={}&to={}", day(3), day(9)))
        .await
        .ok(200)["days"]
        .clone();
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert!(days.iter().all(|d| starts(d).is_empty()), "{days:?}");

    // An override closes one date of an otherwise open week.
    let mut body = open_provider();
    body["dateOverrides"] = json!([{ "date": day(4).to_string(), "hours": [] },
                                   { "date": day(5).to_string(), "hours": [{ "start": "10:00", "end": "11:00" }] }]);
    app.create_provider("open", &body).await;
    let a = app
        .availability("open", &format!("from={}&to={}", day(3), day(5)))
        .await
        .ok(200);
    assert_eq!(starts(&a["days"][0]).len(), 48);
    assert!(starts(&a["days"][1]).is_empty());
    assert_eq!(
        starts(&a["days"][2]),
        vec![
            format!("{}T10:00:00+00:00", day(5)),
            format!("{}T10:30:00+00:00", day(5))
        ]
    );
}
