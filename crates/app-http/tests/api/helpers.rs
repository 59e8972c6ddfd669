//! Spawning the application and talking to it.
//!
//! Every test gets its own app on `127.0.0.1:0` with a fresh data directory
//! (kept alive by [`TestApp`]) and rate limiting off. Slot instants are
//! picked relative to today's UTC date ([`day`], [`slot`]) so no test depends
//! on the calendar date it runs on.

#![allow(dead_code)] // each test module uses its own subset

use std::time::Duration;

use cita_http::Application;
use cita_http::config::Config;
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The keys of an appointment as the API returns it, exactly.
pub const APPOINTMENT_KEYS: [&str; 12] = [
    "id",
    "providerId",
    "patientId",
    "countryIso",
    "start",
    "end",
    "status",
    "version",
    "notes",
    "cancelReason",
    "createdAt",
    "updatedAt",
];

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    /// A client that does not follow redirects unless asked.
    pub client: Client,
    data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// An app with rate limiting off.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app whose configuration the test adjusts first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    start(dir, configure).await
}

async fn start(data_dir: TempDir, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: data_dir.path().to_path_buf(),
        rate_limit_per_second: 0,
        rate_limit_burst: 0,
        shutdown_grace_seconds: 2,
        ..Config::default()
    };
    configure(&mut config);
    let app = Application::build(config)
        .await
        .expect("the application builds");
    let address = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client");
    TestApp {
        address,
        client,
        data_dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// An answer, read in full.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable body");
        Self {
            status,
            headers,
            text,
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The content type (empty when absent).
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Asserts the status, `application/json` and a request id; returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert!(
            self.content_type().starts_with("application/json"),
            "content-type {:?}",
            self.content_type()
        );
        assert!(self.header("x-request-id").is_some(), "no x-request-id");
        self.json()
    }

    /// Asserts an RFC 9457 problem with this status and code; returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert!(self.header("x-request-id").is_some(), "no x-request-id");
        let p = self.json();
        assert_eq!(p["code"], code, "problem: {p}");
        assert_eq!(p["type"], format!("https://cita.dev/problems/{code}"));
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "title: {p}"
        );
        assert_eq!(p["status"], status);
        assert!(
            p["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "detail: {p}"
        );
        p
    }

    /// Asserts `validation_failed` naming `field` among its `errors`.
    #[track_caller]
    pub fn invalid(&self, field: &str) -> Value {
        let p = self.problem(422, "validation_failed");
        assert!(
            fields(&p).iter().any(|f| f == field),
            "no error for {field:?}: {p}"
        );
        p
    }
}

/// The `errors[].field` of a problem.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl TestApp {
    /// The absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request with optional headers and a raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        Reply::read(request.send().await.expect("the request is answered")).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// A JSON request.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serializable");
        self.send(method, path, headers, Some(("application/json", bytes)))
            .await
    }

    /// `PUT /v1/providers/{id}`.
    pub async fn put_provider(&self, id: &str, body: &Value) -> Reply {
        self.json(Method::PUT, &format!("/v1/providers/{id}"), &[], body)
            .await
    }

    /// Creates a provider and asserts it was created.
    pub async fn create_provider(&self, id: &str, body: &Value) -> Value {
        self.put_provider(id, body).await.ok(201)
    }

    /// Creates [`open_provider`] under `id`.
    pub async fn open_provider(&self, id: &str) -> Value {
        self.create_provider(id, &open_provider()).await
    }

    /// `GET /v1/providers/{id}/availability?{query}`.
    pub async fn availability(&self, id: &str, query: &str) -> Reply {
        self.get(&format!("/v1/providers/{id}/availability?{query}"))
            .await
    }

    /// `POST /v1/appointments` with a body.
    pub async fn post_appointment(&self, body: &Value) -> Reply {
        self.json(Method::POST, "/v1/appointments", &[], body).await
    }

    /// `POST /v1/appointments` of (provider, patient, start).
    pub async fn book(&self, provider: &str, patient: &str, start: &str) -> Reply {
        self.post_appointment(&book_body(provider, patient, start))
            .await
    }

    /// Books and asserts 201; returns the appointment.
    pub async fn booked(&self, provider: &str, patient: &str, start: &str) -> Value {
        self.book(provider, patient, start).await.ok(201)
    }

    /// `GET /v1/appointments/{id}`.
    pub async fn appointment(&self, id: &str) -> Reply {
        self.get(&format!("/v1/appointments/{id}")).await
    }

    /// `PUT /v1/appointments/{id}` with `{"start": …}` and an optional `If-Match`.
    pub async fn reschedule(&self, id: &str, start: &str, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        self.json(
            Method::PUT,
            &format!("/v1/appointments/{id}"),
            &headers,
            &json!({ "start": start }),
        )
        .await
    }

    /// `DELETE /v1/appointments/{id}` with an optional JSON body and `If-Match`.
    pub async fn cancel(&self, id: &str, body: Option<&Value>, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        let path = format!("/v1/appointments/{id}");
        match body {
            Some(b) => self.json(Method::DELETE, &path, &headers, b).await,
            None => self.send(Method::DELETE, &path, &headers, None).await,
        }
    }

    /// `GET /v1/appointments?{query}`, asserted 200.
    pub async fn list(&self, query: &str) -> Value {
        self.get(&format!("/v1/appointments?{query}")).await.ok(200)
    }

    /// Polls `GET /v1/appointments/{id}` every 50 ms for up to 2 s until
    /// `done` holds; returns the last body.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..40 {
            last = self.appointment(id).await.ok(200);
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the condition never held within 2 s; last: {last}");
    }

    /// Stops the app (graceful shutdown) and hands back its data directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task did not panic")
                .expect("the server stopped cleanly");
        }
        self.data_dir
    }

    /// Stops the app and starts a new one on the same data directory.
    pub async fn restart(self) -> TestApp {
        let dir = self.stop().await;
        start(dir, |_| {}).await
    }
}

/// A provider in Peru, on UTC, open every day 00:00–24:00 with 30-minute
/// slots, no buffer, no notice, 90 days ahead.
pub fn open_provider() -> Value {
    let day = json!([{ "start": "00:00", "end": "24:00" }]);
    json!({
        "name": "Dra. Ana Torres",
        "countryIso": "PE",
        "timezone": "UTC",
        "slotMinutes": 30,
        "bufferMinutes": 0,
        "minNoticeMinutes": 0,
        "horizonDays": 90,
        "weeklyHours": {
            "monday": day, "tuesday": day, "wednesday": day, "thursday": day,
            "friday": day, "saturday": day, "sunday": day
        }
    })
}

/// A booking body.
pub fn book_body(provider: &str, patient: &str, start: &str) -> Value {
    json!({ "providerId": provider, "patientId": patient, "start": start })
}

/// Today's date in UTC.
pub fn today() -> Date {
    Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// The UTC date `n` days from today.
pub fn day(n: i64) -> Date {
    today().checked_add(n.days()).expect("a date in range")
}

/// The instant `HH:MM` UTC on the date `n` days from today, RFC 3339 (`Z`).
pub fn slot(n: i64, hh_mm: &str) -> String {
    format!("{}T{hh_mm}:00Z", day(n))
}

/// Parses an RFC 3339 instant.
pub fn instant(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
}

/// Whether `s` is a UTC instant with milliseconds (`2026-11-23T13:59:58.120Z`).
pub fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && s.parse::<Timestamp>().is_ok()
}

/// The starts of every slot of one availability day.
pub fn starts(day: &Value) -> Vec<String> {
    day["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["start"].as_str().expect("start").to_owned())
        .collect()
}
