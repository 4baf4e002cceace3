//! The continuous job: Kafka in, notifications out, exactly once across
//! crashes without Kafka transactions.
//!
//! ```text
//!  topic partitions ──► Kafka source (per worker) ──► dataflow ──► sink (worker 0) ──► output topic / file
//!        │                 │ rejects ─────────────────────────────────────────────► rejects topic / file
//!        │                 │                                                 ▲
//!        │   every N s: pause sources ─► wait until output frontier = F ─► save state ─► flush outputs
//!        │                                                                   └► snapshot N (atomic rename)
//!        └── restart: load snapshot N, seek to its offsets, re-derive state at F-1 (not written),
//!            read each output since snapshot N's marks and skip exactly what is already there
//! ```
//!
//! Everything the job writes is a function of the input partitions (SPEC
//! §7), so a restarted job re-creates byte for byte what it wrote after its
//! last snapshot; each output skips the prefix its destination already holds
//! ([`resume`]); until it has re-created all of that prefix it takes no
//! snapshot, since one would mark the prefix as written at an earlier
//! frontier. The only decisions that are not a function of the input
//! (idle partitions advanced by wall clock, partitions added while running)
//! are logged before they act and replayed at the same offsets.

pub mod resume;
pub mod snapshot;
mod worker;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::derived::{self, Derived, SharedDerived};
use crate::hunt::{Hunt, HuntError};
use crate::kafka::admin::Admin;
use crate::kafka::output::{KafkaNotifications, KafkaRejects, Producer};
use crate::kafka::source::RejectWriter;
use crate::kafka::{KafkaConfig, KafkaError};
use crate::sink::NotificationOutput;
use resume::{Destination, FileNotifications, FileRejects, Held, SharedFile};
use snapshot::{SnapshotError, StateDir};

/// Where an output goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Kafka(String),
    File(PathBuf),
    Stdout,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(topic) = s.strip_prefix("kafka:") {
            if topic.is_empty() {
                return Err("kafka: needs a topic name".into());
            }
            return Ok(Target::Kafka(topic.to_string()));
        }
        if s == "-" {
            return Ok(Target::Stdout);
        }
        if s.is_empty() {
            return Err("empty output".into());
        }
        Ok(Target::File(PathBuf::from(s)))
    }
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Hunt(#[from] HuntError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("the job stopped: {0}")]
    Failed(String),
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

fn file_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::Output {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// How the snapshot protocol makes the outputs durable and where they end.
pub(crate) enum Durable {
    Kafka {
        producer: Arc<Producer>,
        admin: Admin,
        topic: String,
        partitions: u32,
    },
    File(Arc<SharedFile>),
    Stdout,
}

impl Durable {
    /// Writes out everything handed over so far; returns the end marks.
    fn flush(&self) -> Result<Vec<i64>, String> {
        match self {
            Durable::Kafka {
                producer,
                admin,
                topic,
                partitions,
            } => {
                producer.flush()?;
                crate::kafka::output::marks(admin, topic, *partitions).map_err(|e| e.to_string())
            }
            Durable::File(f) => f
                .sync()
                .map(|len| vec![len as i64])
                .map_err(|e| format!("{}: {e}", f.path().display())),
            Durable::Stdout => Ok(Vec::new()),
        }
    }

    fn failure(&self) -> Option<String> {
        match self {
            Durable::Kafka { producer, .. } => producer.failure(),
            _ => None,
        }
    }
}

/// An output, how it is made durable, and what it held beyond the snapshot.
type Opened<T> = (T, Durable, Held);

/// Opens an output file for appending, with its lines since the mark.
fn open_file(
    path: &std::path::Path,
    marks: Option<&[i64]>,
) -> Result<(Arc<SharedFile>, Vec<Vec<u8>>), RunError> {
    let from = marks.and_then(|m| m.first()).copied().unwrap_or(0) as u64;
    let (file, lines) = SharedFile::open(path, from).map_err(file_err(path))?;
    Ok((Arc::new(file), lines))
}

#[allow(clippy::too_many_arguments)]
fn open_notifications(
    opts: &RunOptions,
    cfg: &KafkaConfig,
    producer: &mut Option<Arc<Producer>>,
    hunt: &Hunt,
    marks: Option<&[i64]>,
    below: u64,
    written: Arc<AtomicU64>,
    input_partitions: u32,
) -> Result<Opened<Box<dyn NotificationOutput + Send>>, RunError> {
    match &opts.output {
        Target::Kafka(topic) => {
            let admin = Admin::new(cfg)?;
            admin.ensure_topic(topic, opts.output_partitions.unwrap_or(input_partitions))?;
            let p = shared_producer(producer, cfg)?;
            let out = KafkaNotifications::open(
                cfg,
                &admin,
                p.clone(),
                topic,
                hunt,
                marks,
                below,
                written,
            )?;
            let partitions = out.partitions();
            let held = out.held();
            Ok((
                Box::new(out),
                Durable::Kafka {
                    producer: p,
                    admin,
                    topic: topic.clone(),
                    partitions,
                },
                held,
            ))
        }
        Target::File(path) => {
            let (file, lines) = open_file(path, marks)?;
            let out = FileNotifications::new(
                Destination::File(file.clone()),
                hunt,
                &lines,
                below,
                written,
            )
            .map_err(|message| RunError::Output {
                path: path.clone(),
                message,
            })?;
            let held = out.held();
            Ok((Box::new(out), Durable::File(file), held))
        }
        Target::Stdout => {
            let dest = Destination::Stdout(std::io::BufWriter::new(std::io::stdout()));
            let out = FileNotifications::new(dest, hunt, &[], below, written)
                .map_err(RunError::Config)?;
            Ok((Box::new(out), Durable::Stdout, Held::default()))
        }
    }
}

fn open_rejects(
    target: &Target,
    cfg: &KafkaConfig,
    producer: &mut Option<Arc<Producer>>,
    marks: Option<&[i64]>,
    input_partitions: u32,
) -> Result<Opened<Arc<dyn RejectWriter>>, RunError> {
    match target {
        Target::Kafka(topic) => {
            let admin = Admin::new(cfg)?;
            admin.ensure_topic(topic, input_partitions)?;
            let p = shared_producer(producer, cfg)?;
            let out = KafkaRejects::open(cfg, &admin, p.clone(), topic, marks)?;
            let partitions = out.partitions();
            let held = out.held();
            Ok((
                Arc::new(out),
                Durable::Kafka {
                    producer: p,
                    admin,
                    topic: topic.clone(),
                    partitions,
                },
                held,
            ))
        }
        Target::File(path) => {
            let (file, lines) = open_file(path, marks)?;
            let out = FileRejects::new(Destination::File(file.clone()), &lines);
            let held = out.held();
            Ok((Arc::new(out), Durable::File(file), held))
        }
        Target::Stdout => {
            let dest = Destination::Stdout(std::io::BufWriter::new(std::io::stdout()));
            Ok((
                Arc::new(FileRejects::new(dest, &[])),
                Durable::Stdout,
                Held::default(),
            ))
        }
    }
}

/// Opens the derived interval files where the snapshot left them.
fn open_derived(
    dir: &std::path::Path,
    hunt: &Hunt,
    opts: &RunOptions,
    loaded: Option<&snapshot::Loaded>,
) -> Result<(SharedDerived, [Durable; 2], Held), RunError> {
    let mark = match loaded {
        None => None,
        Some(l) => Some(l.manifest.derived.as_ref().ok_or_else(|| {
            RunError::Config(format!(
                "--derived {}: the last snapshot in {} was taken without --derived, so the intervals open then are unknown; write derived files from a new state directory",
                dir.display(),
                opts.state_dir.display()
            ))
        })?),
    };
    std::fs::create_dir_all(dir).map_err(file_err(dir))?;
    let mut held = Held::default();
    let mut open_one = |i: usize| -> Result<(Arc<SharedFile>, Vec<Vec<u8>>), RunError> {
        let path = dir.join(derived::FILES[i]);
        let mark = mark.map(|m| [m.marks[i] as i64]);
        let (file, since) = open_file(&path, mark.as_ref().map(|m| &m[..]))?;
        for (n, line) in since.iter().enumerate() {
            let until = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["until"].as_u64())
                .ok_or_else(|| RunError::Output {
                    path: path.clone(),
                    message: format!(
                        "line {} after the snapshot mark is not a closed interval",
                        n + 1
                    ),
                })?;
            held.time(Some(until));
        }
        Ok((file, since))
    };
    let (presence, presence_since) = open_one(0)?;
    let (eligibility, eligibility_since) = open_one(1)?;
    let outs: [Box<dyn std::io::Write + Send>; 2] = [
        Box::new(Destination::File(presence.clone())),
        Box::new(Destination::File(eligibility.clone())),
    ];
    let resumed = derived::Resumed {
        held: [presence_since, eligibility_since],
        open: loaded.map(|l| l.derived_open.clone()).unwrap_or_default(),
        below: loaded.map_or(0, |l| l.manifest.frontier),
    };
    let d = Derived::resume(dir, hunt, outs, resumed).map_err(file_err(dir))?;
    Ok((
        Arc::new(Mutex::new(d)),
        [Durable::File(presence), Durable::File(eligibility)],
        held,
    ))
}

fn shared_producer(
    slot: &mut Option<Arc<Producer>>,
    cfg: &KafkaConfig,
) -> Result<Arc<Producer>, RunError> {
    if slot.is_none() {
        *slot = Some(Arc::new(Producer::new(cfg)?));
    }
    Ok(slot.clone().expect("set"))
}

impl RunError {
    /// Whether starting again from the last snapshot can get past it: the
    /// broker away or refusing a write; not a wrong hunt, option or file.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RunError::Kafka(KafkaError::Client { .. } | KafkaError::Topic { .. })
                | RunError::Failed(_)
        )
    }
}

/// Runs the continuous job; it does not end by itself. After a transient
/// failure (the broker away, a write refused) it starts again from its last
/// snapshot, as a restarted process would, and the outputs resume exactly
/// where they stand.
pub fn run(opts: &RunOptions) -> Result<(), RunError> {
    let mut wait = Duration::from_millis(500);
    let stats = Arc::new(crate::source::Stats::default());
    let live = match &opts.serve {
        None => None,
        Some(serve) => {
            let hunt = Arc::new(Hunt::load(&opts.hunt)?);
            Some(
                serve
                    .launch(hunt, stats.clone(), opts.workers)
                    .map_err(|source| RunError::Serve {
                        addr: serve.addr,
                        source,
                    })?,
            )
        }
    };
    loop {
        let started = std::time::Instant::now();
        match run_once(opts, &stats, live.as_ref()) {
            Err(e) if e.is_transient() => {
                if started.elapsed() > Duration::from_secs(60) {
                    wait = Duration::from_millis(500);
                }
                eprintln!(
                    "huntflow: {e}; starting again from the last snapshot in {:.1} s",
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

fn run_once(
    opts: &RunOptions,
    stats: &Arc<crate::source::Stats>,
    live: Option<&Arc<crate::serve::Live>>,
) -> Result<(), RunError> {
    if opts.workers == 0 {
        return Err(RunError::Config("workers must be at least 1".into()));
    }
    if opts.output == Target::Stdout && opts.rejects == Some(Target::Stdout) {
        return Err(RunError::Config(
            "notifications and rejects cannot both go to standard output".into(),
        ));
    }
    let hunt = Arc::new(Hunt::load(&opts.hunt)?);
    let cfg = KafkaConfig::new(&opts.brokers, &opts.kafka_options)?;
    let state = Arc::new(StateDir::open(&opts.state_dir)?);
    let loaded = state.load_latest()?;
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

    let below = loaded.as_ref().map_or(0, |l| l.manifest.frontier);
    let written = Arc::new(AtomicU64::new(below));
    let mut producer = None;
    let (output, out_durable, mut held) = open_notifications(
        opts,
        &cfg,
        &mut producer,
        &hunt,
        loaded.as_ref().map(|l| l.manifest.output_marks.as_slice()),
        below,
        written.clone(),
        input_partitions,
    )?;
    let rejects_target = opts
        .rejects
        .clone()
        .unwrap_or_else(|| Target::File(opts.state_dir.join("rejects.jsonl")));
    let (rejects, rej_durable, rej_held) = open_rejects(
        &rejects_target,
        &cfg,
        &mut producer,
        loaded.as_ref().map(|l| l.manifest.reject_marks.as_slice()),
        input_partitions,
    )?;

    held.merge(rej_held);
    let mut durable = vec![out_durable, rej_durable];
    let derived = match &opts.derived {
        None => None,
        Some(dir) => {
            let (derived, files, derived_held) = open_derived(dir, &hunt, opts, loaded.as_ref())?;
            held.merge(derived_held);
            durable.extend(files);
            Some(derived)
        }
    };

    if let Some(live) = live {
        // The API state is rebuilt from the snapshot like the rest.
        live.reset();
    }
    let job = worker::Job::new(worker::JobParts {
        opts: opts.clone(),
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
        stats: stats.clone(),
        live: live.cloned(),
    });
    job.run()
}
