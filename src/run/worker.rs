//! The workers of the continuous job: building the dataflow from a snapshot,
//! the loop that steps it, and the snapshot protocol.
//!
//! Snapshot protocol (all workers of the process take part):
//! 0. after a start from a snapshot, none is taken until the job has
//!    re-created what its outputs held beyond that snapshot ([`Held`]);
//! 1. worker 0 sets the pause epoch `N`; each source stops reading at its
//!    next activation, and each worker acknowledges `N` from its loop;
//! 2. with every source paused, the frontier `F` is the least partition
//!    frontier; the dataflow runs until the sink has written all times
//!    below `F` (nothing at or above `F` can complete meanwhile);
//! 3. each worker saves its part: its partitions (admission state, next
//!    offset, accepted events at or above `F`) and its per-player state,
//!    which then covers exactly the times below `F`;
//! 4. worker 0 flushes the outputs, notes where each ends, commits the
//!    snapshot and lifts the pause.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use super::resume::Held;
use super::snapshot::{DerivedMark, Loaded, Manifest, PartFile, StateDir};
use super::{Durable, RunError, RunOptions};
use crate::dataflow::facts::{player_hash, FactsHandle, Restore, SavedPlayer};
use crate::derived::{SharedDerived, WithDerived};
use crate::hunt::Hunt;
use crate::kafka::admin::Admin;
use crate::kafka::source::{
    self as ksource, Advance, RejectWriter, SavedPartition, Shared, SourceConfig, SourceHandle,
    Start,
};
use crate::kafka::KafkaConfig;
use crate::sink::{self, ErrorSlot, NotificationOutput};
use crate::source::Stats;

/// Everything the job is made of, opened and checked.
pub(crate) struct JobParts {
    pub opts: RunOptions,
    pub hunt: Arc<Hunt>,
    pub cfg: KafkaConfig,
    pub state: Arc<StateDir>,
    pub loaded: Option<Loaded>,
    pub advances: Vec<Advance>,
    pub input_partitions: u32,
    pub output: Box<dyn NotificationOutput + Send>,
    /// Notifications, rejects, then with `--derived` presence and eligibility
    /// (the order of the snapshot marks).
    pub durable: Vec<Durable>,
    /// What the outputs held beyond the snapshot: no snapshot until passed.
    pub held: Held,
    /// With `--derived`: the interval files (written by worker 0's sink).
    pub derived: Option<SharedDerived>,
    pub rejects: Arc<dyn RejectWriter>,
    pub written: Arc<AtomicU64>,
    pub stats: Arc<Stats>,
    pub live: Option<Arc<crate::serve::Live>>,
}

/// What one worker starts from.
#[derive(Default)]
struct WorkerStart {
    partitions: Vec<SavedPartition>,
    players: Vec<SavedPlayer>,
}

/// A partition's next offset, frontier and latest time.
type PartitionStatus = (Option<i64>, u64, Option<u64>);

/// Shared by the workers while the job runs.
struct Coordinator {
    workers: usize,
    shared: Arc<Shared>,
    written: Arc<AtomicU64>,
    /// Per worker: the last pause epoch it acknowledged / saved.
    acked: Vec<AtomicU64>,
    saved: Mutex<BTreeMap<usize, (u64, PartFile)>>,
    tmp: Mutex<Option<(u64, PathBuf)>>,
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
    status: Mutex<BTreeMap<u32, PartitionStatus>>,
}

impl Coordinator {
    fn fail(&self, message: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(message);
        }
        self.stop.store(true, Ordering::Release);
    }

    /// The frontier of a paused job: the least partition frontier.
    fn paused_frontier(&self) -> u64 {
        let low = self
            .shared
            .lows
            .iter()
            .map(|l| l.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        if low == u64::MAX {
            self.written.load(Ordering::Acquire)
        } else {
            low
        }
    }
}

pub(crate) struct Job {
    parts: JobParts,
}

impl Job {
    pub fn new(parts: JobParts) -> Self {
        Job { parts }
    }

    pub fn run(self) -> Result<(), RunError> {
        let JobParts {
            opts,
            hunt,
            cfg,
            state,
            loaded,
            advances,
            input_partitions,
            output,
            durable,
            held,
            derived,
            rejects,
            written,
            stats,
            live,
        } = self.parts;
        let workers = opts.workers;
        let (frontier, epoch, starts) = split_start(loaded, workers);
        let starts: Vec<Mutex<Option<WorkerStart>>> =
            starts.into_iter().map(|s| Mutex::new(Some(s))).collect();
        let shared = Arc::new(Shared::new(workers, input_partitions));
        let coord = Arc::new(Coordinator {
            workers,
            shared: shared.clone(),
            written,
            acked: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            saved: Mutex::new(BTreeMap::new()),
            tmp: Mutex::new(None),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            status: Mutex::new(BTreeMap::new()),
        });
        watch_partitions(&cfg, &opts.topic, shared.clone(), coord.clone());
        let errors: ErrorSlot = Arc::new(Mutex::new(None));
        let output = Mutex::new(Some(output));
        let durable = Arc::new(durable);
        let max_ahead_ms = hunt.max_lateness_ms.saturating_mul(10).max(60_000);
        let job_coord = coord.clone();

        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let start = starts[index]
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_default();
            let out = if index == 0 {
                output.lock().ok().and_then(|mut o| o.take())
            } else {
                None
            };
            let probe = ProbeHandle::new();
            if let Some(live) = &live {
                crate::serve::metrics::count_arrangements(worker, live.clone());
            }
            let built = worker.dataflow::<u64, _, _>(|scope| {
                let config = SourceConfig {
                    kafka: cfg.clone(),
                    topic: opts.topic.clone(),
                    group: format!("huntflow-{}", opts.topic),
                    idle: opts.idle,
                    max_ahead_ms,
                    hunt: hunt.clone(),
                    stats: stats.clone(),
                    rejects: rejects.clone(),
                    log: state.clone(),
                    shared: shared.clone(),
                    probe: probe.clone(),
                };
                let source_start = Start {
                    partitions: start.partitions,
                    advances: advances.clone(),
                    frontier,
                };
                let (events, source_handle) = ksource::build(scope, config, source_start)?;
                let restore = (frontier > 0).then(|| Restore {
                    players: start.players,
                    time: frontier - 1,
                });
                let (changes, facts_handle) = crate::dataflow::build_with(
                    scope,
                    events,
                    hunt.clone(),
                    opts.slice,
                    restore,
                    crate::serve::worker_players(live.as_deref()),
                );
                let changes = changes.inner.probe_with(&probe);
                let out = out.map(|o| {
                    let o = match &live {
                        Some(live) => Box::new(crate::serve::Tee {
                            inner: o,
                            live: live.clone(),
                            below: frontier,
                        }) as Box<dyn NotificationOutput>,
                        None => o as Box<dyn NotificationOutput>,
                    };
                    match &derived {
                        Some(d) => Box::new(WithDerived {
                            inner: o,
                            derived: d.clone(),
                        }),
                        None => o,
                    }
                });
                sink::notification_sink(changes, hunt.clone(), out, errors.clone());
                Ok::<_, crate::kafka::KafkaError>((source_handle, facts_handle))
            });
            let (sources, facts) = match built {
                Ok(handles) => handles,
                Err(e) => {
                    coord.fail(e.to_string());
                    return;
                }
            };
            let mut me = WorkerLoop {
                index,
                coord: coord.clone(),
                state: state.clone(),
                sources,
                facts,
                durable: durable.clone(),
                topic: opts.topic.clone(),
                every: opts.snapshot_every,
                last: Instant::now(),
                epoch,
                held: (index == 0).then(|| held.clone()),
                derived: if index == 0 { derived.clone() } else { None },
                acked: 0,
                saved: 0,
                committed: epoch,
                status_at: Instant::now(),
                warned: None,
                stats: stats.clone(),
                errors: errors.clone(),
            };
            while !coord.stop.load(Ordering::Acquire) {
                worker.step_or_park(Some(Duration::from_millis(1)));
                me.tick();
            }
        })
        .map_err(RunError::Failed)?;
        for r in guards.join() {
            r.map_err(RunError::Failed)?;
        }
        Err(RunError::Failed(
            job_coord
                .failure
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_else(|| "stopped".into()),
        ))
    }
}

/// Splits a loaded snapshot by worker: partitions by `p % workers`,
/// players by the same routing as the dataflow's exchange.
fn split_start(loaded: Option<Loaded>, workers: usize) -> (u64, u64, Vec<WorkerStart>) {
    let mut starts: Vec<WorkerStart> = (0..workers).map(|_| WorkerStart::default()).collect();
    let Some(loaded) = loaded else {
        return (0, 0, starts);
    };
    for p in loaded.partitions {
        starts[p.partition as usize % workers].partitions.push(p);
    }
    for player in loaded.players {
        let w = (player_hash(player.player()) % workers as u64) as usize;
        starts[w].players.push(player);
    }
    (loaded.manifest.frontier, loaded.manifest.epoch, starts)
}

/// Refreshes the topic's partition count every few seconds.
fn watch_partitions(cfg: &KafkaConfig, topic: &str, shared: Arc<Shared>, coord: Arc<Coordinator>) {
    let cfg = cfg.clone();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let Ok(admin) = Admin::new(&cfg) else { return };
        while !coord.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_secs(5));
            if let Ok(Some(n)) = admin.partitions(&topic) {
                shared.partitions.fetch_max(n, Ordering::Relaxed);
            }
        }
    });
}

struct WorkerLoop {
    index: usize,
    coord: Arc<Coordinator>,
    state: Arc<StateDir>,
    sources: SourceHandle,
    facts: FactsHandle,
    durable: Arc<Vec<Durable>>,
    topic: String,
    every: Duration,
    last: Instant,
    /// The last snapshot epoch started.
    epoch: u64,
    /// Worker 0: what the outputs held beyond the snapshot, until passed.
    held: Option<Held>,
    /// Worker 0: the derived interval files.
    derived: Option<SharedDerived>,
    acked: u64,
    saved: u64,
    /// The last snapshot committed.
    committed: u64,
    status_at: Instant,
    warned: Option<Instant>,
    stats: Arc<Stats>,
    errors: ErrorSlot,
}

impl WorkerLoop {
    fn tick(&mut self) {
        let coord = self.coord.clone();
        let pause = coord.shared.pause.load(Ordering::Acquire);
        if pause != 0 {
            if self.acked < pause {
                // From now on this worker's source reads nothing.
                self.acked = pause;
                coord.acked[self.index].store(pause, Ordering::Release);
            }
            let all = coord
                .acked
                .iter()
                .all(|a| a.load(Ordering::Acquire) == pause);
            if all && self.saved < pause {
                let f = coord.paused_frontier();
                if coord.written.load(Ordering::Acquire) >= f {
                    self.save(pause, f);
                }
            }
            if self.index == 0 {
                self.commit_if_ready(pause);
            }
        } else if self.index == 0 && self.last.elapsed() >= self.every && self.held_passed() {
            self.epoch += 1;
            coord.shared.pause.store(self.epoch, Ordering::Release);
        }
        if self.status_at.elapsed() >= Duration::from_secs(1) {
            self.status_at = Instant::now();
            self.status();
        }
    }

    /// Whether the job has re-created what the outputs held beyond the
    /// snapshot it started from (see [`Held`]); says so while it waits.
    fn held_passed(&mut self) -> bool {
        let Some(held) = &self.held else {
            return true;
        };
        self.publish();
        let written = self.coord.written.load(Ordering::Acquire);
        let passed = self.coord.status.lock().is_ok_and(|status| {
            held.passed(written, |p| status.get(&p).and_then(|(next, _, _)| *next))
        });
        if passed {
            self.held = None;
        } else if self.last.elapsed() > self.every + Duration::from_secs(30)
            && self
                .warned
                .is_none_or(|w| w.elapsed() > Duration::from_secs(30))
        {
            eprintln!(
                "huntflow: the next snapshot waits until the job has re-created what its outputs held when it started ({held:?}; written below {written})"
            );
            self.warned = Some(Instant::now());
        }
        passed
    }

    fn tmp_dir(&self, epoch: u64) -> Result<PathBuf, String> {
        let mut tmp = self.coord.tmp.lock().map_err(|_| "lock poisoned")?;
        match &*tmp {
            Some((e, path)) if *e == epoch => Ok(path.clone()),
            _ => {
                let path = self.state.begin(epoch).map_err(|e| e.to_string())?;
                *tmp = Some((epoch, path.clone()));
                Ok(path)
            }
        }
    }

    fn save(&mut self, epoch: u64, frontier: u64) {
        self.publish();
        let result = self.tmp_dir(epoch).and_then(|tmp| {
            StateDir::write_part(&tmp, self.index, &self.sources, &self.facts, frontier)
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(part) => {
                self.saved = epoch;
                if let Ok(mut saved) = self.coord.saved.lock() {
                    saved.insert(self.index, (epoch, part));
                }
            }
            Err(e) => self.coord.fail(format!("writing a snapshot: {e}")),
        }
    }

    fn commit_if_ready(&mut self, epoch: u64) {
        let coord = self.coord.clone();
        let files: Vec<PartFile> = {
            let Ok(saved) = coord.saved.lock() else {
                return;
            };
            if saved.len() < coord.workers || saved.values().any(|(e, _)| *e != epoch) {
                return;
            }
            saved.values().map(|(_, f)| f.clone()).collect()
        };
        let frontier = coord.paused_frontier();
        let mut marks = Vec::new();
        for d in self.durable.iter() {
            match d.flush() {
                Ok(m) => marks.push(m),
                Err(e) => {
                    if let Some(fatal) = d.failure() {
                        return coord.fail(fatal);
                    }
                    // The broker may be away for a while: try again later,
                    // staying paused.
                    if self
                        .warned
                        .is_none_or(|w| w.elapsed() > Duration::from_secs(5))
                    {
                        eprintln!("huntflow: snapshot {epoch} waits for the outputs: {e}");
                        self.warned = Some(Instant::now());
                    }
                    return;
                }
            }
        }
        if let Some(e) = self.sink_error() {
            return coord.fail(e);
        }
        let offsets = self.all_offsets();
        let tmp = match self.tmp_dir(epoch) {
            Ok(t) => t,
            Err(e) => return coord.fail(e),
        };
        let derived = match self.derived_mark(&tmp, &marks) {
            Ok(d) => d,
            Err(e) => return coord.fail(format!("writing a snapshot: {e}")),
        };
        let manifest = Manifest {
            version: 1,
            epoch,
            frontier,
            topic: self.topic.clone(),
            workers: coord.workers,
            output_marks: marks.first().cloned().unwrap_or_default(),
            reject_marks: marks.get(1).cloned().unwrap_or_default(),
            offsets,
            files,
            derived,
        };
        if let Err(e) = self.state.commit(&tmp, &manifest) {
            return coord.fail(format!("committing a snapshot: {e}"));
        }
        if let Ok(mut saved) = coord.saved.lock() {
            saved.clear();
        }
        if let Ok(mut t) = coord.tmp.lock() {
            *t = None;
        }
        self.last = Instant::now();
        self.committed = epoch;
        coord.shared.pause.store(0, Ordering::Release);
    }

    /// With `--derived`: where the interval files end (their marks follow
    /// the notifications' and the rejects') and the intervals open, saved
    /// into `tmp`.
    fn derived_mark(
        &self,
        tmp: &std::path::Path,
        marks: &[Vec<i64>],
    ) -> Result<Option<DerivedMark>, String> {
        let Some(derived) = &self.derived else {
            return Ok(None);
        };
        let open = derived
            .lock()
            .map_err(|_| "derived files lock poisoned")?
            .open_intervals();
        let open = StateDir::write_open(tmp, &open).map_err(|e| e.to_string())?;
        let mark = |i: usize| {
            marks
                .get(i)
                .and_then(|m| m.first())
                .map(|&m| m as u64)
                .ok_or("no mark for a derived file")
        };
        Ok(Some(DerivedMark {
            marks: [mark(2)?, mark(3)?],
            open,
        }))
    }

    /// Offsets of every worker's partitions, as each published them when
    /// saving its part.
    fn all_offsets(&self) -> Vec<(u32, i64)> {
        self.publish();
        let Ok(status) = self.coord.status.lock() else {
            return Vec::new();
        };
        status
            .iter()
            .filter_map(|(&p, (next, _, _))| next.map(|n| (p, n)))
            .collect()
    }

    fn sink_error(&self) -> Option<String> {
        let e = self
            .errors
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|e| e.to_string()));
        e.or_else(|| self.durable.iter().find_map(|d| d.failure()))
            .or_else(|| {
                self.stats
                    .errors
                    .lock()
                    .ok()
                    .and_then(|e| e.first().map(|(p, m)| format!("{p}: {m}")))
            })
    }

    /// Publishes this worker's partitions into the shared status.
    fn publish(&self) {
        let frontiers = self.sources.frontiers();
        let offsets: BTreeMap<u32, i64> = self.sources.offsets().into_iter().collect();
        if let Ok(mut status) = self.coord.status.lock() {
            for (p, frontier, latest) in frontiers {
                status.insert(p, (offsets.get(&p).copied(), frontier, latest));
            }
        }
    }

    /// Publishes this worker's partitions; worker 0 also writes
    /// `status.json` and stops the job on a failure.
    fn status(&self) {
        self.publish();
        if self.index != 0 {
            return;
        }
        if let Some(e) = self.sink_error() {
            self.coord.fail(e);
            return;
        }
        let Ok(status) = self.coord.status.lock() else {
            return;
        };
        let partitions: Vec<serde_json::Value> = status
            .iter()
            .map(|(p, (next, frontier, latest))| {
                serde_json::json!({"partition": p, "next_offset": next, "frontier": frontier, "latest_ts": latest})
            })
            .collect();
        let s = &self.stats;
        let body = serde_json::json!({
            "written_frontier": self.coord.written.load(Ordering::Acquire),
            "snapshot_committed": self.committed,
            "read": s.read.load(Ordering::Relaxed),
            "accepted": s.accepted.load(Ordering::Relaxed),
            "rejected": crate::backfill::Summary::from_stats(s).rejected_total(),
            "partitions": partitions,
        });
        let path = self.state.root().join("status.json");
        let tmp = self.state.root().join("status.json.tmp");
        if std::fs::write(&tmp, format!("{body}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
