//! Point-query latency while ingestion runs at full speed: `huntflow
//! backfill -w 2 --serve` over the 1M-event bench dataset, with one client
//! on a kept-alive connection asking `GET /v1/players/{id}` for random
//! players (and `/v1/zones/{id}` every tenth request) until the backfill
//! ends. The same backfill without queries (and without `--serve`) gives the
//! ingestion time to compare. Prints p50/p99/max query latency and the
//! slowdown; appends a JSON line to `target/bench-results.jsonl`.
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

/// Wall seconds of one backfill; with `serve`, also the query latencies.
fn backfill(
    bin: &str,
    hunt: &std::path::Path,
    parts: &[std::path::PathBuf],
    serve: bool,
) -> (f64, Vec<f64>) {
    let mut cmd = Command::new(bin);
    cmd.arg("backfill")
        .arg("--hunt")
        .arg(hunt)
        .args(["-w", "2", "--output", "/dev/null"])
        .args(parts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if serve {
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
            client = Some(std::thread::spawn(move || query_loop(&addr, &done)));
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

fn query_loop(addr: &str, done: &AtomicBool) -> Vec<f64> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut out = Vec::new();
    let mut n = 0u64;
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
        std::thread::sleep(Duration::from_micros(200));
    }
    out
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let (hunt, parts) = dataset(bin, &ONE_MILLION);
    let mut plain = Vec::new();
    let mut served = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..3 {
        plain.push(backfill(bin, &hunt, &parts, false).0);
        let (t, l) = backfill(bin, &hunt, &parts, true);
        served.push(t);
        latencies.extend(l);
    }
    plain.sort_by(f64::total_cmp);
    served.sort_by(f64::total_cmp);
    let q = Quantiles::of(latencies, "queries answered");
    let slowdown = served[1] / plain[1] - 1.0;
    println!(
        "backfill 1M -w2: {:.2} s plain, {:.2} s serving queries ({:+.1}%), medians of 3; {} queries: ms p50 {:.3} p99 {:.3} max {:.3}",
        plain[1],
        served[1],
        slowdown * 100.0,
        q.count,
        q.p50,
        q.p99,
        q.max
    );
    let (path, mut results) = results_file();
    writeln!(
        results,
        "{{\"bench\":\"query\",\"plain_s\":{:.3},\"served_s\":{:.3},\"slowdown\":{:.4},\"queries\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4}}}",
        plain[1],
        served[1],
        slowdown,
        q.count,
        q.p50,
        q.p99,
        q.max
    )
    .expect("write result");
    eprintln!("result appended to {}", path.display());
}
