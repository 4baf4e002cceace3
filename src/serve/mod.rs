//! The analysts' HTTP API (`--serve ADDR`): point queries at one logical
//! time, resumable subscriptions (Server-Sent Events), Prometheus metrics.
//!
//! ```text
//!  dataflow ─► notification sink (worker 0) ─► output
//!                   │ Tee: each completed time ──► LiveState (presence, eligibility, occupancy)
//!                   │                         └──► Feed (retained, ids T-I) ──► /v1/subscribe
//!  facts ─► player views ─► views sink (worker 0) ──► LiveState (position, readings, solves, claims)
//!                                                        │ applied per time once both passed it
//!  axum on its own tokio thread ◄── read lock ───────────┘  /v1/players, /v1/zones, /v1/rewards, /metrics
//! ```

pub mod feed;
pub mod http;
pub mod metrics;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::dataflow::facts::PlayerView;
use crate::dataflow::Details;
use crate::event::Id;
use crate::hunt::Hunt;
use crate::sink::{Notification, NotificationOutput, PlayerKind};
use crate::source::Stats;
use feed::{Feed, Retention};
use metrics::Metrics;
use state::LiveState;

/// Everything the API reads, shared with the job.
pub struct Live {
    pub hunt: Arc<Hunt>,
    pub state: RwLock<LiveState>,
    pub feed: Feed,
    pub metrics: Metrics,
    pub stats: Arc<Stats>,
}

impl Live {
    pub fn new(hunt: Arc<Hunt>, stats: Arc<Stats>, retention: Retention) -> Arc<Self> {
        stats
            .track
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Live {
            state: RwLock::new(LiveState::new(hunt.clone())),
            hunt,
            feed: Feed::new(retention),
            metrics: Metrics::default(),
            stats,
        })
    }
}

impl Live {
    /// Starts the queryable state afresh (a restarted job rebuilds it from
    /// its snapshot); the feed keeps its events and skips the ones it has.
    pub fn reset(&self) {
        if let Ok(mut s) = self.state.write() {
            *s = LiveState::new(self.hunt.clone());
        }
    }
}

/// A notification output that also feeds the API. Times below `below`
/// (state restored from a snapshot, re-derived) reach only the live state.
pub struct Tee {
    pub inner: Box<dyn NotificationOutput>,
    pub live: Arc<Live>,
    pub below: u64,
}

impl NotificationOutput for Tee {
    fn write_time(&mut self, hunt: &Hunt, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        self.inner.write_time(hunt, time, ns)?;
        if let Ok(mut s) = self.live.state.write() {
            s.notes(time, ns);
        }
        if time < self.below {
            return Ok(());
        }
        for n in ns {
            let k = match n {
                Notification::Player { kind, .. } => match kind {
                    PlayerKind::Exit => 0,
                    PlayerKind::Enter => 1,
                    PlayerKind::Ineligible => 2,
                    PlayerKind::Eligible => 3,
                },
                Notification::Occupancy { .. } => 4,
            };
            self.live.metrics.notifications[k].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.live.feed.notifications(hunt, time, ns);
        Ok(())
    }

    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()> {
        self.inner.progress(frontier)?;
        if let Some(f) = frontier {
            if let Some(at) = self.live.stats.completed_at(f) {
                self.live.metrics.completion.observe(at.elapsed());
            }
        }
        if let Ok(mut s) = self.live.state.write() {
            s.notes_frontier(frontier);
        }
        self.live.feed.progress(frontier);
        Ok(())
    }
}

/// Routes the player views to worker 0 and hands each completed time to
/// the live state (`live` is `Some` on worker 0).
pub fn views_sink(details: Details<'_>, live: Option<Arc<Live>>) {
    let mut pending: BTreeMap<u64, state::Views> = BTreeMap::new();
    let mut last: Option<Option<u64>> = None;
    details.sink(
        Exchange::new(|_: &(Id, u64, Option<Box<PlayerView>>)| 0),
        "ViewsSink",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for (player, time, view) in data.drain(..) {
                    pending.entry(time).or_default().push((player, view));
                }
            });
            let Some(live) = live.as_ref() else {
                pending.clear();
                return;
            };
            let limit = frontier.frontier().first().copied();
            if last == Some(limit) && pending.is_empty() {
                return;
            }
            let Ok(mut state) = live.state.write() else {
                return;
            };
            while let Some(entry) = pending.first_entry() {
                if limit.is_some_and(|f| *entry.key() >= f) {
                    break;
                }
                let time = *entry.key();
                // Within a time, the last view of a player wins.
                let views = entry.remove();
                state.views(time, views);
            }
            if last != Some(limit) {
                state.views_frontier(limit);
                last = Some(limit);
            }
        },
    );
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub retention: Retention,
}

impl ServeOptions {
    pub fn new(addr: SocketAddr) -> Self {
        ServeOptions {
            addr,
            retention: Retention {
                events: 100_000,
                age: None,
            },
        }
    }
}

/// Binds `addr` and serves the API on a thread of its own; returns the
/// address bound (useful with port 0).
pub fn start(addr: SocketAddr, live: Arc<Live>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("huntflow-http")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("huntflow-serve".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("huntflow: serving: {e}");
                        return;
                    }
                };
                if let Err(e) = axum::serve(listener, http::router(live)).await {
                    eprintln!("huntflow: serving: {e}");
                }
            })
        })?;
    Ok(bound)
}

/// Waits until the process is stopped (after a finished backfill that
/// keeps serving).
pub fn park_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Times one request for the metrics.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Self {
        Timer(Instant::now())
    }

    pub fn done(self, live: &Live, endpoint: &'static str) {
        live.metrics.http(endpoint, self.0.elapsed());
    }
}
