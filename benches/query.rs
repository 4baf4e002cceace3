//! Point-query latency while ingestion runs at full speed: `huntflow
//! backfill -w 2` over the 1M-event bench dataset, under four loads:
//!
//! - `plain`: no `--serve` (the ingestion time to compare with);
//! - `serving`: `--serve`, no client;
//! - `1000/s`: one client on a kept-alive connection sending a request every
//!   millisecond (`GET /v1/players/{id}` for a random player, every tenth
//!   `/v1/zones/{id}`) until the backfill ends;
//! - `flat out`: the same client sending its next request 200 µs after each
//!   answer (several thousand a second: more than two cores can give without
//!   slowing ingestion).
//!
//! Latency is from writing a request to having read its whole answer, on
//! this machine's two cores: the client shares them with the job.
//! Prints, per load, the median wall time of 3 backfills and its slowdown,
//! and p50/p99/max query latency; appends a JSON line per load to
//! `target/bench-results.jsonl`.
//!
//! Run: `cargo bench --bench query`.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dataset, results_file, Quantiles, ONE_MILLION};
use rand::{Rng, SeedableRng};

/// What runs beside a backfill.
#[derive(Clone, Copy)]
enum Load {
    Plain,
    Serving,
    /// Requests per second, sent on a schedule.
    Rate(u32),
    /// The next request 200 µs after each answer.
    FlatOut,
}

impl Load {
    fn name(self) -> String {
        match self {
            Load::Plain => "plain".into(),
            Load::Serving => "serving".into(),
            Load::Rate(r) => format!("{r}/s"),
            Load::FlatOut => "flat out".into(),
        }
    }
}

/// Wall seconds of one backfill, and the query latencies (ms) of its client.
fn backfill(
    bin: &str,
    hunt: &std::path::Path,
    parts: &[std::path::PathBuf],
    load: Load,
) -> (f64, Vec<f64>) {
    let mut cmd = Command::new(bin);
    cmd.arg("backfill")
        .arg("--hunt")
        .arg(hunt)
        .args(["-w", "2", "--output", "/dev/null"])
        .args(parts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !matches!(load, Load::Plain) {
        cmd.args(["--serve", "127.0.0.1:0"]);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn huntflow backfill");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let done = Arc::new(AtomicBool::new(false));
    let mut client = None;
    let mut elapsed = 0.0;
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if let Some(addr) = line.strip_prefix("serving on http://") {
            let addr = addr.to_string();
            let done = done.clone();
            let pause = match load {
                Load::Rate(r) => Some(Pause::Every(Duration::from_secs_f64(1.0 / f64::from(r)))),
                Load::FlatOut => Some(Pause::After(Duration::from_micros(200))),
                _ => None,
            };
            if let Some(pause) = pause {
                client = Some(std::thread::spawn(move || query_loop(&addr, &done, pause)));
            }
        }
        if line.starts_with("{\"read\"") {
            elapsed = start.elapsed().as_secs_f64();
            break;
        }
    }
    done.store(true, Ordering::Release);
    let latencies = client
        .map(|c| c.join().expect("client"))
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, latencies)
}

/// How a client spaces its requests.
#[derive(Clone, Copy)]
enum Pause {
    /// One request per period, on a schedule (at once when late, without
    /// catching up on the ones missed).
    Every(Duration),
    /// This long after each answer.
    After(Duration),
}

fn query_loop(addr: &str, done: &AtomicBool, pause: Pause) -> Vec<f64> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut due = Instant::now();
    while !done.load(Ordering::Acquire) {
        n += 1;
        let path = if n.is_multiple_of(10) {
            format!("/v1/zones/z{:03}", rng.random_range(0..100))
        } else {
            format!("/v1/players/p{}", rng.random_range(0..10_000))
        };
        let t = Instant::now();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").expect("request");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        out.push(t.elapsed().as_secs_f64() * 1e3);
        match pause {
            Pause::After(d) => std::thread::sleep(d),
            Pause::Every(d) => {
                due = (due + d).max(Instant::now());
                std::thread::sleep(due - Instant::now());
            }
        }
    }
    out
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let (hunt, parts) = dataset(bin, &ONE_MILLION);
    let loads = [Load::Plain, Load::Serving, Load::Rate(1000), Load::FlatOut];
    let mut walls = vec![Vec::new(); loads.len()];
    let mut latencies = vec![Vec::new(); loads.len()];
    for _ in 0..3 {
        for (i, &load) in loads.iter().enumerate() {
            let (t, l) = backfill(bin, &hunt, &parts, load);
            walls[i].push(t);
            latencies[i].extend(l);
        }
    }
    let median = |w: &mut Vec<f64>| {
        w.sort_by(f64::total_cmp);
        w[w.len() / 2]
    };
    let plain = median(&mut walls[0]);
    let (path, mut results) = results_file();
    println!("backfill 1M -w2, medians of 3; query latency in ms");
    for (i, &load) in loads.iter().enumerate() {
        let wall = median(&mut walls[i]);
        let slowdown = wall / plain - 1.0;
        let mut line = format!(
            "{:>9}: {wall:.2} s ({:+.1}%)",
            load.name(),
            slowdown * 100.0
        );
        let mut json = format!(
            "{{\"bench\":\"query\",\"load\":\"{}\",\"wall_s\":{wall:.3},\"slowdown\":{slowdown:.4}",
            load.name()
        );
        let l = std::mem::take(&mut latencies[i]);
        if !l.is_empty() {
            let q = Quantiles::of(l, "queries answered");
            line += &format!(
                "; {} queries: p50 {:.3} p99 {:.3} max {:.3}",
                q.count, q.p50, q.p99, q.max
            );
            json += &format!(
                ",\"queries\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4}",
                q.count, q.p50, q.p99, q.max
            );
        }
        println!("{line}");
        writeln!(results, "{json}}}").expect("write result");
    }
    eprintln!("results appended to {}", path.display());
}
