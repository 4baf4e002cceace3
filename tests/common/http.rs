//! A served backfill of the demo for the API tests, their HTTP client
//! (`ureq`), and Server-Sent Events read from a streaming response body.
#![allow(dead_code)] // each test binary uses a part of these helpers

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// An agent that hands back every status (no error for 4xx/5xx), with a
/// bound on every request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A finished response: status, headers we look at, body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

/// `GET path` with `headers`.
pub fn request(addr: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent().get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, www_authenticate) = (header("content-type"), header("www-authenticate"));
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {path}: body: {e}"));
    Answer {
        status: resp.status().as_u16(),
        content_type: content_type.unwrap_or_default(),
        www_authenticate,
        body,
    }
}

/// One GET; returns the status and the body.
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let a = request(addr, path, headers);
    (a.status, a.body)
}

/// The status and parsed body of `GET path`. Every JSON answer is in one
/// form, compact with keys sorted at every level (the form the README's
/// examples show): re-serialising the parsed body gives the same bytes.
pub fn json(addr: &str, path: &str) -> (u16, Value) {
    json_with(addr, path, &[])
}

/// [`json`] with request headers.
pub fn json_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = get(addr, path, headers);
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    assert_eq!(
        String::from_utf8_lossy(&serde_json::to_vec(&value).unwrap()),
        String::from_utf8_lossy(&body),
        "{path}: the answer is not compact with sorted keys"
    );
    (status, value)
}

/// One Server-Sent Event: `(id, event, data)`.
pub type SseEvent = (String, String, String);

/// A subscription read until `want` notifications came, an `error` event,
/// the end of the stream or 30 s: every event, progress marks included.
pub fn subscribe(addr: &str, path: &str, headers: &[(&str, &str)], want: usize) -> Vec<SseEvent> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_recv_body(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent
        .get(format!("http://{addr}{path}"))
        .header("Accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {path}");
    let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    let mut got = 0;
    while Instant::now() < deadline && got < want {
        let Some(Ok(line)) = lines.next() else { break };
        if line.is_empty() {
            if !event.is_empty() && !data.is_empty() {
                got += usize::from(event == "notification");
                let done = event == "error";
                events.push((
                    std::mem::take(&mut id),
                    std::mem::take(&mut event),
                    std::mem::take(&mut data),
                ));
                if done {
                    break;
                }
            }
            id.clear();
            event.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.to_string();
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = v.to_string();
        }
    }
    events
}

/// A served backfill of the demo, with TTLs long enough that state remains
/// at the end.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub output: PathBuf,
    pub hunt: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub summary: Value,
    /// The open standard input, when it was fed at once.
    pub stdin: Option<ChildStdin>,
}

impl Served {
    /// Writes `bytes` to the open standard input.
    pub fn feed(&mut self, bytes: &[u8]) {
        let pipe = self.stdin.as_mut().expect("standard input kept open");
        pipe.write_all(bytes).unwrap();
        pipe.flush().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(work: &Path, extra: &[&str]) -> Served {
    serve_with(work, extra, None)
}

/// With `stdin`: one partition fed these bytes through standard input,
/// which stays open (the partition never closes).
pub fn serve_with(work: &Path, extra: &[&str], stdin: Option<Vec<u8>>) -> Served {
    serve_paced(work, extra, stdin, Duration::ZERO)
}

/// [`serve_with`], writing standard input 200 lines at a time with `pause`
/// after each (from a thread of its own when there is a pause).
pub fn serve_paced(work: &Path, extra: &[&str], stdin: Option<Vec<u8>>, pause: Duration) -> Served {
    serve_demo(work, extra, stdin, pause, true)
}

/// [`serve_paced`]; with `long_ttls`, positions and readings of the demo
/// hunt live far longer than the demo's 60 s and 30 s.
pub fn serve_demo(
    work: &Path,
    extra: &[&str],
    stdin: Option<Vec<u8>>,
    pause: Duration,
    long_ttls: bool,
) -> Served {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let hunt_dir = work.join(format!("hunt-{}", extra.len()));
    std::fs::create_dir_all(&hunt_dir).unwrap();
    let mut toml = std::fs::read_to_string(root.join("dataflows/demo/hunt.toml")).unwrap();
    if long_ttls {
        toml = toml
            .replace("position_ttl_ms = 60000", "position_ttl_ms = 100000000")
            .replace("sensor_ttl_ms = 30000", "sensor_ttl_ms = 100000000");
    }
    std::fs::write(hunt_dir.join("hunt.toml"), toml).unwrap();
    std::fs::copy(
        root.join("dataflows/demo/zones.geojson"),
        hunt_dir.join("zones.geojson"),
    )
    .unwrap();
    let inputs = match &stdin {
        None => vec![
            root.join("datasets/demo/part-000.jsonl"),
            root.join("datasets/demo/part-001.jsonl"),
        ],
        Some(bytes) => {
            let fed = hunt_dir.join("fed.jsonl");
            std::fs::write(&fed, bytes).unwrap();
            vec![fed]
        }
    };
    let output = hunt_dir.join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .arg("backfill")
        .arg("--hunt")
        .arg(hunt_dir.join("hunt.toml"))
        .arg("--output")
        .arg(&output)
        .args(["-w", "2", "--serve", "127.0.0.1:0"])
        .args(extra)
        .args(if stdin.is_some() {
            vec![PathBuf::from("-")]
        } else {
            inputs.clone()
        })
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut kept = None;
    if let Some(bytes) = &stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.clone();
        let feed = move |pipe: &mut ChildStdin| {
            let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
            for chunk in lines.chunks(200) {
                for line in chunk {
                    pipe.write_all(line).unwrap();
                }
                pipe.flush().unwrap();
                std::thread::sleep(pause);
            }
        };
        // Kept open: the partition stays open and its last times incomplete.
        if pause.is_zero() {
            feed(&mut pipe);
            kept = Some(pipe);
        } else {
            std::thread::spawn(move || {
                feed(&mut pipe);
                std::mem::forget(pipe);
            });
        }
    }
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut summary = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("serving on http://") {
            addr = Some(a.to_string());
        } else if line.starts_with("{\"read\"") {
            summary = Some(serde_json::from_str(&line).unwrap());
        } else if line.starts_with("backfill complete") {
            break;
        }
        if stdin.is_some() && addr.is_some() {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        addr: addr.expect("address printed"),
        output,
        hunt: hunt_dir.join("hunt.toml"),
        inputs,
        summary: summary.unwrap_or(Value::Null),
        stdin: kept,
    }
}
