//! Ingestion with and without a client, compared within one long backfill.
//!
//! Separate runs of the same backfill on this machine vary by ±10% from one
//! to the next, more than the effect measured. Here one `--serve` backfill
//! of the 10M-event dataset runs while the client is switched on and off in
//! alternate windows; the ingestion rate of each window is the advance of
//! the job's latest complete time (`as_of` of `/healthz`, event-time ms)
//! per wall second. Each window with the client is compared with the mean
//! of the two windows around it, so that slow drift of the machine cancels.
//!
//! The client shares the two cores with the job here, where a real client
//! would not. To tell its part from the server's, other runs put something
//! else in the same windows:
//!
//! - the same client querying a trivial responder in the bench process (one
//!   thread answering each request with a fixed body of a player answer's
//!   size): what the client and the loopback TCP alone cost ingestion;
//! - the same client querying a minimal axum server in the bench process,
//!   run as the job's is: what the HTTP stack costs without the job's
//!   handlers;
//! - a thread that spins for 100 µs every millisecond: what taking that much
//!   CPU from the workers, with nothing else, costs.
//!
//! Several loads may also take turns in one backfill (off, the first, off,
//! the second, ...): the client querying the job and the same client
//! querying the trivial responder, paired this way, meet the same state of
//! the machine and of the job, and the difference of their slowdowns is the
//! server's part. Each client load also reports the CPU per query of the
//! thread answering it (the job's HTTP thread, or the responder's) and of
//! the client thread.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::{difference, median, report};
use super::{favour_this_thread, http_get, job_cpu, query_loop, spawn_backfill, Pause, SERVING_ON};

/// Requests a second of every client load.
pub const RATE: u32 = 1000;

/// What one alternating run gave (or several, pooled).
#[derive(Default)]
pub struct Windows {
    /// Per window with the client: its slowdown against its neighbours
    /// (time to ingest as much, less one).
    pub slowdowns: Vec<f64>,
    /// Ingestion rates (event-time ms per second): windows without the
    /// client, and with it.
    pub rates: [Vec<f64>; 2],
    /// The client's latencies (ms).
    pub latencies: Vec<f64>,
    /// CPU seconds of the thread answering the client (the job's HTTP
    /// thread, or that of the responder in the bench) and of the client
    /// thread.
    pub cpu: [f64; 2],
}

/// The job's latest complete time, if it has one.
fn as_of(addr: &str) -> Option<u64> {
    let body = http_get(addr, "/healthz")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["as_of"].as_u64()
}

/// A free local port for a responder in the bench, its address, and a slot
/// for the thread id of the thread answering on it.
fn responder_port() -> (TcpListener, String, Arc<AtomicI32>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind responder");
    let addr = listener
        .local_addr()
        .expect("responder address")
        .to_string();
    (listener, addr, Arc::new(AtomicI32::new(0)))
}

/// A responder on a port of its own answering every request on a
/// connection with the same 400-byte JSON body; returns its address and
/// where the thread answering the latest connection puts its thread id.
pub fn trivial_responder() -> (String, Arc<AtomicI32>) {
    let (listener, addr, tid) = responder_port();
    let answering = tid.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let answering = answering.clone();
            std::thread::spawn(move || {
                // SAFETY: a plain system call naming the calling thread.
                answering.store(unsafe { libc::gettid() }, Ordering::Release);
                let _ = stream.set_nodelay(true);
                let body = filler();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut writer = &stream;
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            if writer.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, tid)
}

/// The fixed 400-byte JSON body of the responders, about a player answer's
/// size.
fn filler() -> String {
    format!("{{\"filler\":\"{}\"}}", "x".repeat(386))
}

/// A minimal axum server, as the job's is run (a current-thread tokio
/// runtime on a thread of its own), answering the job's player and zone
/// paths with [`filler`]; returns its address and where its thread puts its
/// thread id. What the HTTP stack alone costs, without the job's handlers.
pub fn axum_responder() -> (String, Arc<AtomicI32>) {
    let (listener, addr, tid) = responder_port();
    listener.set_nonblocking(true).expect("nonblocking");
    let answering = tid.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::spawn(move || {
        // SAFETY: a plain system call naming the calling thread.
        answering.store(unsafe { libc::gettid() }, Ordering::Release);
        let body: &'static str = filler().leak();
        let answer = move || async move { ([("content-type", "application/json")], body) };
        let app = axum::Router::new()
            .route("/v1/players/{id}", axum::routing::get(answer))
            .route("/v1/zones/{id}", axum::routing::get(answer));
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (addr, tid)
}

/// CPU seconds of thread `tid` of this process, if it still runs.
pub fn own_thread_cpu(tid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

/// What runs in every other window.
#[derive(Clone, Copy)]
pub enum Beside {
    /// The client querying the job; at nice -10 when favoured.
    Client { favoured: bool },
    /// The client querying [`trivial_responder`].
    ClientOfTrivial { favoured: bool },
    /// The client querying [`axum_responder`].
    ClientOfAxum { favoured: bool },
    /// A thread at nice -10 spinning this long every millisecond.
    Spin { spin: Duration },
}

impl Beside {
    /// Its name, for a client sending `rate` requests a second.
    pub fn name(self, rate: u32) -> String {
        let nice = |f: bool| if f { ", nice -10" } else { "" };
        match self {
            Beside::Client { favoured } => format!("client {rate}/s{}", nice(favoured)),
            Beside::ClientOfTrivial { favoured } => {
                format!("client {rate}/s{} -> trivial responder", nice(favoured))
            }
            Beside::ClientOfAxum { favoured } => {
                format!("client {rate}/s{} -> minimal axum server", nice(favoured))
            }
            Beside::Spin { spin } => format!("spin {} us every ms, nice -10", spin.as_micros()),
        }
    }
}

/// Spins for `spin` every millisecond while `on` (parked until unparked
/// otherwise), until `done`.
fn spin_loop(spin: Duration, on: &AtomicBool, done: &AtomicBool) {
    let mut due = Instant::now();
    while !done.load(Ordering::Acquire) {
        if !on.load(Ordering::Acquire) {
            std::thread::park_timeout(Duration::from_millis(50));
            due = Instant::now();
            continue;
        }
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
        due = (due + Duration::from_millis(1)).max(Instant::now());
        std::thread::sleep(due - Instant::now());
    }
}

/// A load's thread and what it needs to report.
struct Running {
    on: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<f64>, f64)>,
    /// The answering thread of the responder in the bench, for a client of
    /// one.
    responder: Option<Arc<AtomicI32>>,
}

/// Starts `beside` (a client at `rate` requests a second to the job at
/// `addr`), parked while its `on` is unset (unpark it on setting it), until
/// `done`.
fn start(beside: Beside, addr: &str, rate: u32, done: &Arc<AtomicBool>) -> Running {
    let on = Arc::new(AtomicBool::new(false));
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let (target, favoured, responder) = match beside {
        Beside::Client { favoured } => (addr.to_string(), favoured, None),
        Beside::ClientOfTrivial { favoured } => {
            let (target, tid) = trivial_responder();
            (target, favoured, Some(tid))
        }
        Beside::ClientOfAxum { favoured } => {
            let (target, tid) = axum_responder();
            (target, favoured, Some(tid))
        }
        Beside::Spin { .. } => (String::new(), true, None),
    };
    let thread = {
        let (on, done) = (on.clone(), done.clone());
        std::thread::spawn(move || {
            if favoured {
                favour_this_thread();
            }
            match beside {
                Beside::Spin { spin } => {
                    spin_loop(spin, &on, &done);
                    (Vec::new(), 0.0)
                }
                _ => query_loop(&target, &done, Pause::Every(period), Some(&on)),
            }
        })
    };
    Running {
        on,
        thread,
        responder,
    }
}

/// One backfill over `parts` with `workers` workers and each of `besides`
/// running in its turn in every other window (off, the first, off, the
/// second, ...; a client at `rate` requests a second); what each gave.
pub fn run(
    bin: &str,
    hunt: &std::path::Path,
    parts: &[std::path::PathBuf],
    workers: usize,
    rate: u32,
    besides: &[Beside],
    window: Duration,
) -> Vec<Windows> {
    let mut child = spawn_backfill(bin, hunt, parts, workers, true);
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = lines
        .by_ref()
        .find_map(|l| Some(l.ok()?.strip_prefix(SERVING_ON)?.to_string()))
        .expect("the job says where it serves");
    let finished = Arc::new(AtomicBool::new(false));
    let drain = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.starts_with("{\"read\"") {
                    finished.store(true, Ordering::Release);
                }
            }
        })
    };
    let done = Arc::new(AtomicBool::new(false));
    let loads: Vec<Running> = besides
        .iter()
        .map(|&b| start(b, &addr, rate, &done))
        .collect();
    while as_of(&addr).is_none() && !finished.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let http_before = job_cpu(child.id()).1;
    // (the load on, if any; ingestion rate) per window, the first two
    // (warm-up) left out.
    let mut measured = Vec::new();
    let mut mark = (Instant::now(), as_of(&addr).unwrap_or(0));
    for k in 0usize.. {
        let turn = (k % 2 == 1).then(|| (k / 2) % loads.len());
        for (i, load) in loads.iter().enumerate() {
            load.on.store(turn == Some(i), Ordering::Release);
            load.thread.thread().unpark();
        }
        std::thread::sleep(window);
        let now = (Instant::now(), as_of(&addr).unwrap_or(0));
        if finished.load(Ordering::Acquire) {
            break;
        }
        let advance = now.1.saturating_sub(mark.1) as f64 / (now.0 - mark.0).as_secs_f64();
        if k >= 2 {
            measured.push((turn, advance));
        }
        mark = now;
    }
    // The answering threads' CPU, before the clients stop and the job ends.
    let http = job_cpu(child.id()).1 - http_before;
    let answering: Vec<f64> = besides
        .iter()
        .zip(&loads)
        .map(|(b, l)| match (b, &l.responder) {
            (Beside::Client { .. }, _) => http,
            (_, Some(tid)) => own_thread_cpu(tid.load(Ordering::Acquire)).unwrap_or(0.0),
            _ => 0.0,
        })
        .collect();
    done.store(true, Ordering::Release);
    for load in &loads {
        load.thread.thread().unpark();
    }
    let ran: Vec<(Vec<f64>, f64)> = loads
        .into_iter()
        .map(|l| l.thread.join().expect("load thread"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let _ = drain.join();
    let off: Vec<f64> = measured
        .iter()
        .filter(|m| m.0.is_none())
        .map(|m| m.1)
        .collect();
    ran.into_iter()
        .zip(answering)
        .enumerate()
        .map(|(i, ((latencies, client_cpu), answering_cpu))| Windows {
            slowdowns: measured
                .windows(3)
                .filter(|w| w[1].0 == Some(i))
                .map(|w| (w[0].1 + w[2].1) / 2.0 / w[1].1 - 1.0)
                .collect(),
            rates: [
                off.clone(),
                measured
                    .iter()
                    .filter(|m| m.0 == Some(i))
                    .map(|m| m.1)
                    .collect(),
            ],
            latencies,
            cpu: [answering_cpu, client_cpu],
        })
        .collect()
}

/// Runs every group of `groups` `runs` times, in turn (each group's k-th
/// run before any group's next one, so that drift of the machine reaches
/// every group alike); the loads of a group take turns in one backfill.
/// Prints each run; with more than one run, then each load's windows pooled
/// over its runs. For a group of two loads, also the difference of their
/// median slowdowns, per run and pooled.
pub fn compare(
    bin: &str,
    hunt: &std::path::Path,
    parts: &[std::path::PathBuf],
    workers: usize,
    groups: &[Vec<Beside>],
    runs: usize,
) {
    let label = |group: &[Beside], i: usize| {
        let name = group[i].name(RATE);
        match group.len() {
            1 => name,
            _ => {
                let others: Vec<String> = (0..group.len())
                    .filter(|&j| j != i)
                    .map(|j| group[j].name(RATE))
                    .collect();
                format!("{name} (taking turns with {})", others.join(", "))
            }
        }
    };
    // Per group, per load: its windows pooled, and each run's slowdowns.
    let mut pooled: Vec<Vec<Pool>> = groups
        .iter()
        .map(|g| g.iter().map(|_| Pool::default()).collect())
        .collect();
    for _ in 0..runs {
        for (group, pool) in groups.iter().zip(&mut pooled) {
            let got = run(
                bin,
                hunt,
                parts,
                workers,
                RATE,
                group,
                Duration::from_secs(1),
            );
            for (i, (w, p)) in got.into_iter().zip(pool.iter_mut()).enumerate() {
                report(workers, &label(group, i), &w, None);
                p.runs.push(w.slowdowns.clone());
                p.all.slowdowns.extend(w.slowdowns);
                for (a, b) in p.all.rates.iter_mut().zip(w.rates) {
                    a.extend(b);
                }
                p.all.latencies.extend(w.latencies);
                for (a, b) in p.all.cpu.iter_mut().zip(w.cpu) {
                    *a += b;
                }
            }
        }
    }
    for (group, pool) in groups.iter().zip(&pooled) {
        if runs > 1 {
            for (i, p) in pool.iter().enumerate() {
                let medians: Vec<f64> = p.runs.iter().filter_map(|r| median(r)).collect();
                report(workers, &label(group, i), &p.all, Some(&medians));
            }
        }
        if let [first, second] = &pool[..] {
            difference(workers, group, [&first.runs, &second.runs]);
        }
    }
}

/// One load's runs of [`compare`].
#[derive(Default)]
struct Pool {
    /// Its windows, pooled.
    all: Windows,
    /// Each run's slowdowns.
    runs: Vec<Vec<f64>>,
}
