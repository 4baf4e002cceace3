//! The workers of the continuous job: building the job from a snapshot, the
//! loop that steps it, and the snapshot protocol.
//!
//! Snapshot protocol (all workers of the process take part):
//! 0. after a start from a snapshot, none is taken until the job has
//!    re-created what its outputs held beyond that snapshot ([`Held`]);
//! 1. worker 0 sets the pause epoch `N`; each source stops reading at its
//!    next activation, and each worker acknowledges `N` from its loop;
//! 2. with every source paused, the frontier `F` is the least partition
//!    frontier; the dataflow runs until the sink has written all times
//!    below `F` (nothing at or above `F` can complete meanwhile), and each
//!    worker's reject sink has written every reject its source emitted;
//! 3. each worker saves its part: its partitions (admission state, next
//!    offset, accepted events at or above `F`) and its per-player state,
//!    which then covers exactly the times below `F`;
//! 4. worker 0 flushes the outputs, notes where each ends (by name),
//!    commits the snapshot and lifts the pause.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::ProbeHandle;

use super::outputs::{Durable, Opened};
use super::snapshot::{Loaded, Manifest, PartFile, StateDir, VERSION};
use super::{RunError, RunOptions};
use crate::dataflow::facts::{player_hash, FactsHandle, Restore, SavedPlayer};
use crate::input::admission::max_ahead_ms;
use crate::input::kafka::{
    self as ksource, Advance, SavedPartition, Shared, SourceConfig, SourceHandle, Start,
};
use crate::input::stats::{Stats, Summary};
use crate::job::assemble::{self, Assembly, Outputs};
use crate::kafka::admin::Admin;
use crate::kafka::KafkaConfig;
use crate::model::hunt::Hunt;
use crate::model::versions::SharedVersions;
use crate::output::derived::SharedDerived;
use crate::output::rejects::{When, Written};
use crate::output::resume::Held;
use crate::output::sink::ErrorSlot;

/// Everything the job is made of, opened and checked.
pub(crate) struct Job {
    pub opts: RunOptions,
    pub hunt: Arc<Hunt>,
    pub versions: SharedVersions,
    pub cfg: KafkaConfig,
    pub state: Arc<StateDir>,
    pub loaded: Option<Loaded>,
    pub advances: Vec<Advance>,
    pub input_partitions: u32,
    pub opened: Opened,
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
    /// Per worker: the last pause epoch it acknowledged.
    acked: Vec<AtomicU64>,
    saved: Mutex<BTreeMap<usize, (u64, PartFile)>>,
    tmp: Mutex<Option<(u64, PathBuf)>>,
    stop: AtomicBool,
    failure: Mutex<Option<RunError>>,
    status: Mutex<BTreeMap<u32, PartitionStatus>>,
}

impl Coordinator {
    /// Stops the job with `error` (the first one is kept).
    fn fail(&self, error: RunError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(error);
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

    /// The temporary directory of snapshot `epoch`, made by the first
    /// worker that asks.
    fn tmp_dir(&self, state: &StateDir, epoch: u64) -> Result<PathBuf, RunError> {
        let mut tmp = self
            .tmp
            .lock()
            .map_err(|_| RunError::Dataflow("snapshot lock poisoned".into()))?;
        match &*tmp {
            Some((e, path)) if *e == epoch => Ok(path.clone()),
            _ => {
                let path = state.begin(epoch)?;
                *tmp = Some((epoch, path.clone()));
                Ok(path)
            }
        }
    }
}

impl Job {
    pub fn run(self) -> Result<(), RunError> {
        let Job {
            opts,
            hunt,
            versions,
            cfg,
            state,
            loaded,
            advances,
            input_partitions,
            opened,
            stats,
            live,
        } = self;
        let workers = opts.workers;
        let (frontier, epoch, starts) = split_start(loaded, workers);
        let starts: Vec<Mutex<Option<WorkerStart>>> =
            starts.into_iter().map(|s| Mutex::new(Some(s))).collect();
        let shared = Arc::new(Shared::new(workers, input_partitions));
        let written = Arc::new(AtomicU64::new(frontier));
        let coord = Arc::new(Coordinator {
            workers,
            shared: shared.clone(),
            written: written.clone(),
            acked: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            saved: Mutex::new(BTreeMap::new()),
            tmp: Mutex::new(None),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            status: Mutex::new(BTreeMap::new()),
        });
        watch_partitions(&cfg, &opts.topic, shared.clone(), coord.clone());
        let errors: ErrorSlot = Arc::new(Mutex::new(None));
        let Opened {
            notifications,
            rejects,
            derived,
            durable,
            held,
        } = opened;
        let output = Mutex::new(Some(assemble::chain(Outputs {
            destination: notifications,
            derived: derived.clone(),
            live: live.clone(),
            below: frontier,
            written: Some(written),
        })));
        let output = Arc::new(output);
        let durable = Arc::new(durable);
        let max_ahead_ms = max_ahead_ms(&hunt);
        let job_coord = coord.clone();

        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let start = starts[index]
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_default();
            let probe = ProbeHandle::new();
            if let Some(live) = &live {
                crate::serve::metrics::count_arrangements(worker, live.clone());
            }
            let players = crate::serve::worker_players(live.as_deref());
            let built = worker.dataflow::<u64, _, _>(|scope| {
                let config = SourceConfig {
                    kafka: cfg.clone(),
                    topic: opts.topic.clone(),
                    group: format!("huntflow-{}", opts.topic),
                    idle: opts.idle,
                    max_ahead_ms,
                    hunt: hunt.clone(),
                    stats: stats.clone(),
                    log: state.clone(),
                    shared: shared.clone(),
                    probe: probe.clone(),
                };
                let source_start = Start {
                    partitions: start.partitions,
                    advances: advances.clone(),
                };
                let (inputs, sources) = ksource::build(scope, config, source_start)?;
                let restore = (frontier > 0).then(|| Restore {
                    players: start.players,
                    time: frontier - 1,
                });
                let dataflow = crate::dataflow::Config::versions(versions.clone())
                    .slice(opts.slice)
                    .restore(restore)
                    .players(players);
                let out = if index == 0 {
                    output.lock().ok().and_then(|mut o| o.take())
                } else {
                    None
                };
                let assembled = assemble::assemble(
                    inputs,
                    Assembly {
                        versions: versions.clone(),
                        dataflow,
                        output: out,
                        rejects: Some(rejects.clone()),
                        when: When::AsRead,
                        errors: errors.clone(),
                        probe: probe.clone(),
                    },
                );
                Ok::<_, crate::kafka::KafkaError>((sources, assembled))
            });
            let (sources, assembled) = match built {
                Ok(handles) => handles,
                Err(e) => return coord.fail(e.into()),
            };
            let mut me = WorkerLoop {
                index,
                coord: coord.clone(),
                state: state.clone(),
                sources,
                facts: assembled.facts,
                rejects_written: assembled.rejects_written,
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
        .map_err(RunError::Dataflow)?;
        for r in guards.join() {
            r.map_err(RunError::Dataflow)?;
        }
        let failure = job_coord.failure.lock().ok().and_then(|mut f| f.take());
        Err(failure.unwrap_or_else(|| RunError::Dataflow("stopped".into())))
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
    /// Rejects this worker's reject sink has written.
    rejects_written: Written,
    durable: Arc<Vec<(&'static str, Durable)>>,
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
            if all && self.saved < pause && self.rejects_drained() {
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

    /// Whether this worker's reject sink has written every reject its
    /// source emitted.
    fn rejects_drained(&self) -> bool {
        self.rejects_written.get() >= self.sources.rejects_emitted()
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

    fn save(&mut self, epoch: u64, frontier: u64) {
        self.publish();
        let result = self.coord.tmp_dir(&self.state, epoch).and_then(|tmp| {
            Ok(StateDir::write_part(
                &tmp,
                self.index,
                &self.sources,
                &self.facts,
                frontier,
            )?)
        });
        match result {
            Ok(part) => {
                self.saved = epoch;
                if let Ok(mut saved) = self.coord.saved.lock() {
                    saved.insert(self.index, (epoch, part));
                }
            }
            Err(e) => self.coord.fail(e),
        }
    }

    /// Every output's end marks, by name, once each is durable; `None`
    /// while an output waits for the broker (the job stays paused).
    fn flush_outputs(
        &mut self,
        epoch: u64,
    ) -> Result<Option<BTreeMap<String, Vec<i64>>>, RunError> {
        let mut marks = BTreeMap::new();
        for (name, d) in self.durable.iter() {
            match d.flush() {
                Ok(m) => {
                    marks.insert(name.to_string(), m);
                }
                Err(e) => {
                    if let Some(fatal) = d.failure() {
                        return Err(fatal.into());
                    }
                    if !e.is_transient() {
                        return Err(e);
                    }
                    // The broker may be away for a while: try again later.
                    if self
                        .warned
                        .is_none_or(|w| w.elapsed() > Duration::from_secs(5))
                    {
                        eprintln!("huntflow: snapshot {epoch} waits for the outputs: {e}");
                        self.warned = Some(Instant::now());
                    }
                    return Ok(None);
                }
            }
        }
        Ok(Some(marks))
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
        if let Err(e) = self.commit(epoch, files) {
            coord.fail(e);
        }
    }

    fn commit(&mut self, epoch: u64, files: Vec<PartFile>) -> Result<(), RunError> {
        let coord = self.coord.clone();
        let frontier = coord.paused_frontier();
        let Some(outputs) = self.flush_outputs(epoch)? else {
            return Ok(());
        };
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let offsets = self.all_offsets();
        let tmp = coord.tmp_dir(&self.state, epoch)?;
        let derived_open = self.save_open_intervals(&tmp)?;
        let manifest = Manifest {
            version: VERSION,
            epoch,
            frontier,
            topic: self.topic.clone(),
            workers: coord.workers,
            outputs,
            offsets,
            files,
            derived_open,
        };
        self.state.commit(&tmp, &manifest)?;
        if let Ok(mut saved) = coord.saved.lock() {
            saved.clear();
        }
        if let Ok(mut t) = coord.tmp.lock() {
            *t = None;
        }
        self.last = Instant::now();
        self.committed = epoch;
        coord.shared.pause.store(0, Ordering::Release);
        Ok(())
    }

    /// With `--derived`: the intervals open now, saved into `tmp`.
    fn save_open_intervals(&self, tmp: &Path) -> Result<Option<PartFile>, RunError> {
        let Some(derived) = &self.derived else {
            return Ok(None);
        };
        let open = derived
            .lock()
            .map_err(|_| RunError::Dataflow("derived files lock poisoned".into()))?
            .open_intervals();
        Ok(Some(StateDir::write_open(tmp, &open)?))
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

    /// The first failure of a sink, an output or an input, taken.
    fn failure(&self) -> Option<RunError> {
        if let Some(e) = self.errors.lock().ok().and_then(|mut e| e.take()) {
            return Some(e.into());
        }
        if let Some(e) = self.durable.iter().find_map(|(_, d)| d.failure()) {
            return Some(e.into());
        }
        self.stats.first_error().map(RunError::from)
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
        if let Some(e) = self.failure() {
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
            "rejected": Summary::from_stats(s).rejected_total(),
            "partitions": partitions,
        });
        let path = self.state.root().join("status.json");
        let tmp = self.state.root().join("status.json.tmp");
        if std::fs::write(&tmp, format!("{body}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
