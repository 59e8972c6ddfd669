//! How the server serves: connections that send nothing are closed,
//! answers are compressed for clients that ask, request ids are kept only
//! when sensible, and the `cita-http` binary itself: its command line and
//! its logs (JSON lines, no colours in a pipe, one access line per
//! request, nothing of a patient's in them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{day, spawn_app, spawn_app_with};

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    // A bound for the test, not an assertion on time: without the header
    // read timeout the server would keep the connection forever.
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got))
        .await
        .expect("the server closed the connection")
        .expect("a readable connection");
    got
}

#[tokio::test]
async fn connections_that_send_no_head_or_idle_are_closed() {
    let app = spawn_app_with(|c| c.header_read_timeout_ms = 100).await;
    let address = app.address.trim_start_matches("http://").to_owned();

    // Nothing at all.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    until_closed(&mut silent).await;

    // Half a head, never finished.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;

    // A keep-alive connection is served, then closed once idle.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = String::from_utf8_lossy(&until_closed(&mut idle).await).into_owned();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains("{\"status\":\"ok\"}"), "{answered}");
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_accept_it() {
    let app = spawn_app().await;
    app.open_provider("ana").await;
    let path = format!(
        "/v1/providers/ana/availability?from={}&to={}",
        day(1),
        day(7)
    );
    let r = app
        .client
        .get(app.url(&path))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(r.headers().contains_key("x-request-id"));
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip's magic number");
    // Not asked for: not compressed.
    let r = app.get(&path).await;
    assert!(r.header("content-encoding").is_none());
    r.ok(200);
    // Small answers are not worth it.
    let r = app
        .send(Method::GET, "/health", &[("accept-encoding", "gzip")], None)
        .await;
    assert!(r.header("content-encoding").is_none());
    r.ok(200);
}

#[tokio::test]
async fn unsafe_request_ids_are_replaced() {
    let app = spawn_app().await;
    for bad in ["has space", "quote\"d", &"x".repeat(129)] {
        let r = app
            .send(Method::GET, "/health", &[("x-request-id", bad)], None)
            .await;
        let id = r.header("x-request-id").expect("an id").to_owned();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "a UUID: {id}");
    }
}

// ---- the binary ----

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cita-http"));
    // Nothing of the test's own environment configures it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CITA_") {
            c.env_remove(key);
        }
    }
    c
}

/// Runs `command` to its end and returns what it wrote; the test fails
/// (and the process is killed) if it does not end within 20 s, as a server
/// that started instead of answering would not.
fn run(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cita-http runs");
    for _ in 0..200 {
        if child.try_wait().expect("a child").is_some() {
            return child.wait_with_output().expect("its output");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!(
        "cita-http did not exit within 20 s: {:?}",
        child.wait_with_output()
    );
}

#[test]
fn help_and_version_answer_without_starting_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut version = binary();
    version.arg("--version").current_dir(dir.path());
    let out = run(version);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("cita-http {}", env!("CARGO_PKG_VERSION"))
    );

    let mut help = binary();
    help.arg("--help").current_dir(dir.path());
    let out = run(help);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("--config <PATH>") && text.contains("CITA_CONFIG"),
        "{text}"
    );
    // Neither opened a data folder.
    assert!(!dir.path().join("data").exists());

    let mut bogus = binary();
    bogus.arg("--bogus").current_dir(dir.path());
    let out = run(bogus);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn config_names_the_file_like_cita_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut missing = binary();
    missing
        .args(["--config", "missing.toml"])
        .current_dir(dir.path());
    let out = run(missing);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(
        text.contains("missing.toml") && text.contains("does not exist"),
        "{text}"
    );

    // A file that sets an invalid key is read (and refused by name).
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"nowhere\"\n").unwrap();
    for args in [
        vec!["--config".to_owned(), file.display().to_string()],
        vec![],
    ] {
        let mut c = binary();
        if args.is_empty() {
            c.env("CITA_CONFIG", &file);
        }
        c.args(&args).current_dir(dir.path());
        let out = run(c);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let text = String::from_utf8(out.stderr).unwrap();
        assert!(text.contains("CITA_LISTEN / listen"), "{text}");
    }
}

/// A running `cita-http`, killed when dropped; its stdout line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(envs: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = binary()
            .env("CITA_LISTEN", "127.0.0.1:0")
            .env("CITA_DATA_DIR", dir.path())
            .env("CITA_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            _dir: dir,
        }
    }

    /// The next line of stdout (the test fails if none comes in 20 s).
    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line of output")
    }

    /// Lines until one contains `needle` (that one included).
    fn lines_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.line();
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn json_logs_are_json_lines_with_one_access_line_per_request() {
    let app = Running::start(&[("CITA_LOG_FORMAT", "json")]);
    let started = app.lines_until("Cita listening");
    let mut address = None;
    for line in &started {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "Cita listening" {
            address = v["fields"]["address"].as_str().map(str::to_owned);
        }
    }
    let address = address.expect("the address in the start-up line");
    let client = reqwest::Client::new();
    let r = client
        .get(format!(
            "http://{address}/v1/appointments?patientId=secret-patient-7"
        ))
        .header("x-request-id", "log-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let lines = app.lines_until("log-test-1");
    let access: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    for line in &lines {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(!line.contains("secret-patient-7"), "{line}");
    }
    assert_eq!(access["level"], "INFO", "{access}");
    assert_eq!(access["span"]["request_id"], "log-test-1", "{access}");
    assert_eq!(access["span"]["method"], "GET", "{access}");
    assert_eq!(access["span"]["route"], "/v1/appointments", "{access}");
    assert_eq!(access["fields"]["status"], 200, "{access}");
    assert!(access["fields"]["latency"].is_string(), "{access}");
}

#[tokio::test]
async fn text_logs_have_no_colours_in_a_pipe() {
    let app = Running::start(&[("CITA_LOG_FORMAT", "pretty")]);
    let started = app.lines_until("API docs");
    let address = started
        .iter()
        .find_map(|l| l.strip_prefix("Cita listening on http://"))
        .expect("the address")
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!("http://{address}/health"))
        .header("x-request-id", "pipe-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let lines = app.lines_until("pipe-test-1");
    let access = lines.last().unwrap();
    assert!(
        access.contains("INFO") && access.contains("status=200"),
        "{access}"
    );
    for line in started.iter().chain(&lines) {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
}
