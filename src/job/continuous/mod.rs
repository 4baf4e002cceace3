//! The continuous job: Kafka in, notifications out, exactly once across
//! crashes without Kafka transactions.
//!
//! ```text
//!  topic partitions ──► Kafka source (per worker) ──► dataflow ──► sink (worker 0) ──► output topic / file
//!        │                 │ rejects ──► reject sink (per worker) ─────────────────► rejects topic / file
//!        │                 │                                                 ▲
//!        │   every N s: control operator sends the marker at the input frontier F; sources capture
//!        │   at once, state and output marks as the marker passes ─► parts written ─► outputs durable
//!        │   to the marks ─► snapshot N (atomic rename); reading never stops
//!        └── restart: load snapshot N, seek to its offsets, re-derive state at F-1 (not written),
//!            read each output since snapshot N's marks and skip exactly what is already there
//! ```
//!
//! Everything the job writes is a function of the input partitions
//! (docs/spec.md §7), so a restarted job re-creates byte for byte what it
//! wrote after its last snapshot; each output skips the prefix its
//! destination already holds ([`crate::output::resume`]); until it has
//! re-created all of that prefix it takes no snapshot, since one would mark
//! the prefix as written at an earlier frontier. The only decisions that
//! are not a function of the input (idle partitions advanced by wall
//! clock, partitions added while running) are logged before they act and
//! replayed at the same offsets.
//!
//! - [`outputs`]: the outputs, opened where the last snapshot left them;
//! - [`snapshot`]: the state directory (snapshots, the advance log);
//! - `worker`: the workers' loop and the snapshot protocol.

mod commit;
mod control;
mod decision_log;
pub mod hunt_record;
pub mod outputs;
mod peers;
pub mod snapshot;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::input::hunt_topic::Decision;
use crate::input::stats::{HuntChangeCounts, InputError, Stats};
use crate::job::cluster::{Cluster, Digest};
use crate::kafka::admin::Admin;
use crate::kafka::{KafkaConfig, KafkaError};
use crate::model::hunt::{Hunt, HuntError};
use crate::model::versions::{SharedVersions, Versions};
use crate::output::OutputError;
use crate::serve::cluster::Plane;
use crate::serve::Live;
use hunt_record::ChangeLog;
pub use outputs::Target;
use snapshot::{Loaded, SnapshotError, StateDir};

/// Settings of the continuous job.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub hunt: PathBuf,
    pub brokers: String,
    pub topic: String,
    pub workers: usize,
    pub output: Target,
    /// Default: `rejects.jsonl` in the state directory.
    pub rejects: Option<Target>,
    pub state_dir: PathBuf,
    /// librdkafka settings, `key=value`.
    pub kafka_options: Vec<String>,
    /// Advance partitions idle this long; `None`: never.
    pub idle: Option<Duration>,
    pub snapshot_every: Duration,
    /// Partitions of output topics the job creates (default: as the input).
    pub output_partitions: Option<u32>,
    pub slice: usize,
    /// Serve the analysts' API.
    pub serve: Option<crate::serve::ServeOptions>,
    /// Write presence and eligibility intervals here.
    pub derived: Option<PathBuf>,
    /// Read hunt changes from this topic (one partition).
    pub hunt_topic: Option<String>,
    /// `-n`, `-p`, `-h`: the cluster this process is part of (with
    /// `workers` as `-w`; see [`crate::job::cluster`]).
    pub cluster: crate::job::cluster::ClusterFlags,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Hunt(#[from] HuntError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Config(String),
    #[error("{}: the state directory was built with another hunt than {} ({difference}); state is never reinterpreted under another hunt: apply changes to a running hunt with `huntflow hunt-change`, or start from a new state directory", state.display(), given.display())]
    HuntChanged {
        state: PathBuf,
        given: PathBuf,
        difference: String,
    },
    #[error("{}: this state directory was built by another cluster layout ({difference}); each process resumes only from the state directory it built, with the same -n, -w, -p and hostfile: start it as it was built, or from a new state directory", state.display())]
    Layout { state: PathBuf, difference: String },
    #[error(transparent)]
    Cluster(#[from] crate::job::cluster::ClusterError),
    #[error("the dataflow failed: {0}")]
    Dataflow(String),
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether starting again from the last snapshot can get past it: the
    /// broker away or refusing a write; not a wrong hunt, option or file,
    /// nor a state directory that cannot be written (a full disk).
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::Kafka(e) => matches!(e, KafkaError::Client { .. } | KafkaError::Topic { .. }),
            RunError::Output(e) => e.is_transient(),
            RunError::Input(e) => e.transient,
            _ => false,
        }
    }
}

/// Runs the continuous job; it does not end by itself. After a transient
/// failure (the broker away, a write refused) it starts again from its last
/// snapshot, as a restarted process would, and the outputs resume exactly
/// where they stand. A permanent failure stops it with its message.
pub fn run(opts: &RunOptions) -> Result<(), RunError> {
    let mut wait = Duration::from_millis(500);
    let cluster = check(opts)?;
    let stop = stop_on_signals()?;
    let hunt = Arc::new(Hunt::load(&opts.hunt)?);
    // Versions only grow: a restart inside the process adds the same ones.
    let versions = Versions::new((*hunt).clone()).shared();
    let stats = Arc::new(Stats {
        hunt_changes: opts
            .hunt_topic
            .as_ref()
            .map(|_| HuntChangeCounts::default()),
        ..Stats::default()
    });
    // The API: served by process 0; the other processes of a cluster keep
    // their players where process 0 can ask for them.
    let live = match &opts.serve {
        None => None,
        Some(serve) if cluster.is_leader() => Some(
            serve
                .launch(versions.clone(), stats.clone())
                .map_err(|source| RunError::Serve {
                    addr: serve.addr,
                    source,
                })?,
        ),
        Some(serve) => Some(Live::new(versions.clone(), stats.clone(), serve.retention)),
    };
    let plane = match &live {
        Some(live) if cluster.processes() > 1 => {
            let plane = Plane::new(cluster.processes(), cluster.threads());
            live.join_cluster(plane.clone());
            Some(plane)
        }
        _ => None,
    };
    loop {
        let started = std::time::Instant::now();
        let serving = Serving {
            live: live.clone(),
            plane: plane.clone(),
        };
        match run_once(opts, &cluster, &hunt, &versions, &stats, serving, &stop) {
            Ok(Some(said)) => {
                eprintln!("{said}");
                return Ok(());
            }
            Ok(None) => return Ok(()),
            // A process of a cluster cannot start again alone: it ends, the
            // others notice, and all are started again together.
            Err(e) if e.is_transient() && cluster.processes() == 1 => {
                if started.elapsed() > Duration::from_secs(60) {
                    wait = Duration::from_millis(500);
                }
                eprintln!(
                    "huntflow: {e}; starting again from the last snapshot in {:.1} s",
                    wait.as_secs_f64()
                );
                if stopped_while_waiting(&stop, wait) {
                    eprintln!("huntflow: stopped before starting again; the next start resumes from the last snapshot");
                    return Ok(());
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

fn check(opts: &RunOptions) -> Result<Cluster, RunError> {
    if opts.workers == 0 {
        return Err(RunError::Config("workers must be at least 1".into()));
    }
    if opts.output == Target::Stdout && opts.rejects == Some(Target::Stdout) {
        return Err(RunError::Config(
            "notifications and rejects cannot both go to standard output".into(),
        ));
    }
    Ok(Cluster::load(opts.workers, &opts.cluster)?)
}

/// A digest of what every process of a cluster must agree on (brokers and
/// librdkafka settings may differ from machine to machine).
fn fingerprint(opts: &RunOptions, hunt: &Hunt) -> u64 {
    let mut d = Digest::default();
    d.text(b"run")
        .text(hunt.text.toml.as_bytes())
        .text(hunt.text.geojson.as_deref().unwrap_or("").as_bytes())
        .text(opts.topic.as_bytes())
        .text(format!("{:?}", opts.output).as_bytes())
        .text(format!("{:?}", opts.rejects).as_bytes())
        .text(format!("{:?}", opts.derived).as_bytes())
        .text(format!("{:?}", opts.hunt_topic).as_bytes())
        .number(opts.idle.map_or(0, |d| d.as_millis() as u64 + 1))
        .number(opts.output_partitions.map_or(0, |n| u64::from(n) + 1))
        .number(opts.slice as u64)
        .number(u64::from(opts.serve.is_some()));
    d.finish()
}

/// The hunt topic (one partition, created if missing) and the decisions
/// logged on it so far, whose accepted versions join `versions`.
fn hunt_changes(
    opts: &RunOptions,
    admin: &Admin,
    topic: &str,
    versions: &SharedVersions,
) -> Result<(Arc<ChangeLog>, Vec<Decision>), RunError> {
    let n = admin.ensure_topic(topic, 1)?;
    if n != 1 {
        return Err(RunError::Config(format!(
            "--hunt-topic {topic}: the hunt topic must have one partition, it has {n}"
        )));
    }
    let log = Arc::new(ChangeLog::new(&opts.state_dir));
    let decisions = log.decisions()?;
    let mut registry = versions.write().expect("versions lock");
    for notice in decisions.iter().filter_map(Decision::notice) {
        let hunt = Hunt::parse(std::path::Path::new(topic), notice.text.clone())?;
        registry.add(notice.seq, notice.effective, hunt);
    }
    Ok((log, decisions))
}

/// The hunt versions a snapshot of a process other than 0 knew, added in
/// the order it learnt them (so every item keeps its number); process 0
/// replays the later ones through the dataflow.
fn restore_versions(loaded: Option<&Loaded>, versions: &SharedVersions) {
    let Some(loaded) = loaded else {
        return;
    };
    let mut registry = versions.write().expect("versions lock");
    for notice in &loaded.manifest.versions {
        registry.add_notice(notice);
    }
}

/// A flag SIGTERM and SIGINT set (the job then stops after a last
/// snapshot); a second signal ends the process at once.
/// Waits `wait`, or less if a stop is asked for meanwhile (then `true`).
fn stopped_while_waiting(stop: &AtomicBool, wait: Duration) -> bool {
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.load(Ordering::Acquire)
}

fn stop_on_signals() -> Result<Arc<AtomicBool>, RunError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for (signal, code) in [(SIGTERM, 143), (SIGINT, 130)] {
        let install = || -> std::io::Result<()> {
            flag::register_conditional_shutdown(signal, code, stop.clone())?;
            flag::register(signal, stop.clone())?;
            Ok(())
        };
        install().map_err(|e| RunError::Config(format!("handling signals: {e}")))?;
    }
    Ok(stop)
}

/// The API's state, and in a cluster how process 0 reaches the others.
struct Serving {
    live: Option<Arc<Live>>,
    plane: Option<Arc<Plane>>,
}

fn run_once(
    opts: &RunOptions,
    cluster: &Cluster,
    hunt: &Arc<Hunt>,
    versions: &SharedVersions,
    stats: &Arc<Stats>,
    serving: Serving,
    stop: &Arc<AtomicBool>,
) -> Result<Option<String>, RunError> {
    let cfg = KafkaConfig::new(&opts.brokers, &opts.kafka_options)?;
    hunt_record::check_or_record(&opts.state_dir, hunt)?;
    let state = StateDir::open(&opts.state_dir)?;
    let (state, loaded, connected) = if cluster.processes() > 1 {
        let state = state.keeping(snapshot::KEEP_IN_CLUSTER);
        let epochs = state.epochs()?;
        peers::check_layout(&opts.state_dir, cluster, !epochs.is_empty())?;
        let connected = cluster.connect(fingerprint(opts, hunt), peers::held(&epochs))?;
        let epoch = peers::resume_epoch(connected.held(), cluster)?;
        if epochs.last().is_some_and(|&e| e > epoch) {
            eprintln!(
                "huntflow: resuming from snapshot {epoch}, the newest every process holds; the newer ones in {} are dropped",
                opts.state_dir.display()
            );
        }
        state.discard_after(epoch)?;
        let loaded = state.load_epoch(epoch)?;
        (state, loaded, connected)
    } else {
        peers::check_layout(&opts.state_dir, cluster, false)?;
        let loaded = state.load_latest()?;
        (state, loaded, cluster.connect(0, Default::default())?)
    };
    let state = Arc::new(state);
    if let Some(l) = &loaded {
        if l.manifest.topic != opts.topic {
            return Err(RunError::Config(format!(
                "{}: the state directory belongs to a job reading topic {:?}, not {:?}",
                opts.state_dir.display(),
                l.manifest.topic,
                opts.topic
            )));
        }
    }
    let advances = state.advances()?;
    let admin = Admin::new(&cfg)?;
    let input_partitions = admin
        .partitions(&opts.topic)?
        .ok_or_else(|| KafkaError::NoTopic(opts.topic.clone()))?;
    // Process 0 reads the hunt topic and logs its decisions; the others
    // learn the versions through the dataflow, and after a restart from
    // their snapshot.
    let changes = match &opts.hunt_topic {
        Some(topic) if cluster.is_leader() => Some(hunt_changes(opts, &admin, topic, versions)?),
        _ => {
            restore_versions(loaded.as_ref(), versions);
            None
        }
    };
    // A notifications topic is written by its partitions' owners, on every
    // process; process 0 writes every other output. Both read back what
    // their destinations hold at once.
    let producer = outputs::producer(opts, &cfg, cluster.is_leader())?;
    let first = cluster.first_worker_of(cluster.process());
    let workers = (first..first + cluster.threads(), cluster.peers());
    let (owned, opened) = std::thread::scope(|scope| {
        let for_owned = (input_partitions, producer.clone());
        let owned =
            scope.spawn(|| outputs::open_owned(opts, &cfg, loaded.as_ref(), for_owned, workers));
        let opened = if cluster.is_leader() {
            let registry = versions.read().expect("versions lock");
            let at = (input_partitions, producer.clone());
            outputs::open(opts, &cfg, &registry, loaded.as_ref(), at).map(Some)
        } else {
            Ok(None)
        };
        let owned = owned
            .join()
            .unwrap_or_else(|_| Err(RunError::Config("opening the outputs failed".into())));
        (owned, opened)
    });
    let (owned, opened) = (owned?, opened?);
    if let Some(live) = &serving.live {
        // The API state is rebuilt from the snapshot like the rest.
        live.reset();
    }
    worker::Job {
        opts: opts.clone(),
        cluster: cluster.clone(),
        connected,
        hunt: hunt.clone(),
        versions: versions.clone(),
        changes,
        cfg,
        state,
        loaded,
        advances,
        input_partitions,
        opened,
        owned,
        stats: stats.clone(),
        live: serving.live,
        plane: serving.plane,
        stop: stop.clone(),
    }
    .run()
}
