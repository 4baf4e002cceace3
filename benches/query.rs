//! Point-query latency while ingestion runs at full speed, and what the
//! queries cost ingestion. Two parts.
//!
//! **Rounds**: `huntflow backfill -w 2` (or `-w $HUNTFLOW_BENCH_WORKERS`)
//! over the 1M-event bench dataset, under six loads:
//!
//! - `plain`: no `--serve` (the ingestion time to compare with);
//! - `serving`: `--serve`, no client;
//! - `1000/s`: one client on a kept-alive connection sending a request every
//!   millisecond (`GET /v1/players/{id}` for a random player, every tenth
//!   `/v1/zones/{id}`) until the backfill ends;
//! - `1000/s, client nice -10`: the same with the client thread favoured by
//!   the scheduler (skipped without the privilege): real clients are on
//!   other machines, and on two shared cores the client's own wait for a
//!   core dominates the tail otherwise;
//! - `flat out`: the same client sending its next request 200 µs after each
//!   answer (about two thousand a second here: more than two cores can give
//!   without slowing ingestion);
//! - `one open map page`: what the map page's script asks for (see
//!   [`page`]): the subscription stream, and every second `/healthz` and
//!   the positions changed since its last round. Its latency is that of a
//!   positions round (every page of it).
//!
//! Each round runs every load once, the order rotated by one each round (so
//! that no load always follows the same one). Prints, per load, the median
//! wall time over the rounds (5, or `HUNTFLOW_BENCH_ROUNDS`), its range, the
//! median of its slowdowns against the plain backfill of the same round,
//! p50/p99/max query latency, and CPU: the job's (median), and per query
//! that of the job's HTTP thread and of the client thread.
//!
//! **Windows** (see [`windows`]): one backfill of the 10M-event dataset
//! with the client (or a client of a responder in the bench, or a spinning
//! thread, or two of these taking turns) switched on in every other second,
//! each such window's ingestion rate compared with the windows around it.
//! Separate runs vary by ±10% here; neighbouring windows of one run vary far
//! less.
//!
//! Latency is from writing a request to having read its whole answer, on
//! this machine's two cores: the client shares them with the job. The
//! server's own time per player query (from its `/metrics` histogram, as a
//! bucket bound) is printed beside it. Everything is appended as JSON lines
//! to `target/bench-results.jsonl`.
//!
//! Run: `cargo bench --bench query`. `HUNTFLOW_BENCH_LOADS` (comma-separated)
//! runs only the loads named: `serving`, `rate`, `rate-favoured`,
//! `flat-out`, `page` (each with `plain`), `windows`, `windows-trivial`,
//! `windows-favoured`, `windows-favoured-trivial`, `windows-spin`,
//! `windows-axum` (the client querying a minimal axum server in the bench
//! process), and `windows-paired` (`-favoured`): the client
//! querying the job and the client querying the trivial responder taking
//! turns in one backfill.
//! `HUNTFLOW_BENCH_WINDOW_RUNS` repeats each windows load that many times,
//! the loads in turn, and then prints each load's windows pooled over its
//! runs.

#[path = "common/mod.rs"]
mod common;
#[path = "query/page.rs"]
mod page;
#[path = "query/report.rs"]
mod report;
#[path = "query/rounds.rs"]
mod rounds;
#[path = "query/windows.rs"]
mod windows;

use windows::Beside;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dataset, ONE_MILLION, TEN_MILLION};
use rand::{Rng, SeedableRng};

/// What runs beside a backfill.
#[derive(Clone, Copy)]
enum Load {
    Plain,
    Serving,
    /// Requests per second, sent on a schedule; whether the client thread
    /// runs at nice -10.
    Rate(u32, bool),
    /// The next request 200 µs after each answer.
    FlatOut,
    /// One open map page ([`page`]).
    Page,
}

impl Load {
    /// Its name in `HUNTFLOW_BENCH_LOADS`.
    fn key(self) -> &'static str {
        match self {
            Load::Plain => "plain",
            Load::Serving => "serving",
            Load::Rate(_, false) => "rate",
            Load::Rate(_, true) => "rate-favoured",
            Load::FlatOut => "flat-out",
            Load::Page => "page",
        }
    }

    fn name(self) -> String {
        match self {
            Load::Plain => "plain".into(),
            Load::Serving => "serving".into(),
            Load::Rate(r, false) => format!("{r}/s"),
            Load::Rate(r, true) => format!("{r}/s, client nice -10"),
            Load::FlatOut => "flat out".into(),
            Load::Page => "one open map page".into(),
        }
    }
}

/// What one backfill gave.
struct Run {
    wall: f64,
    /// Query latencies (ms) of its client.
    latencies: Vec<f64>,
    /// The server's p99 time per player query (ms, a histogram bucket's
    /// upper bound).
    server_p99: Option<f64>,
    /// CPU seconds: the whole job, its HTTP thread, the client thread.
    cpu: [f64; 3],
    /// What a map page received: subscription events, positions.
    page: [u64; 2],
}

/// The line on which the job says where it serves, before the address.
const SERVING_ON: &str = "serving on http://";

/// Starts `huntflow backfill` over `parts` with `workers` workers, the
/// notifications to `/dev/null` and standard error piped; with `serve`,
/// serving on a free port.
fn spawn_backfill(
    bin: &str,
    hunt: &std::path::Path,
    parts: &[std::path::PathBuf],
    workers: usize,
    serve: bool,
) -> Child {
    let mut cmd = Command::new(bin);
    cmd.arg("backfill")
        .arg("--hunt")
        .arg(hunt)
        .args(["-w", &workers.to_string(), "--output", "/dev/null"])
        .args(parts)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if serve {
        cmd.args(["--serve", "127.0.0.1:0"]);
    }
    cmd.spawn().expect("spawn huntflow backfill")
}

fn backfill(bin: &str, hunt: &std::path::Path, parts: &[std::path::PathBuf], load: Load) -> Run {
    let start = Instant::now();
    let mut child = spawn_backfill(bin, hunt, parts, workers(), !matches!(load, Load::Plain));
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let done = Arc::new(AtomicBool::new(false));
    let mut client = None;
    let received = Arc::new(page::Received::default());
    let mut served = None;
    let mut elapsed = 0.0;
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if let Some(addr) = line.strip_prefix(SERVING_ON) {
            let addr = addr.to_string();
            served = Some(addr.clone());
            let done = done.clone();
            let (pause, favoured) = match load {
                Load::Rate(r, favoured) => (
                    Some(Pause::Every(Duration::from_secs_f64(1.0 / f64::from(r)))),
                    favoured,
                ),
                Load::FlatOut => (Some(Pause::After(Duration::from_micros(200))), false),
                _ => (None, false),
            };
            if matches!(load, Load::Page) {
                let received = received.clone();
                client = Some(std::thread::spawn(move || {
                    page::run(&addr, &done, &received)
                }));
            } else if let Some(pause) = pause {
                client = Some(std::thread::spawn(move || {
                    if favoured {
                        favour_this_thread();
                    }
                    query_loop(&addr, &done, pause, None)
                }));
            }
        }
        if line.starts_with("{\"read\"") {
            elapsed = start.elapsed().as_secs_f64();
            break;
        }
    }
    done.store(true, Ordering::Release);
    let (job_cpu, http_cpu) = job_cpu(pid);
    let (latencies, client_cpu) = client
        .map(|c| c.join().expect("client"))
        .unwrap_or_default();
    let server_p99 = match (&served, latencies.is_empty()) {
        (Some(addr), false) => server_player_p99(addr),
        _ => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    Run {
        wall: elapsed,
        latencies,
        server_p99,
        cpu: [job_cpu, http_cpu, client_cpu],
        page: [
            received.events.load(Ordering::Relaxed),
            received.positions.load(Ordering::Relaxed),
        ],
    }
}

/// CPU seconds of process `pid` so far (all its threads, live or ended) and
/// of its HTTP thread; zeros where `/proc` does not say.
fn job_cpu(pid: u32) -> (f64, f64) {
    // SAFETY: a plain query of a system constant.
    let tick = 1.0 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let total = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The fields after the parenthesised command: utime and stime are
            // the 12th and 13th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) * tick)
        })
        .unwrap_or(0.0);
    let http = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "huntflow-http")
        })
        .and_then(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9);
    (total, http)
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a plain system call writing into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Workers of the backfill: 2, or `HUNTFLOW_BENCH_WORKERS`.
fn workers() -> usize {
    std::env::var("HUNTFLOW_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2)
}

/// Whether this process may raise a thread's priority.
fn can_favour() -> bool {
    std::thread::spawn(favour_this_thread)
        .join()
        .unwrap_or(false)
}

/// Runs the calling thread at nice -10; false without the privilege.
fn favour_this_thread() -> bool {
    // SAFETY: a plain system call; on Linux `who = 0` names the calling thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) == 0 }
}

/// The least bucket bound (ms) of the server's player-query histogram that
/// holds 99% of the queries.
fn server_player_p99(addr: &str) -> Option<f64> {
    let text = http_get(addr, "/metrics")?;
    let name = "huntflow_http_request_duration_seconds";
    let count: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_count{{endpoint=\"player\"}} ")))?
        .parse()
        .ok()?;
    let prefix = format!("{name}_bucket{{endpoint=\"player\",le=\"");
    text.lines()
        .filter_map(|l| {
            let (le, n) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((le.parse::<f64>().ok()?, n.parse::<f64>().ok()?))
        })
        .find(|&(_, n)| n >= 0.99 * count)
        .map(|(le, _)| le * 1e3)
}

/// An HTTP client whose connections stay open between requests.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The body of `GET path` on a connection of its own.
fn http_get(addr: &str, path: &str) -> Option<String> {
    get_on(&agent(), addr, path)
}

/// The body of `GET path` on one of `agent`'s connections.
fn get_on(agent: &ureq::Agent, addr: &str, path: &str) -> Option<String> {
    agent
        .get(format!("http://{addr}{path}"))
        .call()
        .ok()?
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .ok()
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

/// Query latencies (ms) and the client thread's CPU seconds. With a `gate`,
/// requests are sent only while it is set (unset, the thread parks until
/// unparked), and the CPU is counted only then.
fn query_loop(
    addr: &str,
    done: &AtomicBool,
    pause: Pause,
    gate: Option<&AtomicBool>,
) -> (Vec<f64>, f64) {
    let agent = agent();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut due = Instant::now();
    // CPU seconds while sending, and when the current spell of it began.
    let (mut cpu, mut since) = (0.0, Some(thread_cpu()));
    while !done.load(Ordering::Acquire) {
        if gate.is_some_and(|g| !g.load(Ordering::Acquire)) {
            if let Some(t) = since.take() {
                cpu += thread_cpu() - t;
            }
            std::thread::park_timeout(Duration::from_millis(50));
            due = Instant::now();
            continue;
        }
        since = since.or_else(|| Some(thread_cpu()));
        n += 1;
        let path = if n.is_multiple_of(10) {
            format!("/v1/zones/z{:03}", rng.random_range(0..100))
        } else {
            format!("/v1/players/p{}", rng.random_range(0..10_000))
        };
        let t = Instant::now();
        let mut resp = agent
            .get(format!("http://{addr}{path}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .expect("request");
        resp.body_mut().read_to_vec().expect("body");
        out.push(t.elapsed().as_secs_f64() * 1e3);
        match pause {
            Pause::After(d) => std::thread::sleep(d),
            Pause::Every(d) => {
                due = (due + d).max(Instant::now());
                std::thread::sleep(due - Instant::now());
            }
        }
    }
    if let Some(t) = since {
        cpu += thread_cpu() - t;
    }
    (out, cpu)
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let (hunt, parts) = dataset(bin, &ONE_MILLION);
    let mut loads = vec![Load::Plain, Load::Serving, Load::Rate(1000, false)];
    if can_favour() {
        loads.push(Load::Rate(1000, true));
    } else {
        eprintln!("no privilege to run the client at nice -10: that load is skipped");
    }
    loads.push(Load::FlatOut);
    loads.push(Load::Page);
    loads.retain(|l| matches!(l, Load::Plain) || wanted(l.key()));
    if loads.len() > 1 {
        rounds::rounds(bin, &hunt, &parts, &loads);
    }
    let favour = can_favour();
    let (client, trivial) = (
        Beside::Client { favoured: false },
        Beside::ClientOfTrivial { favoured: false },
    );
    let (client_favoured, trivial_favoured) = (
        Beside::Client { favoured: true },
        Beside::ClientOfTrivial { favoured: true },
    );
    let spin = Beside::Spin {
        spin: Duration::from_micros(100),
    };
    let groups: Vec<Vec<Beside>> = [
        ("windows", vec![client]),
        ("windows-trivial", vec![trivial]),
        ("windows-favoured", vec![client_favoured]),
        ("windows-favoured-trivial", vec![trivial_favoured]),
        ("windows-spin", vec![spin]),
        (
            "windows-axum",
            vec![Beside::ClientOfAxum { favoured: false }],
        ),
        ("windows-paired", vec![client, trivial]),
        (
            "windows-paired-favoured",
            vec![client_favoured, trivial_favoured],
        ),
    ]
    .into_iter()
    .filter(|(key, group)| {
        let needs_favour = group.iter().any(|b| {
            !matches!(
                b,
                Beside::Client { favoured: false }
                    | Beside::ClientOfTrivial { favoured: false }
                    | Beside::ClientOfAxum { favoured: false }
            )
        });
        wanted(key) && (favour || !needs_favour)
    })
    .map(|(_, group)| group)
    .collect();
    if !groups.is_empty() {
        let (hunt, parts) = dataset(bin, &TEN_MILLION);
        let runs = std::env::var("HUNTFLOW_BENCH_WINDOW_RUNS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        windows::compare(bin, &hunt, &parts, workers(), &groups, runs);
    }
}

/// Whether `HUNTFLOW_BENCH_LOADS` (a comma-separated list; all when unset)
/// names `key`.
fn wanted(key: &str) -> bool {
    std::env::var("HUNTFLOW_BENCH_LOADS")
        .map_or(true, |keep| keep.split(',').any(|k| k.trim() == key))
}
