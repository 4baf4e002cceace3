//! End-to-end backfill benchmark: generates seeded datasets with
//! `huntflow generate` (cached under `target/bench-data/`), runs
//! `huntflow backfill` on them as a child process at 1 and 2 workers, and
//! prints events/s, wall time, peak RSS of the child and the peak RSS per
//! player. It also runs the same players with 10× the events to show that
//! memory stays flat when only the event count grows.
//!
//! Run: `cargo bench --bench backfill` (all scenarios), or
//! `cargo bench --bench backfill -- small` for a quick run.
//! Each result is also appended as one JSON line to
//! `target/bench-results.jsonl` so runs can be compared.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Scenario {
    name: &'static str,
    events: u64,
    players: u32,
    zones: u32,
    workers: &'static [usize],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "small",
        events: 100_000,
        players: 1_000,
        zones: 100,
        workers: &[1, 2],
    },
    Scenario {
        name: "1M",
        events: 1_000_000,
        players: 10_000,
        zones: 100,
        workers: &[1, 2],
    },
    Scenario {
        name: "10M-same-players",
        events: 10_000_000,
        players: 10_000,
        zones: 100,
        workers: &[1, 2],
    },
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn generate(bin: &str, s: &Scenario) -> (PathBuf, Vec<PathBuf>) {
    let dir = target_dir()
        .join("bench-data")
        .join(format!("e{}-p{}-z{}", s.events, s.players, s.zones));
    let hunt = dir.join("hunt").join("hunt.toml");
    let events = dir.join("events");
    let done = dir.join("complete");
    if !done.exists() {
        let t = Instant::now();
        // Event-time rate scales with the players so each player moves
        // about every 2 s of event time, whatever the event count.
        let rate = (s.players as f64 / 2.0).max(50.0);
        let status = Command::new(bin)
            .args(["generate", "--seed", "7", "--partitions", "2", "--clean"])
            .args(["--events", &s.events.to_string()])
            .args(["--players", &s.players.to_string()])
            .args(["--zones", &s.zones.to_string()])
            .args(["--rate", &rate.to_string()])
            .arg("--hunt-dir")
            .arg(dir.join("hunt"))
            .arg("--events-dir")
            .arg(&events)
            .status()
            .expect("run huntflow generate");
        assert!(status.success(), "huntflow generate failed");
        std::fs::write(&done, b"").expect("mark dataset complete");
        eprintln!("generated {} in {:.1?}", dir.display(), t.elapsed());
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&events)
        .expect("events dir")
        .map(|e| e.expect("entry").path())
        .collect();
    parts.sort();
    (hunt, parts)
}

/// Runs the child and returns (wall seconds, peak RSS in bytes).
fn run_measured(cmd: &mut Command) -> (f64, u64) {
    let t = Instant::now();
    let child = cmd.spawn().expect("spawn huntflow backfill");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; the pointers are valid.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "huntflow backfill failed"
    );
    std::mem::forget(child);
    (secs, usage.ru_maxrss as u64 * 1024)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let results_path = target_dir().join("bench-results.jsonl");
    let mut results = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .expect("open bench results");
    println!(
        "{:<18} {:>8} {:>10} {:>8} {:>12} {:>10} {:>14}",
        "scenario", "workers", "events", "wall s", "events/s", "peak MiB", "RSS/player B"
    );
    for s in SCENARIOS {
        if !filter.is_empty() && !filter.iter().any(|f| s.name.contains(f.as_str())) {
            continue;
        }
        let (hunt, parts) = generate(bin, s);
        for &w in s.workers {
            let out = target_dir().join("bench-data").join("out.jsonl");
            let mut cmd = Command::new(bin);
            cmd.arg("backfill")
                .arg("--hunt")
                .arg(&hunt)
                .args(["-w", &w.to_string()])
                .arg("--output")
                .arg(&out)
                .args(&parts)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let (secs, rss) = run_measured(&mut cmd);
            let eps = s.events as f64 / secs;
            let per_player = rss / s.players as u64;
            println!(
                "{:<18} {:>8} {:>10} {:>8.2} {:>12.0} {:>10.1} {:>14}",
                s.name,
                w,
                s.events,
                secs,
                eps,
                rss as f64 / (1 << 20) as f64,
                per_player
            );
            writeln!(
                results,
                "{{\"bench\":\"backfill\",\"scenario\":\"{}\",\"workers\":{},\"events\":{},\"players\":{},\"zones\":{},\"seconds\":{:.3},\"events_per_s\":{:.0},\"peak_rss_bytes\":{},\"rss_per_player_bytes\":{}}}",
                s.name, w, s.events, s.players, s.zones, secs, eps, rss, per_player
            )
            .expect("write bench result");
        }
    }
    eprintln!("results appended to {}", results_path.display());
}
