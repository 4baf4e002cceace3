//! The workers of the continuous job: building the job from a snapshot, the
//! loop that steps it, and the snapshot protocol, in which nothing stops
//! reading:
//!
//! 0. after a start from a snapshot, none is taken until the job has
//!    re-created what its outputs held beyond that snapshot ([`Held`]);
//! 1. worker 0 asks for snapshot `N`; the control operator
//!    ([`super::control`]) takes the input frontier as its frontier `F`,
//!    publishes it to the sources, notes where the rejects outputs stand,
//!    and sends the marker at `F` to every worker;
//! 2. each source captures its partitions (admission state, next offset,
//!    accepted events at or above `F`); each facts operator captures its
//!    players once every time below `F` is processed and none later; the
//!    notification sink (and each writer of a notifications topic's
//!    partitions) marks its outputs once every time below `F` is written
//!    and none later;
//! 3. each worker, once both captures are in and its rejects sink has
//!    written what was emitted by then, writes its part (on a thread);
//! 4. worker 0 commits, once every writer's marks are in: the outputs made
//!    durable up to their marks, the manifest written, the snapshot
//!    renamed into place (on a thread).
//!
//! A graceful stop (SIGTERM, SIGINT) stops the reading, takes a last
//! snapshot at the input frontier, and ends the job.
//!
//! In a cluster ([`super::peers`]) worker 0 (on process 0) asks for the
//! snapshots and its control operator follows the least frontier of every
//! process's sources; the markers reach the other processes' sources
//! through a relay; the first worker of each other process commits that
//! process's snapshot in its own state directory (with the marks of the
//! topic partitions its workers write) and reports it; worker 0
//! commits once every process has, and worker 0 has written every reject
//! read before the captures. A stop ends the process at once.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use timely::dataflow::operators::core::Concat;
use timely::dataflow::ProbeHandle;

use super::commit::Commit;
use super::control::{self, ControlConfig, Requests};
use super::hunt_record::ChangeLog;
use super::outputs::{Durable, Opened, Owned, NOTIFICATIONS};
use super::peers::{self, Outbox, Report};
use super::snapshot::{Loaded, PartFile, StateDir};
use super::{RunError, RunOptions};
use crate::dataflow::facts::{player_hash, Capture, FactsHandle, Restore, SavedPlayer};
use crate::input::admission::max_ahead_ms;
use crate::input::hunt_topic::{Decision, HuntTopicConfig, Reader};
use crate::input::kafka::{
    self as ksource, Advance, SavedPartition, Shared, SourceCapture, SourceConfig, SourceHandle,
    Start,
};
use crate::input::stats::{Stats, Summary};
use crate::job::assemble::{self, Assembly, Outputs, OwnedTopic};
use crate::job::cluster::{Cluster, Connected};
use crate::kafka::admin::Admin;
use crate::kafka::KafkaConfig;
use crate::model::hunt::Hunt;
use crate::model::versions::{Notice, SharedVersions};
use crate::output::rejects::{SharedRejects, When, Written};
use crate::output::resume::Held;
use crate::output::sink::{ErrorSlot, NotificationOutput};
use crate::output::{MarkSlot, Marks};

/// Everything the job is made of, opened and checked.
pub(crate) struct Job {
    pub opts: RunOptions,
    /// The cluster this process is part of (one process: a cluster of one).
    pub cluster: Cluster,
    /// Connected to the other processes, the workers not started yet.
    pub connected: Connected,
    pub hunt: Arc<Hunt>,
    pub versions: SharedVersions,
    /// With `--hunt-topic`: the decision log and the decisions logged.
    pub changes: Option<(Arc<ChangeLog>, Vec<Decision>)>,
    pub cfg: KafkaConfig,
    pub state: Arc<StateDir>,
    pub loaded: Option<Loaded>,
    pub advances: Vec<Advance>,
    pub input_partitions: u32,
    /// The outputs: process 0's; `None` on the other processes.
    pub opened: Option<Opened>,
    /// A notifications topic's writers on this process.
    pub owned: Option<Owned>,
    pub stats: Arc<Stats>,
    pub live: Option<Arc<crate::serve::Live>>,
    /// In a cluster with the API: how process 0 asks the others.
    pub plane: Option<Arc<crate::serve::cluster::Plane>>,
    /// Set by SIGTERM or SIGINT: stop after a last snapshot.
    pub stop: Arc<AtomicBool>,
}

/// What one worker starts from.
#[derive(Default)]
struct WorkerStart {
    partitions: Vec<SavedPartition>,
    players: Vec<SavedPlayer>,
}

/// A partition's next offset, frontier and latest time.
type PartitionStatus = (Option<i64>, u64, Option<u64>);

/// One worker's part of a snapshot, written: epoch, file, input offsets,
/// and the rejects its source had emitted when it captured the snapshot.
type Part = (u64, PartFile, Vec<(u32, i64)>, u64);

/// A snapshot another process committed, and the rejects its workers had
/// emitted when they captured it (global worker, count).
type PeerCommit = (u64, Vec<(u64, u64)>);

/// Shared by the workers while the job runs.
struct Coordinator {
    /// This process's workers, the cluster's, this process's index and the
    /// cluster's processes.
    workers: usize,
    peers: usize,
    process: usize,
    processes: usize,
    /// (Process 0) by process, the last snapshot it committed and the
    /// rejects its workers had emitted then (global worker, count).
    from_peers: Mutex<BTreeMap<usize, PeerCommit>>,
    shared: Arc<Shared>,
    requests: Arc<Requests>,
    written: Arc<AtomicU64>,
    /// Per worker (global index), its part of the snapshot in progress.
    saved: Mutex<BTreeMap<usize, Part>>,
    tmp: Mutex<Option<(u64, PathBuf)>>,
    /// The rejects outputs' marks, taken as each snapshot began.
    reject_marks: Mutex<BTreeMap<u64, Vec<i64>>>,
    /// The sinks' marks of the other outputs.
    marks: MarkSlot,
    /// How many writers of this process mark each snapshot: worker 0's
    /// output chain, and each owner of a notifications topic's partitions.
    marking: usize,
    stop: AtomicBool,
    failure: Mutex<Option<RunError>>,
    /// Set when the job stopped as asked, with what it says then.
    stopped: Mutex<Option<String>>,
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

    /// (Process 0) a report from a worker of the cluster; what other
    /// processes read is added to `stats`.
    fn receive(&self, report: Report, stats: &Stats) {
        match report {
            Report::Low { worker, low } => {
                let slot = self
                    .shared
                    .global
                    .as_ref()
                    .and_then(|g| g.get(worker as usize));
                if let Some(slot) = slot {
                    slot.store(low, Ordering::Release);
                    self.shared.wake_control();
                }
            }
            Report::Partition {
                partition,
                next,
                frontier,
                latest,
            } => {
                stats.progress(partition, Some(frontier), latest);
                if let Ok(mut status) = self.status.lock() {
                    status.insert(partition, (next, frontier, latest));
                }
            }
            Report::Counts(counts) => stats.count(&counts),
            Report::Committed {
                process,
                epoch,
                rejects,
            } => {
                if let Ok(mut peers) = self.from_peers.lock() {
                    peers.insert(process as usize, (epoch, rejects));
                }
            }
        }
    }

    /// The snapshot the sources were asked to capture, `(epoch, frontier)`.
    fn capture_requested(&self) -> Option<(u64, u64)> {
        let epoch = self.shared.snapshot_epoch.load(Ordering::Acquire);
        (epoch > 0).then(|| (epoch, self.shared.snapshot_at.load(Ordering::Acquire)))
    }
}

/// The rejects outputs' marks are taken as a snapshot begins: any later
/// reject is read after the sources' captures.
fn take_reject_marks(
    rejects: Option<SharedRejects>,
    coord: Arc<Coordinator>,
) -> Box<dyn Fn(u64, u64)> {
    Box::new(move |epoch, _at| {
        let Some(rejects) = &rejects else { return };
        let marks = rejects.lock().map(|mut r| r.mark()).unwrap_or_default();
        if let Ok(mut m) = coord.reject_marks.lock() {
            m.insert(epoch, marks);
        }
    })
}

impl Job {
    pub fn run(self) -> Result<Option<String>, RunError> {
        let Job {
            opts,
            cluster,
            connected,
            hunt,
            versions,
            changes,
            cfg,
            state,
            loaded,
            advances,
            input_partitions,
            opened,
            owned,
            stats,
            live,
            plane,
            stop,
        } = self;
        let workers = opts.workers;
        let in_cluster = cluster.processes() > 1;
        let leader = cluster.is_leader();
        let first = cluster.first_worker_of(cluster.process());
        let (frontier, epoch, starts) = split_start(loaded, cluster.peers(), first, workers);
        let starts: Vec<Mutex<Option<WorkerStart>>> =
            starts.into_iter().map(|s| Mutex::new(Some(s))).collect();
        let shared = Arc::new(if in_cluster {
            Shared::in_cluster(
                workers,
                input_partitions,
                cluster.process(),
                cluster.processes(),
            )
        } else {
            Shared::new(workers, input_partitions)
        });
        let written = Arc::new(AtomicU64::new(frontier));
        let coord = Arc::new(Coordinator {
            workers,
            peers: cluster.peers(),
            process: cluster.process(),
            processes: cluster.processes(),
            from_peers: Mutex::new(BTreeMap::new()),
            shared: shared.clone(),
            requests: Arc::new(Requests::default()),
            written: written.clone(),
            saved: Mutex::new(BTreeMap::new()),
            tmp: Mutex::new(None),
            reject_marks: Mutex::new(BTreeMap::new()),
            marks: MarkSlot::default(),
            marking: usize::from(leader) + owned.as_ref().map_or(0, |_| workers),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            stopped: Mutex::new(None),
            status: Mutex::new(BTreeMap::new()),
        });
        watch_partitions(&cfg, &opts.topic, shared.clone(), coord.clone());
        let errors: ErrorSlot = Arc::new(Mutex::new(None));
        let (notifications, rejects, derived, durable, held) = match opened {
            Some(o) => (
                Some(o.notifications),
                Some(o.rejects),
                o.derived,
                o.durable,
                o.held,
            ),
            None => (None, None, None, Vec::new(), Held::default()),
        };
        // The topic's writers first: their marks are taken first.
        let (owned_writers, owned_partitions, durable) = match owned {
            Some(o) => {
                let mut all = vec![(NOTIFICATIONS, o.durable)];
                all.extend(durable);
                (o.writers, o.partitions, all)
            }
            None => (Vec::new(), 0, durable),
        };
        let owned_writers: Vec<Mutex<Option<Box<dyn NotificationOutput + Send>>>> = owned_writers
            .into_iter()
            .map(|w| Mutex::new(Some(w)))
            .collect();
        // The same on every process (both are arguments every process is
        // given): whether worker 0's chain needs the topic's notifications.
        let tapped = opts.derived.is_some() || opts.serve.is_some();
        let output = Mutex::new(notifications.map(|destination| {
            assemble::chain(Outputs {
                destination,
                derived,
                live: live.clone(),
                below: frontier,
                written: Some(written),
            })
        }));
        let output = Arc::new(output);
        let durable = Arc::new(durable);
        let max_ahead_ms = max_ahead_ms(&hunt);
        let job_coord = coord.clone();
        let hunt_reader = Mutex::new(match &changes {
            None => None,
            Some((log, logged)) => {
                let config = HuntTopicConfig {
                    kafka: cfg.clone(),
                    topic: opts.hunt_topic.clone().unwrap_or_default(),
                    start: hunt.clone(),
                    versions: versions.clone(),
                    log: log.clone(),
                    stats: stats.clone(),
                };
                Some((Reader::open(config, logged)?, logged.clone()))
            }
        });

        let guards = connected.execute(move |worker| {
            let index = worker.index();
            let local = index - first;
            let start = starts[local]
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
                let (mut inputs, sources) = ksource::build(scope, config, source_start)?;
                let outbox = Outbox::default();
                if in_cluster {
                    let receiver = coord.clone();
                    let counted = stats.clone();
                    // The first worker of each process but 0 reports its
                    // process's counts.
                    let counts = (local == 0 && !leader).then(|| stats.clone());
                    peers::reports(
                        scope,
                        shared.clone(),
                        sources.clone(),
                        outbox.clone(),
                        counts,
                        Box::new(move |r| receiver.receive(r, &counted)),
                    );
                }
                let controls = control::build(
                    scope,
                    ControlConfig {
                        shared: shared.clone(),
                        requests: coord.requests.clone(),
                        // Read on worker 0, where the control operator runs.
                        hunt: (index == 0)
                            .then(|| hunt_reader.lock().ok().and_then(|mut r| r.take()))
                            .flatten(),
                        floor: frontier,
                        on_snapshot: take_reject_marks(rejects.clone(), coord.clone()),
                    },
                );
                if in_cluster {
                    peers::relay(&controls.control, shared.clone(), leader);
                }
                inputs.control = Some(controls.control);
                inputs.rejects = inputs.rejects.concat(controls.rejects);
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
                        // In a cluster, worker 0 writes every worker's.
                        rejects: if in_cluster && index != 0 {
                            None
                        } else {
                            rejects.clone()
                        },
                        when: if in_cluster {
                            When::Gathered
                        } else {
                            When::AsRead
                        },
                        marks: Some(coord.marks.clone()),
                        owned: owned_writers
                            .get(local)
                            .and_then(|w| w.lock().ok()?.take())
                            .map(|writer| OwnedTopic {
                                writer,
                                partitions: owned_partitions,
                                tapped,
                            }),
                        errors: errors.clone(),
                        probe: probe.clone(),
                    },
                );
                Ok::<_, crate::kafka::KafkaError>((sources, assembled, controls.rejected, outbox))
            });
            let (sources, assembled, control_rejects, outbox) = match built {
                Ok(handles) => handles,
                Err(e) => {
                    coord.fail(e.into());
                    if in_cluster {
                        end_process(&coord);
                    }
                    return;
                }
            };
            if let (Some(plane), Some(live)) = (&plane, &live) {
                crate::serve::cluster::build(worker, plane.clone(), live.clone());
            }
            let mut me = WorkerLoop {
                index,
                local,
                in_cluster,
                outbox,
                reporting: Vec::new(),
                coord: coord.clone(),
                state: state.clone(),
                sources,
                facts: assembled.facts,
                rejects_written: assembled.rejects_written,
                rejects_out: (index == 0).then(|| rejects.clone()).flatten(),
                control_rejects,
                durable: durable.clone(),
                versions: versions.clone(),
                topic: opts.topic.clone(),
                every: opts.snapshot_every,
                last: Instant::now(),
                asked: epoch,
                in_progress: None,
                committing: None,
                held: (index == 0).then(|| held.clone()),
                part: Part0::default(),
                saved: epoch,
                writing: None,
                committed: epoch,
                status_at: Instant::now(),
                warned: None,
                stats: stats.clone(),
                errors: errors.clone(),
                stop: stop.clone(),
                stopping: None,
            };
            while !coord.stop.load(Ordering::Acquire) {
                worker.step_or_park(Some(Duration::from_millis(1)));
                me.tick();
            }
            if in_cluster && local == 0 {
                end_process(&coord);
            }
            // The job's dataflow never completes by itself (its sources
            // hold their capabilities): it is dropped.
            drop(me);
            for dataflow in worker.installed_dataflows() {
                worker.drop_dataflow(dataflow);
            }
        })?;
        for r in guards.join() {
            r.map_err(RunError::Dataflow)?;
        }
        if let Some(said) = job_coord.stopped.lock().ok().and_then(|mut s| s.take()) {
            return Ok(Some(said));
        }
        let failure = job_coord.failure.lock().ok().and_then(|mut f| f.take());
        Err(failure.unwrap_or_else(|| RunError::Dataflow("stopped".into())))
    }
}

/// Ends a process of a cluster whose job stopped, with its failure. Ending
/// its workers would wait for its peers to close their connections, which
/// they do only once this process has ended: it ends at once, and they
/// notice.
fn end_process(coord: &Coordinator) -> ! {
    let failure = coord.failure.lock().ok().and_then(|mut f| f.take());
    let why = failure.map_or_else(|| "stopped".to_string(), |e| e.to_string());
    eprintln!("huntflow: {why}");
    std::process::exit(2);
}

/// Splits a loaded snapshot by this process's `workers` workers (global
/// workers `first` on, of `peers` in the cluster): partitions by
/// `p % peers`, players by the same routing as the dataflow's exchange.
fn split_start(
    loaded: Option<Loaded>,
    peers: usize,
    first: usize,
    workers: usize,
) -> (u64, u64, Vec<WorkerStart>) {
    let mut starts: Vec<WorkerStart> = (0..workers).map(|_| WorkerStart::default()).collect();
    let Some(loaded) = loaded else {
        return (0, 0, starts);
    };
    let mine = |w: usize| w.checked_sub(first).filter(|&l| l < workers);
    for p in loaded.partitions {
        if let Some(l) = mine(p.partition as usize % peers) {
            starts[l].partitions.push(p);
        }
    }
    for player in loaded.players {
        if let Some(l) = mine((player_hash(player.player()) % peers as u64) as usize) {
            starts[l].players.push(player);
        }
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

/// One worker's captures for the snapshot in progress.
#[derive(Default)]
struct Part0 {
    epoch: u64,
    source: Option<SourceCapture>,
    facts: Option<Capture>,
}

/// A graceful stop in progress (worker 0).
struct Stopping {
    since: Instant,
    /// The last snapshot's epoch, once asked for.
    last: Option<u64>,
}

struct WorkerLoop {
    /// This worker's global index, and its index in this process.
    index: usize,
    local: usize,
    in_cluster: bool,
    /// Reports to worker 0 (in a cluster).
    outbox: Outbox,
    /// (Other processes) the rejects the parts of the snapshot being
    /// committed counted, for its report.
    reporting: Vec<(u64, u64)>,
    coord: Arc<Coordinator>,
    state: Arc<StateDir>,
    sources: SourceHandle,
    facts: FactsHandle,
    /// Rejects this worker's reject sink has written.
    rejects_written: Written,
    /// (Worker 0) the rejects output.
    rejects_out: Option<SharedRejects>,
    /// Rejects of the hunt topic the control operator emitted (worker 0).
    control_rejects: Rc<Cell<u64>>,
    durable: Arc<Vec<(&'static str, Durable)>>,
    /// The hunt versions this process knows.
    versions: SharedVersions,
    topic: String,
    every: Duration,
    last: Instant,
    /// Worker 0: the last snapshot epoch asked for, the one in progress,
    /// and its commit once started.
    asked: u64,
    in_progress: Option<u64>,
    committing: Option<JoinHandle<Result<u64, RunError>>>,
    /// Worker 0: what the outputs held beyond the snapshot, until passed.
    held: Option<Held>,
    /// This worker's captures, the last epoch whose part it saved, and the
    /// part being written.
    part: Part0,
    saved: u64,
    writing: Option<JoinHandle<Result<Part, RunError>>>,
    /// The last snapshot committed.
    committed: u64,
    status_at: Instant,
    warned: Option<Instant>,
    stats: Arc<Stats>,
    errors: ErrorSlot,
    /// Set by SIGTERM or SIGINT.
    stop: Arc<AtomicBool>,
    stopping: Option<Stopping>,
}

/// How long a graceful stop may take before it gives up.
const STOP_WITHIN: Duration = Duration::from_secs(25);

impl WorkerLoop {
    fn tick(&mut self) {
        if self.in_cluster && self.local == 0 && self.stop.load(Ordering::Acquire) {
            // The processes of a cluster stop together: this one at once,
            // the others as they notice; all resume from the newest
            // snapshot every process committed.
            eprintln!("huntflow: stopping at once (a process of a cluster takes no last snapshot of its own)");
            std::process::exit(0);
        }
        if self.index == 0 {
            self.graceful();
            self.maybe_ask();
            self.maybe_commit();
        } else if self.local == 0 {
            self.maybe_commit_part();
        }
        self.maybe_save();
        if self.status_at.elapsed() >= Duration::from_secs(1) {
            self.status_at = Instant::now();
            self.status();
        }
    }

    /// Worker 0 asks for a snapshot every `every`, once what the outputs
    /// held is re-created and no snapshot is in progress.
    fn maybe_ask(&mut self) {
        if self.in_progress.is_some()
            || self.stopping.is_some()
            || self.last.elapsed() < self.every
            || !self.held_passed()
        {
            return;
        }
        self.ask();
    }

    fn ask(&mut self) -> u64 {
        self.asked += 1;
        self.in_progress = Some(self.asked);
        self.coord
            .requests
            .snapshot
            .store(self.asked, Ordering::Release);
        self.asked
    }

    /// A stop was asked for: reading stops, and once every source has
    /// stopped (the input frontier stays put) a last snapshot is taken;
    /// its commit ends the job.
    fn graceful(&mut self) {
        if !self.stop.load(Ordering::Acquire) {
            return;
        }
        let shared = &self.coord.shared;
        let Some(stopping) = self.stopping.as_mut() else {
            eprintln!("huntflow: stopping: reading no more, taking a last snapshot");
            shared.stopping.store(true, Ordering::Release);
            self.stopping = Some(Stopping {
                since: Instant::now(),
                last: None,
            });
            return;
        };
        if stopping.since.elapsed() > STOP_WITHIN {
            return self.coord.fail(RunError::Config(format!(
                "no last snapshot within {} s; the job stops, and starts again from the snapshot before",
                STOP_WITHIN.as_secs()
            )));
        }
        let all_stopped = shared.sources_stopped.load(Ordering::Acquire) >= self.coord.workers;
        if stopping.last.is_some() || self.in_progress.is_some() || !all_stopped {
            return;
        }
        if !self.held_passed() {
            let said = "huntflow: stopped without a new snapshot: the outputs still hold what the job wrote before it was last restarted; the next start resumes from the snapshot before".to_string();
            return self.finish(said);
        }
        let epoch = self.ask();
        if let Some(s) = self.stopping.as_mut() {
            s.last = Some(epoch);
        }
    }

    fn finish(&self, said: String) {
        if let Ok(mut s) = self.coord.stopped.lock() {
            *s = Some(said);
        }
        self.coord.stop.store(true, Ordering::Release);
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

    /// Every worker: once its source and facts captures of the snapshot
    /// asked for are in, and its rejects written, writes its part.
    fn maybe_save(&mut self) {
        if let Some(w) = self.writing.take_if(|w| w.is_finished()) {
            match w.join() {
                Ok(Ok(part)) => {
                    self.saved = part.0;
                    if let Ok(mut saved) = self.coord.saved.lock() {
                        saved.insert(self.index, part);
                    }
                }
                Ok(Err(e)) => self.coord.fail(e),
                Err(_) => self
                    .coord
                    .fail(RunError::Dataflow("writing a snapshot part".into())),
            }
        }
        let Some((epoch, _)) = self.coord.capture_requested() else {
            return;
        };
        if epoch <= self.saved || self.writing.is_some() {
            return;
        }
        if self.part.epoch != epoch {
            self.part = Part0 {
                epoch,
                ..Part0::default()
            };
        }
        if self.part.source.is_none() {
            self.part.source = self.sources.take_capture(epoch);
        }
        if self.part.facts.is_none() {
            self.part.facts = self.facts.take_capture(epoch);
        }
        let (Some(source), Some(_)) = (&self.part.source, &self.part.facts) else {
            return;
        };
        // In a cluster, worker 0 writes the rejects: process 0's commit
        // waits for them instead.
        let emitted = source.rejects + self.control_rejects.get();
        if !self.in_cluster && self.rejects_written.get() < emitted {
            return;
        }
        let part = std::mem::take(&mut self.part);
        let (Some(source), Some(facts)) = (part.source, part.facts) else {
            return;
        };
        match self.coord.tmp_dir(&self.state, epoch) {
            Ok(tmp) => self.writing = Some(write_part(tmp, self.index, source, facts)),
            Err(e) => self.coord.fail(e),
        }
    }

    /// Worker 0: once every part and every mark of the snapshot in progress
    /// is in, commits it (on a thread), and notes its end.
    fn maybe_commit(&mut self) {
        if let Some(c) = self.committing.take_if(|c| c.is_finished()) {
            match c.join() {
                Ok(Ok(epoch)) => self.committed_(epoch),
                Ok(Err(e)) => self.coord.fail(e),
                Err(_) => self
                    .coord
                    .fail(RunError::Dataflow("committing a snapshot".into())),
            }
            return;
        }
        let Some(epoch) = self.in_progress else {
            return;
        };
        if self.committing.is_some() {
            return;
        }
        if let Some(failure) = self.failure() {
            return self.coord.fail(failure);
        }
        if let Some(commit) = self.ready_to_commit(epoch) {
            self.committing = Some(commit.spawn());
        }
    }

    /// The commit of snapshot `epoch`, when all it needs is in.
    fn ready_to_commit(&self, epoch: u64) -> Option<Commit> {
        let coord = &self.coord;
        let (files, offsets, emitted) = self.parts(epoch)?;
        if coord.processes > 1 && !self.peers_committed(epoch, emitted)? {
            return None;
        }
        let marks = self.marks_of(epoch)?;
        let reject_marks = Some(coord.reject_marks.lock().ok()?.get(&epoch).cloned()?);
        let rejects_end = self
            .rejects_out
            .as_ref()
            .and_then(|r| r.lock().ok().map(|mut r| r.mark()));
        let (_, frontier) = coord.capture_requested()?;
        Some(Commit {
            state: self.state.clone(),
            tmp: coord.tmp_dir(&self.state, epoch).ok()?,
            epoch,
            frontier,
            topic: self.topic.clone(),
            workers: coord.workers,
            files,
            offsets,
            marks,
            reject_marks,
            rejects_end,
            durable: self.durable.clone(),
            versions: self.notices(),
        })
    }

    /// This process's parts of snapshot `epoch`, once every worker's is
    /// written: files, input offsets, and the rejects each worker had
    /// emitted (global worker, count).
    #[allow(clippy::type_complexity)]
    fn parts(&self, epoch: u64) -> Option<(Vec<PartFile>, Vec<(u32, i64)>, Vec<(u64, u64)>)> {
        let saved = self.coord.saved.lock().ok()?;
        if saved.len() < self.coord.workers || saved.values().any(|(e, _, _, _)| *e != epoch) {
            return None;
        }
        let files = saved.values().map(|(_, f, _, _)| f.clone()).collect();
        let offsets = saved.values().flat_map(|(_, _, o, _)| o.clone()).collect();
        let emitted = saved
            .iter()
            .map(|(&w, (_, _, _, r))| (w as u64, *r))
            .collect();
        Some((files, offsets, emitted))
    }

    /// (Process 0 of a cluster) whether every other process has committed
    /// snapshot `epoch`, and worker 0 has written every reject the workers
    /// of the cluster emitted before capturing it (`emitted`: this
    /// process's).
    fn peers_committed(&self, epoch: u64, mut emitted: Vec<(u64, u64)>) -> Option<bool> {
        let coord = &self.coord;
        {
            let from = coord.from_peers.lock().ok()?;
            for p in 1..coord.processes {
                match from.get(&p) {
                    Some((e, rejects)) if *e == epoch => emitted.extend(rejects.iter().copied()),
                    _ => return Some(false),
                }
            }
        }
        let peers = coord.peers;
        let all_written = emitted.iter().all(|&(w, n)| {
            self.rejects_written
                .of(|p| p as usize % peers == w as usize)
                >= n
        });
        Some(all_written)
    }

    /// (The first worker of a process other than 0) once every worker of
    /// this process has written its part of the snapshot being taken,
    /// commits this process's snapshot (on a thread), then reports it to
    /// process 0.
    fn maybe_commit_part(&mut self) {
        if let Some(c) = self.committing.take_if(|c| c.is_finished()) {
            match c.join() {
                Ok(Ok(epoch)) => {
                    let coord = &self.coord;
                    if let Ok(mut saved) = coord.saved.lock() {
                        saved.clear();
                    }
                    if let Ok(mut t) = coord.tmp.lock() {
                        *t = None;
                    }
                    if let Ok(mut m) = coord.marks.lock() {
                        m.retain(|&e, _| e > epoch);
                    }
                    self.committed = epoch;
                    self.outbox.borrow_mut().push(Report::Committed {
                        process: coord.process as u64,
                        epoch,
                        rejects: std::mem::take(&mut self.reporting),
                    });
                }
                Ok(Err(e)) => self.coord.fail(e),
                Err(_) => self
                    .coord
                    .fail(RunError::Dataflow("committing a snapshot".into())),
            }
            return;
        }
        if self.committing.is_some() {
            return;
        }
        let Some((epoch, frontier)) = self.coord.capture_requested() else {
            return;
        };
        if epoch <= self.committed {
            return;
        }
        let Some((files, offsets, emitted)) = self.parts(epoch) else {
            return;
        };
        let Some(marks) = self.marks_of(epoch) else {
            return;
        };
        let Ok(tmp) = self.coord.tmp_dir(&self.state, epoch) else {
            return;
        };
        self.reporting = emitted;
        let commit = Commit {
            state: self.state.clone(),
            tmp,
            epoch,
            frontier,
            topic: self.topic.clone(),
            workers: self.coord.workers,
            files,
            offsets,
            marks,
            reject_marks: None,
            rejects_end: None,
            durable: self.durable.clone(),
            versions: self.notices(),
        };
        self.committing = Some(commit.spawn());
    }

    /// The marks of snapshot `epoch`, once every writer of this process
    /// has taken its own.
    fn marks_of(&self, epoch: u64) -> Option<Marks> {
        if self.coord.marking == 0 {
            return Some(Marks::default());
        }
        let slot = self.coord.marks.lock().ok()?;
        slot.get(&epoch)
            .filter(|m| m.writers >= self.coord.marking)
            .cloned()
    }

    /// Every hunt version this process knows, for a snapshot.
    fn notices(&self) -> Vec<Notice> {
        self.versions
            .read()
            .map(|v| v.notices())
            .unwrap_or_default()
    }

    /// Snapshot `epoch` is committed.
    fn committed_(&mut self, epoch: u64) {
        let coord = &self.coord;
        if let Ok(mut saved) = coord.saved.lock() {
            saved.clear();
        }
        if let Ok(mut t) = coord.tmp.lock() {
            *t = None;
        }
        if let Ok(mut m) = coord.marks.lock() {
            m.retain(|&e, _| e > epoch);
        }
        if let Ok(mut m) = coord.reject_marks.lock() {
            m.retain(|&e, _| e > epoch);
        }
        self.last = Instant::now();
        self.committed = epoch;
        self.in_progress = None;
        if self
            .stopping
            .as_ref()
            .is_some_and(|s| s.last == Some(epoch))
        {
            let frontier = coord.capture_requested().map_or(0, |(_, at)| at);
            self.finish(format!(
                "huntflow: stopped after snapshot {epoch} at frontier {frontier}; every output is written up to it"
            ));
        }
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
        if self.local != 0 {
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

/// Writes a worker's part of snapshot `source.epoch` on a thread of its
/// own; its result is the part with its partitions' offsets.
fn write_part(
    tmp: PathBuf,
    index: usize,
    source: SourceCapture,
    facts: Capture,
) -> JoinHandle<Result<Part, RunError>> {
    std::thread::spawn(move || {
        let players = facts.players_jsonl();
        let file = StateDir::write_part(&tmp, index, &source.partitions, &players)?;
        let offsets = source
            .partitions
            .iter()
            .filter_map(|p| p.next.map(|n| (p.partition, n)))
            .collect();
        Ok((source.epoch, file, offsets, source.rejects))
    })
}
