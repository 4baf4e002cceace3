//! Completion latency of a backfill fed through a pipe at a steady rate:
//! `huntflow backfill --progress -` reads one partition of the 1M bench
//! dataset from standard input, paced at `HUNTFLOW_LATENCY_RATE` lines per
//! second (default 100,000). For each progress record `T` it measures the
//! wall time from the moment the input that completes `T` was written (the
//! first line that lifts the partition frontier `max(0, M - L)` to `T` or
//! beyond) to the moment the progress record arrives, i.e. every
//! notification before `T` has been written. Prints p50/p90/p99/max and
//! appends one JSON line to `target/bench-results.jsonl`.
//!
//! Run: `cargo bench --bench latency`.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{dataset, results_file, FrontierLog, Quantiles, ONE_MILLION};

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let rate: u64 = std::env::var("HUNTFLOW_LATENCY_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (hunt, parts) = dataset(bin, &ONE_MILLION);
    let lateness = huntflow::model::hunt::Hunt::load(&hunt)
        .expect("bench hunt loads")
        .max_lateness_ms;
    let input = std::fs::read(&parts[0]).expect("read partition");

    let mut child = Command::new(bin)
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .args(["--progress", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn huntflow backfill");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");

    // Progress records and when they arrived.
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read output");
            if line.starts_with("{\"kind\":\"progress\"") {
                let v: serde_json::Value = serde_json::from_str(&line).expect("progress JSON");
                let t = v["time"].as_u64().expect("progress time");
                tx.send((t, Instant::now())).expect("collector alive");
            }
        }
    });

    // Write the lines at a steady pace, noting when each new frontier was sent.
    let start = Instant::now();
    let mut frontiers = FrontierLog::new(lateness);
    let per_ms = (rate / 1000).max(1) as usize;
    let lines: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
    for (i, chunk) in lines.chunks(per_ms).enumerate() {
        let due = start + Duration::from_millis(i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for line in chunk {
            let v: serde_json::Value = serde_json::from_slice(line).expect("clean dataset");
            frontiers.saw(v["ts"].as_u64().expect("ts"));
        }
        stdin.write_all(&chunk.concat()).expect("write input");
        stdin.flush().expect("flush input");
        frontiers.sent();
    }
    let sent = start.elapsed();
    drop(stdin);
    reader.join().expect("reader thread");
    assert!(child.wait().expect("wait").success(), "huntflow failed");

    let latencies: Vec<f64> = rx
        .try_iter()
        .filter_map(|(t, arrived)| {
            frontiers
                .reached(t)
                .map(|sent| arrived.saturating_duration_since(sent).as_secs_f64() * 1e3)
        })
        .collect();
    let q = Quantiles::of(latencies, "progress records");
    println!(
        "{} lines at {rate}/s in {:.1?}: {} progress records; completion latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        lines.len(),
        sent,
        q.count,
        q.p50,
        q.p90,
        q.p99,
        q.max
    );
    let (path, mut results) = results_file();
    writeln!(
        results,
        "{{\"bench\":\"latency\",\"rate\":{rate},\"lines\":{},\"progress_records\":{},{}}}",
        lines.len(),
        q.count,
        q.json()
    )
    .expect("write bench result");
    eprintln!("result appended to {}", path.display());
}
