//! COST benchmark ("Scalability! But at what COST?", McSherry, Isard and
//! Murray, HotOS 2015): how fast is `huntflow backfill` compared with a
//! straightforward single-threaded program computing the same output?
//!
//! For each scenario it generates the dataset with `huntflow generate` (or
//! reuses the cache of `benches/backfill.rs` under
//! `target/bench-data/e{events}-p{players}-z{zones}`, same parameters), then:
//! 1. runs `huntflow backfill` as a child process at 1 and 2 workers, timing
//!    it and taking its peak RSS from `wait4`;
//! 2. runs the baseline (`benches/cost/baseline.rs`: hash maps and a
//!    time-ordered loop, no timely or differential) in this process, timing
//!    hunt loading, reading, validation, processing and writing the
//!    notifications to a file;
//! 3. requires the baseline's notifications to be byte-identical to
//!    `huntflow backfill -w 1`'s, and its summary to be the same (the 2-worker
//!    output is compared too and reported).
//!
//! Each program runs `HUNTFLOW_BENCH_REPEAT` times (default 3) and its
//! fastest run counts, which tames the noise of a shared machine. It prints
//! events/s (input lines per wall second) for each program and
//! huntflow's throughput as a ratio to the baseline's, and peak RSS: the
//! child's from `wait4` for huntflow (run before the baseline, since a child's
//! figure includes this process's high-water mark when it was spawned), and
//! this process's `VmHWM`, reset just before the run, for the baseline.
//!
//! Run: `cargo bench --bench cost` (all scenarios), or
//! `cargo bench --bench cost -- small` for a quick run. Each result is also
//! appended as one JSON line to `target/bench-results.jsonl`.

#[path = "cost/baseline.rs"]
mod baseline;
#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{
    dataset, filter, results_file, run_child, selected, target_dir, Scenario, ONE_MILLION, SMALL,
};
use huntflow::model::hunt::Hunt;

const SCENARIOS: &[Scenario] = &[SMALL, ONE_MILLION];

/// Resets this process's peak RSS to its current RSS (Linux 4.0 and later;
/// elsewhere the peak stays the high-water mark of the whole run).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS since [`reset_peak_rss`], in bytes: `VmHWM`, which
/// unlike `getrusage`'s `ru_maxrss` does not carry the high-water mark of the
/// process image before `exec` (cargo's).
fn own_peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `None` when the two files are byte-identical, else the first line
/// (1-based) where they differ.
fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let open = |p: &Path| BufReader::with_capacity(1 << 20, File::open(p).expect("open output"));
    let (mut ra, mut rb) = (open(a), open(b));
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    let mut line = 0;
    loop {
        line += 1;
        la.clear();
        lb.clear();
        let na = ra.read_until(b'\n', &mut la).expect("read output");
        let nb = rb.read_until(b'\n', &mut lb).expect("read output");
        if la != lb {
            return Some(line);
        }
        if na == 0 && nb == 0 {
            return None;
        }
    }
}

/// Runs `f` (returning wall seconds and peak RSS) `n` times; returns the
/// fastest time and the largest peak.
fn best_of(n: usize, mut f: impl FnMut() -> (f64, u64)) -> (f64, u64) {
    (0..n)
        .map(|_| f())
        .fold((f64::INFINITY, 0), |(t, m), (s, r)| (t.min(s), m.max(r)))
}

/// One measured program.
struct Measured {
    program: &'static str,
    workers: usize,
    seconds: f64,
    peak_rss: u64,
    identical: bool,
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let repeats: usize = std::env::var("HUNTFLOW_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let filter = filter();
    let (results_path, mut results) = results_file();
    println!(
        "{:<8} {:<9} {:>7} {:>10} {:>8} {:>12} {:>10} {:>9}",
        "scenario", "program", "workers", "events", "wall s", "events/s", "ratio", "peak MiB"
    );
    for s in SCENARIOS {
        if !selected(&filter, s.name) {
            continue;
        }
        let (hunt_path, parts) = dataset(bin, s);
        let data = target_dir().join("bench-data");

        // huntflow first: a child's peak RSS as wait4 reports it includes
        // this process's high-water mark at spawn time.
        let mut engine = Vec::new();
        for w in [1, 2] {
            let out = data.join(format!("cost-{}-huntflow-w{w}.jsonl", s.name));
            let summary = data.join(format!("cost-{}-huntflow-w{w}.summary.json", s.name));
            let (seconds, peak_rss) = best_of(repeats, || {
                reset_peak_rss();
                let mut cmd = Command::new(bin);
                cmd.arg("backfill")
                    .arg("--hunt")
                    .arg(&hunt_path)
                    .args(["-w", &w.to_string()])
                    .arg("--output")
                    .arg(&out)
                    .arg("--summary")
                    .arg(&summary)
                    .args(&parts)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                run_child(&mut cmd)
            });
            engine.push((w, out, summary, seconds, peak_rss));
        }

        let ours = data.join(format!("cost-{}-baseline.jsonl", s.name));
        let mut summary = None;
        let (seconds, peak_rss) = best_of(repeats, || {
            reset_peak_rss();
            let t = Instant::now();
            let hunt = Hunt::load(&hunt_path).expect("hunt loads");
            let file = File::create(&ours).expect("create baseline output");
            let mut out = BufWriter::with_capacity(1 << 20, file);
            summary = Some(baseline::run(&hunt, &parts, &mut out).expect("baseline runs"));
            drop(out);
            (t.elapsed().as_secs_f64(), own_peak_rss())
        });
        let summary = summary.expect("the baseline ran");
        let mut runs = vec![Measured {
            program: "baseline",
            workers: 1,
            seconds,
            peak_rss,
            identical: true,
        }];

        for (w, out, summary_path, seconds, peak_rss) in engine {
            let theirs = std::fs::read_to_string(&summary_path).expect("read summary");
            assert_eq!(
                theirs.trim_end(),
                summary.to_json(),
                "{}: baseline summary differs from huntflow -w {w}",
                s.name
            );
            let diff = first_difference(&ours, &out);
            if let Some(line) = diff {
                let message = format!(
                    "{}: baseline output {} differs from huntflow -w {w} output {} at line {line}",
                    s.name,
                    ours.display(),
                    out.display()
                );
                // Only the 1-worker output is the reference; the engine
                // promises the same bytes at any worker count.
                assert!(w != 1, "{message}");
                eprintln!("{message}");
            }
            runs.push(Measured {
                program: "huntflow",
                workers: w,
                seconds,
                peak_rss,
                identical: diff.is_none(),
            });
        }

        let base_eps = s.events as f64 / runs[0].seconds;
        for m in &runs {
            let eps = s.events as f64 / m.seconds;
            let ratio = eps / base_eps;
            println!(
                "{:<8} {:<9} {:>7} {:>10} {:>8.2} {:>12.0} {:>9.2}x {:>9.1}",
                s.name,
                m.program,
                m.workers,
                s.events,
                m.seconds,
                eps,
                ratio,
                m.peak_rss as f64 / (1 << 20) as f64
            );
            writeln!(
                results,
                "{{\"bench\":\"cost\",\"scenario\":\"{}\",\"program\":\"{}\",\"workers\":{},\"events\":{},\"players\":{},\"zones\":{},\"seconds\":{:.3},\"events_per_s\":{:.0},\"ratio_to_baseline\":{:.3},\"peak_rss_bytes\":{},\"identical_to_baseline\":{},\"repeats\":{}}}",
                s.name, m.program, m.workers, s.events, s.players, s.zones, m.seconds, eps, ratio, m.peak_rss, m.identical, repeats
            )
            .expect("write bench result");
        }
    }
    eprintln!("results appended to {}", results_path.display());
}
