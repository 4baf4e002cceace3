//! The analysts' HTTP API (`--serve ADDR`): point queries at one logical
//! time, resumable subscriptions (Server-Sent Events), Prometheus metrics,
//! and the live map page.
//!
//! ```text
//!  facts (each worker): per-player state in striped locks ◄── read in place ── /v1/players/{id}[/why/{r}]
//!    │                                                   (at max(settled, through)), /v1/positions
//!  dataflow ─► notification sink (worker 0) ─► output
//!                   │ Tee: each completed time ──► LiveState (zone members, eligible players, occupancy)
//!                   │                         │      ◄── read lock ── /v1/zones, /v1/rewards, /healthz
//!                   │                         └──► Feed (retained, ids T-I) ──► /v1/subscribe
//!  axum on its own tokio thread; /metrics reads counters and sizes; / is the map page
//! ```
//!
//! In a cluster, process 0 serves the API and reaches the players of the
//! other processes through the cluster's connections ([`cluster`]).

pub mod auth;
pub mod cluster;
pub mod feed;
pub mod http;
pub mod map;
pub mod metrics;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::dataflow::player_store::{Peers, PlayerAnswer, PlayerStore};
use crate::input::stats::Stats;
use crate::model::versions::{SharedVersions, Version};
use crate::output::order::Notification;
use crate::output::sink::NotificationOutput;
use crate::output::OutputError;
use feed::{Feed, Retention};
use metrics::Metrics;
use state::LiveState;

/// The store for one worker's players: read by the API when serving (see
/// [`Live::players_of_worker`]), the operator's alone otherwise.
pub fn worker_players(live: Option<&Live>) -> Arc<PlayerStore> {
    match live {
        Some(live) => live.players_of_worker(),
        None => Arc::new(PlayerStore::new(false)),
    }
}

/// Everything the API reads, shared with the job.
pub struct Live {
    /// The hunt versions (answers follow the one in effect at `as_of`).
    pub versions: SharedVersions,
    pub state: RwLock<LiveState>,
    /// Each worker's players, as its facts operator keeps them.
    players: RwLock<Vec<Arc<PlayerStore>>>,
    /// How far those stores have got, for listing positions at one time.
    peers: Arc<Peers>,
    /// Held while positions are listed (one listing at a time).
    reading: Mutex<()>,
    /// In a cluster: how to reach the players of the other processes.
    cluster: std::sync::OnceLock<Arc<cluster::Plane>>,
    pub feed: Feed,
    pub metrics: Metrics,
    pub stats: Arc<Stats>,
}

impl Live {
    pub fn new(versions: SharedVersions, stats: Arc<Stats>, retention: Retention) -> Arc<Self> {
        stats
            .track
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Live {
            state: RwLock::new(LiveState::new()),
            players: RwLock::new(Vec::new()),
            peers: Arc::new(Peers::new()),
            reading: Mutex::new(()),
            cluster: std::sync::OnceLock::new(),
            versions,
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
            *s = LiveState::new();
        }
        if let Ok(mut p) = self.players.write() {
            p.clear();
        }
        self.peers.clear();
    }

    /// A new store for the players of one worker's facts operator, which
    /// the API reads from then on.
    pub fn players_of_worker(&self) -> Arc<PlayerStore> {
        let players = Arc::new(PlayerStore::serving(&self.peers));
        if let Ok(mut p) = self.players.write() {
            p.push(players.clone());
        }
        players
    }

    /// Every worker's store.
    fn players_read(&self) -> RwLockReadGuard<'_, Vec<Arc<PlayerStore>>> {
        self.players.read().expect("players lock")
    }

    /// `player` as its worker knows it (`None`: unknown).
    pub fn player(&self, player: &str) -> Option<PlayerAnswer> {
        let stores = self.players.read().ok()?;
        stores.iter().find_map(|s| s.answer(player))
    }

    /// The hunt version in effect at `t` (the start hunt before any time
    /// is complete).
    pub fn version_at(&self, t: Option<u64>) -> Arc<Version> {
        let versions = self.versions.read().expect("versions lock");
        versions.at(t.unwrap_or(0)).clone()
    }

    /// Players with live state, and of those with a position.
    pub fn player_sizes(&self) -> (usize, usize) {
        let stores = self.players.read().expect("players lock");
        stores
            .iter()
            .map(|s| s.sizes())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

/// The tap of the output chain that feeds the API: the live state from
/// every completed time (restored state included, which rebuilds it after
/// a restart), the subscription feed and the metrics from what is written.
pub struct LiveTap {
    live: Arc<Live>,
    /// The frontier last seen.
    last: Option<Option<u64>>,
}

impl LiveTap {
    pub fn new(live: Arc<Live>) -> Self {
        LiveTap { live, last: None }
    }

    fn note(&self, time: u64, ns: &[Notification]) {
        if let Ok(mut s) = self.live.state.write() {
            s.notes(time, ns);
        }
    }
}

impl NotificationOutput for LiveTap {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        self.note(time, ns);
        for n in ns {
            self.live.metrics.notifications[metrics::kind_index(n)]
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.live.feed.notifications(time, ns);
        Ok(())
    }

    fn restored(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        self.note(time, ns);
        Ok(())
    }

    fn progress_due_in(&self) -> Option<std::time::Duration> {
        self.live.feed.progress_due_in()
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        let live = &self.live;
        if self.last == Some(frontier) {
            // Only the feed's held-back mark is due.
            live.feed.progress(frontier);
            return Ok(());
        }
        self.last = Some(frontier);
        if let Some(f) = frontier {
            if let Some(at) = live.stats.completed_at(f) {
                live.metrics.completion.observe(at.elapsed().as_secs_f64());
            }
        }
        if let Ok(mut s) = live.state.write() {
            s.frontier(frontier);
        }
        live.feed.progress(frontier);
        Ok(())
    }
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub retention: Retention,
    /// Require the bearer token this file holds (all endpoints but
    /// `/healthz`).
    pub token_file: Option<PathBuf>,
}

impl ServeOptions {
    pub fn new(addr: SocketAddr) -> Self {
        ServeOptions {
            addr,
            retention: Retention {
                events: 100_000,
                age: None,
            },
            token_file: None,
        }
    }

    /// Serves the API over the state of a job on the hunt `versions` and
    /// says on standard error where (`serving on http://ADDR`, the line
    /// scripts wait for). An unreadable or empty token file is an error
    /// naming it.
    pub fn launch(
        &self,
        versions: SharedVersions,
        stats: Arc<Stats>,
    ) -> std::io::Result<Arc<Live>> {
        let token = match &self.token_file {
            None => None,
            Some(path) => Some(Arc::new(auth::Token::load(path)?)),
        };
        let live = Live::new(versions, stats, self.retention);
        let bound = start(self.addr, http::router(live.clone(), token))?;
        eprintln!("serving on http://{bound}");
        Ok(live)
    }
}

/// Binds `addr` and serves `app` on a thread of its own; returns the
/// address bound (useful with port 0).
fn start(addr: SocketAddr, app: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("huntflow-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("huntflow: serving: {e}");
                        return;
                    }
                };
                if let Err(e) = axum::serve(listener, app).await {
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
