//! End-to-end backfill benchmark: generates seeded datasets with
//! `huntflow generate` (cached under `target/bench-data/`), runs
//! `huntflow backfill` on them as a child process at 1 and 2 workers, and
//! prints events/s, wall time, peak RSS of the child and the peak RSS per
//! player. It also runs the same players with 10× the events to show that
//! memory stays flat when only the event count grows, and a million players
//! all with a live position for the memory bound. `-- 100M` runs the same
//! players with 100M events (only when asked: ~11 GB of data).
//!
//! Run: `cargo bench --bench backfill` (all scenarios), or
//! `cargo bench --bench backfill -- small` for a quick run. The first run
//! right after a build is slower (seen here: 1–2 s instead of 0.3 s for
//! `small`); run it twice.
//! Each result is also appended as one JSON line to
//! `target/bench-results.jsonl` so runs can be compared.

use std::io::Write;
use std::process::{Command, Stdio};

#[path = "common/mod.rs"]
mod common;

use common::{
    dataset, filter, results_file, run_child, selected, target_dir, Scenario, ONE_MILLION,
    ONE_MILLION_PLAYERS, SMALL, TEN_MILLION,
};

struct Run {
    scenario: Scenario,
    workers: &'static [usize],
    /// Only run when named (`cargo bench --bench backfill -- 100M`): the
    /// dataset takes ~11 GB of disk.
    on_request: bool,
}

const RUNS: &[Run] = &[
    Run {
        scenario: SMALL,
        workers: &[1, 2],
        on_request: false,
    },
    Run {
        scenario: ONE_MILLION,
        workers: &[1, 2],
        on_request: false,
    },
    Run {
        scenario: TEN_MILLION,
        workers: &[1, 2],
        on_request: false,
    },
    Run {
        scenario: ONE_MILLION_PLAYERS,
        workers: &[2],
        on_request: false,
    },
    Run {
        scenario: Scenario {
            name: "100M-same-players",
            events: 100_000_000,
            players: 10_000,
            zones: 100,
        },
        workers: &[2],
        on_request: true,
    },
];

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let filter = filter();
    let (results_path, mut results) = results_file();
    println!(
        "{:<18} {:>8} {:>10} {:>8} {:>12} {:>10} {:>14}",
        "scenario", "workers", "events", "wall s", "events/s", "peak MiB", "RSS/player B"
    );
    for run in RUNS {
        let s = &run.scenario;
        if !selected(&filter, s.name) || (run.on_request && filter.is_empty()) {
            continue;
        }
        let (hunt, parts) = dataset(bin, s);
        for &w in run.workers {
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
            let (secs, rss) = run_child(&mut cmd);
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
