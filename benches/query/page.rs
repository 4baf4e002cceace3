//! One open map page beside a backfill: what the page's script
//! (`src/serve/map/map.js`) asks for. `/v1/hunt` and `/v1/zones` once; the
//! subscription stream from the zones' `as_of` on; and every second
//! `/healthz` and the positions changed since the last round's time (every
//! page of them, 10,000 a page).

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::windows::own_thread_cpu;
use super::{agent, get_on as get, thread_cpu};

/// How often the page polls, and how many positions it asks for at once.
const POLL: Duration = Duration::from_secs(1);
const PAGE: usize = 10_000;

/// What the page received besides its positions rounds.
#[derive(Default)]
pub struct Received {
    /// Subscription events (notifications and progress marks).
    pub events: AtomicU64,
    /// Positions and removals listed.
    pub positions: AtomicU64,
}

/// Reads the subscription stream until `done` (a progress mark arrives at
/// least every 100 ms while the job ingests), counting its events.
fn stream(addr: &str, from: Option<u64>, done: &AtomicBool, got: &Received) {
    let path = match from {
        Some(t) => format!("/v1/subscribe?last_event_id={t}-0"),
        None => "/v1/subscribe".to_string(),
    };
    let Ok(resp) = agent().get(format!("http://{addr}{path}")).call() else {
        return;
    };
    for line in BufReader::new(resp.into_body().into_reader())
        .lines()
        .map_while(Result::ok)
    {
        if line.starts_with("event: ") {
            got.events.fetch_add(1, Ordering::Relaxed);
        }
        if done.load(Ordering::Acquire) {
            return;
        }
    }
}

/// One round: every page of the positions changed since `since`; returns
/// the first page's `as_of`.
fn positions(agent: &ureq::Agent, addr: &str, since: Option<u64>, got: &Received) -> Option<u64> {
    let mut after: Option<String> = None;
    let mut first = None;
    loop {
        let mut path = format!("/v1/positions?limit={PAGE}");
        if let Some(s) = since {
            path += &format!("&since={s}");
        }
        if let Some(a) = &after {
            path += &format!("&after={a}");
        }
        let v: serde_json::Value = serde_json::from_str(&get(agent, addr, &path)?).ok()?;
        first = first.or(Some(v["as_of"].as_u64()));
        let n = v["positions"].as_array().map_or(0, Vec::len)
            + v["removed"].as_array().map_or(0, Vec::len);
        got.positions.fetch_add(n as u64, Ordering::Relaxed);
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return first.flatten(),
        }
    }
}

/// The page against the job at `addr` until `done`: each positions
/// round's latency (ms), and the CPU seconds of the page's two threads.
pub fn run(addr: &str, done: &Arc<AtomicBool>, got: &Arc<Received>) -> (Vec<f64>, f64) {
    let cpu = thread_cpu();
    let agent = agent();
    let _ = get(&agent, addr, "/v1/hunt");
    let zones = get(&agent, addr, "/v1/zones")
        .and_then(|z| serde_json::from_str::<serde_json::Value>(&z).ok());
    let from = zones.and_then(|z| z["as_of"].as_u64());
    let tid = Arc::new(AtomicI32::new(0));
    {
        let (addr, done, got, tid) = (addr.to_string(), done.clone(), got.clone(), tid.clone());
        std::thread::spawn(move || {
            // SAFETY: a plain system call naming the calling thread.
            tid.store(unsafe { libc::gettid() }, Ordering::Release);
            stream(&addr, from, &done, &got);
        });
    }
    let mut rounds = Vec::new();
    let mut since = None;
    let mut due = Instant::now();
    while !done.load(Ordering::Acquire) {
        let t = Instant::now();
        since = positions(&agent, addr, since, got).or(since);
        rounds.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = get(&agent, addr, "/healthz");
        due += POLL;
        while Instant::now() < due && !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let streaming = own_thread_cpu(tid.load(Ordering::Acquire)).unwrap_or(0.0);
    (rounds, thread_cpu() - cpu + streaming)
}
