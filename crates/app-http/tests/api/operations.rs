//! `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{instant, slot, spawn_app};

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

#[tokio::test]
async fn openapi_enumerates_every_problem_code() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.ok(200);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["Problem"]["properties"]["code"]["$ref"], "#/components/schemas/ProblemCode",
        "{}",
        schemas["Problem"]
    );
    let codes: Vec<&str> = schemas["ProblemCode"]["enum"]
        .as_array()
        .expect("an enum of codes")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "malformed_json",
        "provider_not_found",
        "appointment_not_found",
        "not_found",
        "method_not_allowed",
        "slot_taken",
        "patient_busy",
        "appointment_cancelled",
        "version_mismatch",
        "payload_too_large",
        "unsupported_media_type",
        "validation_failed",
        "invalid_timezone",
        "country_not_served",
        "country_mismatch",
        "slot_not_offered",
        "too_soon",
        "too_far",
        "range_too_large",
        "idempotency_key_reused",
        "rate_limited",
        "unavailable",
        "internal_error",
    ] {
        assert!(codes.contains(&code), "{code} not in {codes:?}");
    }
}

/// What Swagger UI's "Try it out" puts in a body or parameter: the
/// schema's example, else one built from its properties (arrays of one
/// item, `"string"`, `0` and `true` for the rest).
fn sample(doc: &Value, schema: &Value) -> Value {
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap();
        return sample(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(first) = schema["oneOf"]
        .as_array()
        .and_then(|o| o.iter().find(|s| s["type"] != "null"))
    {
        return sample(doc, first);
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds
            .iter()
            .find(|k| *k != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match kind.as_str() {
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), sample(doc, v))).collect())
                .unwrap_or_default(),
        ),
        Some("array") => json!([sample(doc, &schema["items"])]),
        Some("integer" | "number") => json!(0),
        Some("boolean") => json!(true),
        _ => json!("string"),
    }
}

/// The body example of `method path`.
fn body_example(doc: &Value, path: &str, method: &str) -> Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    sample(doc, schema)
}

/// `?name=example&…` of the parameters `in` the query that have examples
/// (Swagger leaves the others empty), and the path with its examples.
fn with_examples(doc: &Value, path: &str, method: &str) -> String {
    let mut out = path.to_owned();
    let mut query = Vec::new();
    for p in doc["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(example)) = (p["name"].as_str(), p["example"].as_str()) else {
            continue;
        };
        match p["in"].as_str() {
            Some("path") => out = out.replace(&format!("{{{name}}}"), example),
            Some("query") => query.push(format!("{name}={example}")),
            _ => {}
        }
    }
    if !query.is_empty() {
        out = format!("{out}?{}", query.join("&"));
    }
    out
}

#[tokio::test]
async fn every_openapi_example_works_as_is() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.ok(200);
    assert_eq!(doc["servers"][0]["url"], "/", "{}", doc["servers"]);

    let put = with_examples(&doc, "/v1/providers/{providerId}", "put");
    let provider = body_example(&doc, "/v1/providers/{providerId}", "put");
    app.json(Method::PUT, &put, &[], &provider).await.ok(201);
    app.get(&with_examples(&doc, "/v1/providers/{providerId}", "get"))
        .await
        .ok(200);

    let book = body_example(&doc, "/v1/appointments", "post");
    let start = instant(book["start"].as_str().expect("a start"));
    let slots = app
        .get(&with_examples(
            &doc,
            "/v1/providers/{providerId}/availability",
            "get",
        ))
        .await
        .ok(200);
    let offered = slots["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["slots"].as_array().unwrap().iter())
        .any(|s| instant(s["start"].as_str().unwrap()) == start);
    assert!(
        offered,
        "{start} is not among the example's availability: {slots}"
    );

    let key = doc["paths"]["/v1/appointments"]["post"]["parameters"][0]["example"]
        .as_str()
        .expect("an Idempotency-Key example");
    let booked = app
        .json(
            Method::POST,
            "/v1/appointments",
            &[("idempotency-key", key)],
            &book,
        )
        .await
        .ok(201);
    let listed = app
        .get(&with_examples(&doc, "/v1/appointments", "get"))
        .await
        .ok(200);
    assert_eq!(listed["items"][0]["id"], booked["id"], "{listed}");

    let id = booked["id"].as_str().unwrap();
    let path = format!("/v1/appointments/{id}");
    let moved = body_example(&doc, "/v1/appointments/{id}", "put");
    let moved = app.json(Method::PUT, &path, &[], &moved).await.ok(200);
    assert_eq!(moved["version"], 2);
    let cancel = body_example(&doc, "/v1/appointments/{id}", "delete");
    let cancelled = app.json(Method::DELETE, &path, &[], &cancel).await.ok(200);
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test]
async fn openapi_gives_formats_and_enumerates_statuses() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.ok(200);
    let schemas = &doc["components"]["schemas"];
    for (schema, field, format) in [
        ("AppointmentDto", "start", "date-time"),
        ("AppointmentDto", "createdAt", "date-time"),
        ("BookBody", "start", "date-time"),
        ("RescheduleBody", "start", "date-time"),
        ("SlotDto", "start", "date-time"),
        ("DayDto", "date", "date"),
        ("DateOverrideDto", "date", "date"),
        ("ProviderDto", "updatedAt", "date-time"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["format"], format,
            "{schema}.{field}: {}",
            schemas[schema]["properties"][field]
        );
    }
    assert_eq!(
        schemas["AppointmentStatus"]["enum"],
        json!(["pending", "confirmed", "cancelled"])
    );
    let cancel = &doc["paths"]["/v1/appointments/{id}"]["delete"]["requestBody"];
    assert_eq!(cancel["required"], false, "{cancel}");
}
