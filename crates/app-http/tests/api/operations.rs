//! `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`.

use serde_json::json;

use crate::helpers::{slot, spawn_app};

#[tokio::test]
async fn health_is_ok() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.ok(200), json!({ "status": "ok" }));
}

#[tokio::test]
async fn ready_answers_200_when_every_dependency_does() {
    let app = spawn_app().await;
    let r = app.get("/ready").await;
    let body = r.ok(200);
    assert!(body.is_object(), "{body}");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    app.booked("ana", "p1", &slot(3, "10:00")).await;
    app.book("ana", "p2", &slot(3, "10:00")).await;
    app.get("/v1/providers/ana").await;

    let r = app.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type().starts_with("text/plain"),
        "{}",
        r.content_type()
    );
    assert!(r.header("x-request-id").is_some());
    for name in [
        "cita_http_requests_total",
        "cita_http_request_duration_seconds_bucket",
        "cita_bookings_total",
        "cita_outbox_backlog",
        "cita_outbox_oldest_age_seconds",
    ] {
        assert!(r.text.contains(name), "no {name} in:\n{}", r.text);
    }
    // Requests by route and status, bookings by outcome.
    assert!(
        r.text
            .lines()
            .any(|l| l.starts_with("cita_http_requests_total")
                && l.contains("/v1/providers/{providerId}")
                && l.contains("status=\"200\"")),
        "{}",
        r.text
    );
    assert!(
        r.text
            .lines()
            .any(|l| l.starts_with("cita_bookings_total") && l.contains("outcome=\"booked\"")),
        "{}",
        r.text
    );
    assert!(
        r.text
            .lines()
            .any(|l| l.starts_with("cita_bookings_total") && l.contains("outcome=\"slot_taken\"")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn openapi_describes_every_path_of_the_contract() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.ok(200);
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/v1/providers/{providerId}", &["put", "get"][..]),
        ("/v1/providers/{providerId}/availability", &["get"][..]),
        ("/v1/appointments", &["post", "get"][..]),
        ("/v1/appointments/{id}", &["get", "put", "delete"][..]),
        ("/health", &["get"][..]),
        ("/ready", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path}");
        }
    }
    assert!(
        doc["components"]["schemas"]["Problem"].is_object(),
        "no Problem schema"
    );
}

#[tokio::test]
async fn docs_serve_swagger_ui() {
    let app = spawn_app().await;
    let r = app.get("/docs/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type().starts_with("text/html"),
        "{}",
        r.content_type()
    );
    assert!(r.text.to_lowercase().contains("swagger"), "{}", r.text);

    // `/docs` itself: directly or through a redirect to `/docs/`.
    let r = app.get("/docs").await;
    if r.status.is_redirection() {
        let to = r.header("location").expect("a location");
        assert!(to.ends_with("/docs/"), "{to}");
    } else {
        assert_eq!(r.status, 200);
        assert!(r.content_type().starts_with("text/html"));
    }
    let followed = reqwest::get(app.url("/docs")).await.expect("an answer");
    assert_eq!(followed.status(), 200);
    let html = followed.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"));

    // The UI's assets come from the binary, not a CDN.
    assert!(
        !html.contains("unpkg.com") && !html.contains("cdn.jsdelivr"),
        "{html}"
    );
}
