//! Cluster mode and the parallel writer, end to end: `huntflow backfill`
//! over a scenario's dataset in three configurations, each run as child
//! processes on this machine:
//!
//! - `1x2 single`: one process of 2 workers, every notification sorted and
//!   formatted by worker 0 (`--single-writer`);
//! - `1x2 parallel`: one process of 2 workers, each sorting and formatting
//!   its share, worker 0 merging (the default);
//! - `2x1 parallel`: two processes of one worker on 127.0.0.1 (`-n 2`):
//!   the same work, with every exchange between the two workers serialized
//!   and sent over TCP.
//!
//! Each configuration runs `HUNTFLOW_BENCH_REPEAT` times (default 3), the
//! order rotated each round; prints the median wall time and its range,
//! events/s at the median, the CPU time (user + system, all processes) and
//! the peak RSS (the largest process). The outputs of every configuration
//! must be the same bytes (checked by length and CRC-32).
//!
//! Run: `cargo bench --bench cluster` (scenarios `small`, `1M` and
//! `1M-players`), or `cargo bench --bench cluster -- small` for a quick run.
//! Each result is also appended as one JSON line to
//! `target/bench-results.jsonl`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;

use common::{
    dataset, filter, results_file, selected, target_dir, Scenario, ONE_MILLION,
    ONE_MILLION_PLAYERS, SMALL,
};

const SCENARIOS: &[Scenario] = &[SMALL, ONE_MILLION, ONE_MILLION_PLAYERS];

/// One configuration: processes, workers each, single writer.
struct Config {
    label: &'static str,
    processes: usize,
    workers: usize,
    single_writer: bool,
}

const CONFIGS: &[Config] = &[
    Config {
        label: "1x2 single",
        processes: 1,
        workers: 2,
        single_writer: true,
    },
    Config {
        label: "1x2 parallel",
        processes: 1,
        workers: 2,
        single_writer: false,
    },
    Config {
        label: "2x1 parallel",
        processes: 2,
        workers: 1,
        single_writer: false,
    },
];

/// What one run took.
struct Took {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss: u64,
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// A hostfile of `n` free ports on 127.0.0.1.
fn hostfile(dir: &Path, n: usize) -> PathBuf {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let text: String = listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}\n", l.local_addr().expect("addr").port()))
        .collect();
    let path = dir.join("cluster-hosts");
    std::fs::write(&path, text).expect("write hostfile");
    path
}

/// Runs `c` over the dataset once, notifications to `out`.
fn run(c: &Config, hunt: &Path, parts: &[PathBuf], out: &Path) -> Took {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let dir = target_dir().join("bench-data");
    let hosts = (c.processes > 1).then(|| hostfile(&dir, c.processes));
    let t = Instant::now();
    let children: Vec<_> = (0..c.processes)
        .map(|p| {
            let mut cmd = Command::new(bin);
            cmd.arg("backfill")
                .arg("--hunt")
                .arg(hunt)
                .args(["-w", &c.workers.to_string()])
                .arg("--output")
                .arg(out)
                .args(parts)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if c.single_writer {
                cmd.arg("--single-writer");
            }
            if let Some(h) = &hosts {
                cmd.args(["-n", &c.processes.to_string(), "-p", &p.to_string()])
                    .arg("-h")
                    .arg(h);
            }
            cmd.spawn().expect("spawn huntflow")
        })
        .collect();
    let mut cpu = 0.0;
    let mut peak = 0;
    for child in children {
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet waited for; the pointers are valid.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid, "wait4 failed");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "huntflow failed ({})",
            c.label
        );
        std::mem::forget(child);
        cpu += seconds(usage.ru_utime) + seconds(usage.ru_stime);
        peak = peak.max(usage.ru_maxrss as u64 * 1024);
    }
    Took {
        seconds: t.elapsed().as_secs_f64(),
        cpu_seconds: cpu,
        peak_rss: peak,
    }
}

/// Length and CRC-32 of a file.
fn digest(path: &Path) -> (u64, u32) {
    let mut f = std::fs::File::open(path).expect("open output");
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read output");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    (len, h.finalize())
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let filter = filter();
    let repeat: usize = std::env::var("HUNTFLOW_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let (results_path, mut results) = results_file();
    println!(
        "{:<12} {:<14} {:>10} {:>18} {:>12} {:>8} {:>10}",
        "scenario", "config", "events", "wall s (min-max)", "events/s", "CPU s", "peak MiB"
    );
    for s in SCENARIOS {
        if !selected(&filter, s.name) {
            continue;
        }
        let (hunt, parts) = dataset(bin, s);
        let mut took: Vec<Vec<Took>> = CONFIGS.iter().map(|_| Vec::new()).collect();
        let mut digests = Vec::new();
        for round in 0..repeat {
            for k in 0..CONFIGS.len() {
                let i = (k + round) % CONFIGS.len();
                let out = target_dir()
                    .join("bench-data")
                    .join(format!("cluster-out-{i}.jsonl"));
                took[i].push(run(&CONFIGS[i], &hunt, &parts, &out));
                if round == 0 {
                    digests.push((i, digest(&out)));
                }
                let _ = std::fs::remove_file(&out);
            }
        }
        digests.sort();
        assert!(
            digests.windows(2).all(|w| w[0].1 == w[1].1),
            "{}: the configurations wrote different bytes: {digests:?}",
            s.name
        );
        for (c, runs) in CONFIGS.iter().zip(&took) {
            let mut wall: Vec<f64> = runs.iter().map(|t| t.seconds).collect();
            wall.sort_by(f64::total_cmp);
            let mut cpu: Vec<f64> = runs.iter().map(|t| t.cpu_seconds).collect();
            cpu.sort_by(f64::total_cmp);
            let peak = runs.iter().map(|t| t.peak_rss).max().unwrap_or(0);
            let med = median(&wall);
            let eps = s.events as f64 / med;
            println!(
                "{:<12} {:<14} {:>10} {:>7.2} ({:.2}-{:.2}) {:>12.0} {:>8.1} {:>10.1}",
                s.name,
                c.label,
                s.events,
                med,
                wall[0],
                wall[wall.len() - 1],
                eps,
                median(&cpu),
                peak as f64 / (1 << 20) as f64
            );
            writeln!(
                results,
                "{{\"bench\":\"cluster\",\"scenario\":\"{}\",\"config\":\"{}\",\"processes\":{},\"workers\":{},\"single_writer\":{},\"events\":{},\"runs\":{},\"seconds_median\":{:.3},\"seconds_min\":{:.3},\"seconds_max\":{:.3},\"events_per_s\":{:.0},\"cpu_seconds_median\":{:.3},\"peak_rss_bytes\":{}}}",
                s.name, c.label, c.processes, c.workers, c.single_writer, s.events, runs.len(),
                med, wall[0], wall[wall.len() - 1], eps, median(&cpu), peak
            )
            .expect("write bench result");
        }
    }
    eprintln!("results appended to {}", results_path.display());
}
