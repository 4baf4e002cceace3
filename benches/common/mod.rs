#![allow(dead_code)] // each bench uses a part of these helpers
//! What the end-to-end benches share: the seeded bench datasets (generated
//! once with `huntflow generate` and cached under `target/bench-data/`), and
//! running the `huntflow` binary as a child with its wall time and peak RSS.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A generated dataset: events, players and zones, over 2 partitions.
pub struct Scenario {
    pub name: &'static str,
    pub events: u64,
    pub players: u32,
    pub zones: u32,
}

/// A quick scenario: 100k events from 1,000 players over 100 zones.
pub const SMALL: Scenario = Scenario {
    name: "small",
    events: 100_000,
    players: 1_000,
    zones: 100,
};

/// A million players, all with a live position, over 1,000 zones: the
/// memory bound, and the most notifications per event.
pub const ONE_MILLION_PLAYERS: Scenario = Scenario {
    name: "1M-players",
    events: 3_000_000,
    players: 1_000_000,
    zones: 1_000,
};

/// The 1M-event scenario most benches use: 10k players, 100 zones.
pub const ONE_MILLION: Scenario = Scenario {
    name: "1M",
    events: 1_000_000,
    players: 10_000,
    zones: 100,
};

/// 10M events from the same 10k players and 100 zones: a run long enough
/// to compare windows of one run.
pub const TEN_MILLION: Scenario = Scenario {
    name: "10M-same-players",
    events: 10_000_000,
    players: 10_000,
    zones: 100,
};

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The scenario's dataset (generated on first use): the hunt and the
/// partition files. Each player moves about every 2 s of event time,
/// whatever the event count, and the city grows with the zones (3 km square
/// per 100 zones) so that zone density stays that of a real city.
pub fn dataset(bin: &str, s: &Scenario) -> (PathBuf, Vec<PathBuf>) {
    let dir = target_dir()
        .join("bench-data")
        .join(format!("e{}-p{}-z{}", s.events, s.players, s.zones));
    let hunt = dir.join("hunt").join("hunt.toml");
    let events = dir.join("events");
    let done = dir.join("complete");
    if !done.exists() {
        let t = Instant::now();
        let rate = (s.players as f64 / 2.0).max(50.0);
        let extent_m = 3_000.0 * (s.zones.max(100) as f64 / 100.0).sqrt();
        let status = Command::new(bin)
            .args(["generate", "--seed", "7", "--partitions", "2", "--clean"])
            .args(["--events", &s.events.to_string()])
            .args(["--players", &s.players.to_string()])
            .args(["--zones", &s.zones.to_string()])
            .args(["--rate", &rate.to_string()])
            .args(["--extent-m", &extent_m.to_string()])
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

/// Runs the child to completion; returns (wall seconds, peak RSS in bytes).
/// The child's peak includes this process's high-water mark at spawn time,
/// so spawn children before growing this process.
pub fn run_child(cmd: &mut Command) -> (f64, u64) {
    let t = Instant::now();
    let child = cmd.spawn().expect("spawn huntflow");
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
        "huntflow failed"
    );
    std::mem::forget(child);
    (secs, usage.ru_maxrss as u64 * 1024)
}

/// The scenario names asked for on the command line (`cargo bench -- NAME`);
/// empty means all.
pub fn filter() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// Whether scenario `name` is selected by `filter`.
pub fn selected(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

/// `target/bench-results.jsonl`, opened for appending one JSON line per result.
pub fn results_file() -> (PathBuf, File) {
    let path = target_dir().join("bench-results.jsonl");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open bench results");
    (path, file)
}

/// The value at quantile `q` (0..=1) of sorted, non-empty samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// p50/p90/p99/max of latency samples in ms.
pub struct Quantiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    /// Panics with `what` when there are no samples.
    pub fn of(mut samples: Vec<f64>, what: &str) -> Self {
        samples.sort_by(f64::total_cmp);
        assert!(!samples.is_empty(), "no {what}");
        Quantiles {
            count: samples.len(),
            p50: quantile(&samples, 0.5),
            p90: quantile(&samples, 0.9),
            p99: quantile(&samples, 0.99),
            max: quantile(&samples, 1.0),
        }
    }

    /// `"p50_ms":…,"p90_ms":…,"p99_ms":…,"max_ms":…` for a results line.
    pub fn json(&self) -> String {
        format!(
            "\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

/// When a paced input lifted its partition frontier `max(0, M - L)`.
pub struct FrontierLog {
    lateness: u64,
    max_ts: Option<u64>,
    steps: Vec<(u64, std::time::Instant)>,
}

impl FrontierLog {
    pub fn new(lateness: u64) -> Self {
        FrontierLog {
            lateness,
            max_ts: None,
            steps: Vec::new(),
        }
    }

    /// A record with this `ts` is about to be sent.
    pub fn saw(&mut self, ts: u64) {
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
    }

    /// What was seen has been sent now: notes the frontier if it rose.
    pub fn sent(&mut self) {
        let f = self.max_ts.map_or(0, |m| m.saturating_sub(self.lateness));
        if self.steps.last().is_none_or(|(last, _)| f > *last) {
            self.steps.push((f, std::time::Instant::now()));
        }
    }

    /// When the frontier first reached at least `f`.
    pub fn reached(&self, f: u64) -> Option<std::time::Instant> {
        let i = self.steps.partition_point(|(v, _)| *v < f);
        self.steps.get(i).map(|(_, at)| *at)
    }
}
