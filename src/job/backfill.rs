//! Backfill: the job over dataset files (or standard input), one partition
//! per input, run to completion, with the read/accepted/rejected summary.
//!
//! In a cluster (`-n` > 1) every process is given the same arguments and
//! opens only the files its workers read (partition `p` on global worker
//! `p % (n·w)`); process 0 writes every output and counts every process's
//! records, which the sources report to worker 0 through the dataflow.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::assemble::{self, Assembly, Outputs, Writer};
use super::cluster::{Cluster, ClusterError, ClusterFlags, Digest};
use crate::input::admission::max_ahead_ms;
use crate::input::changes::{self, ChangeLog};
use crate::input::files::{self, Partition, Throttle};
use crate::input::reader::Reader;
use crate::input::reject::Reject;
use crate::input::stats::{HuntChangeCounts, Stats, Summary};
use crate::model::hunt::{Hunt, HuntError};
use crate::model::versions::{Notice, SharedVersions, Versions};
use crate::output::derived::Derived;
use crate::output::line::LineOutput;
use crate::output::rejects::{FileRejects, Origins, RejectSink, SharedRejects, When};
use crate::output::sink::ErrorSlot;
use crate::output::OutputError;
use crate::serve::cluster::Plane;
use crate::serve::Live;
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::vec::ToStream;

/// What a backfill reads and writes.
#[derive(Clone, Debug)]
pub struct BackfillOptions {
    pub hunt: PathBuf,
    /// One partition per input; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// Worker threads.
    pub workers: usize,
    /// Notifications; `None` or `-` is standard output.
    pub output: Option<PathBuf>,
    pub rejects: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    /// Interleave `{"kind":"progress","time":T}` records.
    pub progress_records: bool,
    /// Show a progress bar on standard error.
    pub progress_bar: bool,
    /// Events and timers the facts operator handles per activation at most:
    /// smaller slices mean smaller bursts downstream (output is the same).
    pub slice: usize,
    /// Serve the analysts' API while running (and after, see `huntflow backfill`).
    pub serve: Option<crate::serve::ServeOptions>,
    /// Write presence and eligibility intervals into this directory.
    pub derived: Option<PathBuf>,
    /// Hunt change records (JSON Lines), read before any event.
    pub hunt_changes: Option<PathBuf>,
    /// `-n`, `-p`, `-h`: run as one process of a cluster.
    pub cluster: ClusterFlags,
    /// Sort and format every notification on worker 0 alone, instead of
    /// each worker its share (the output is the same).
    pub single_writer: bool,
}

impl BackfillOptions {
    pub fn new(hunt: PathBuf, inputs: Vec<PathBuf>) -> Self {
        BackfillOptions {
            hunt,
            inputs,
            workers: 1,
            output: None,
            rejects: None,
            summary: None,
            progress_records: false,
            progress_bar: false,
            slice: crate::dataflow::facts::DEFAULT_SLICE,
            serve: None,
            derived: None,
            hunt_changes: None,
            cluster: ClusterFlags::default(),
            single_writer: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Hunt(#[from] HuntError),
    #[error("{path}: cannot read input: {source}")]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no input partitions given")]
    NoInputs,
    #[error("standard input can be only one partition")]
    StdinTwice,
    #[error("standard input (-) cannot be read in a cluster (-n > 1): every process is given the same arguments, and only files can be shared out")]
    StdinInCluster,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("workers must be at least 1")]
    NoWorkers,
    #[error(transparent)]
    Write(#[from] OutputError),
    #[error("dataflow failed: {0}")]
    Dataflow(String),
    #[error("serving on {addr}: {source}")]
    Serve {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// The name of an output in messages: its path, or `-`.
fn output_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "-".into(), |p| p.display().to_string())
}

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write + Send>, BackfillError> {
    match path {
        Some(p) if !is_dash(p) => {
            let f = File::create(p).map_err(|source| BackfillError::Output {
                path: p.to_owned(),
                source,
            })?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
        }
        _ => Ok(Box::new(BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))),
    }
}

type Slot<T> = Arc<Mutex<Option<T>>>;

fn take<T>(slot: &Slot<T>) -> Option<T> {
    slot.lock().ok().and_then(|mut s| s.take())
}

fn slot<T>(value: Option<T>) -> Slot<T> {
    Arc::new(Mutex::new(value))
}

/// A finished backfill.
pub struct Finished {
    /// Process 0's counts every process's records; another process's only
    /// its own.
    pub summary: Summary,
    /// The API's state, when process 0 serves it.
    pub live: Option<Arc<Live>>,
    /// Whether this is process 0, which wrote the outputs.
    pub leader: bool,
    /// Whether the process goes on serving until stopped: process 0's API
    /// (with `--serve`), or the other processes of a cluster answering it.
    pub serving: bool,
}

/// Runs a backfill to completion and returns its summary.
pub fn run(opts: &BackfillOptions) -> Result<Summary, BackfillError> {
    finish(opts).map(|f| f.summary)
}

/// [`run`], and the API state when serving (the server keeps running).
pub fn run_serving(opts: &BackfillOptions) -> Result<(Summary, Option<Arc<Live>>), BackfillError> {
    finish(opts).map(|f| (f.summary, f.live))
}

/// Opens the inputs this process reads (all of them, but in a cluster),
/// one partition each; returns them with the total size in bytes of those
/// opened (regular files only).
fn open_inputs(
    inputs: &[PathBuf],
    cluster: &Cluster,
) -> Result<(Vec<Partition>, u64), BackfillError> {
    let mut total_bytes = 0u64;
    let mut partitions = Vec::new();
    for (p, path) in inputs.iter().enumerate() {
        let name = path.display().to_string();
        if !cluster.owns_partition(p) {
            partitions.push(Partition {
                name,
                reader: Mutex::new(None),
                size: None,
            });
            continue;
        }
        let (reader, size) = if is_dash(path) {
            (Reader::stdin(), None)
        } else {
            Reader::open(path).map_err(|source| BackfillError::Input {
                path: path.clone(),
                source,
            })?
        };
        total_bytes += size.unwrap_or(0);
        partitions.push(Partition {
            name,
            reader: Mutex::new(Some(reader)),
            size,
        });
    }
    Ok((partitions, total_bytes))
}

fn check(opts: &BackfillOptions) -> Result<Cluster, BackfillError> {
    if opts.inputs.is_empty() {
        return Err(BackfillError::NoInputs);
    }
    if opts.workers == 0 {
        return Err(BackfillError::NoWorkers);
    }
    let stdin = opts.inputs.iter().filter(|p| is_dash(p)).count();
    if stdin > 1 {
        return Err(BackfillError::StdinTwice);
    }
    let cluster = Cluster::load(opts.workers, &opts.cluster)?;
    if stdin > 0 && cluster.processes() > 1 {
        return Err(BackfillError::StdinInCluster);
    }
    Ok(cluster)
}

/// A digest of what every process of a cluster must agree on: what it
/// computes and the shape of its dataflow.
fn fingerprint(opts: &BackfillOptions, hunt: &Hunt, changes: Option<&[u8]>) -> u64 {
    let mut d = Digest::default();
    d.text(b"backfill")
        .text(hunt.text.toml.as_bytes())
        .text(hunt.text.geojson.as_deref().unwrap_or("").as_bytes())
        .text(changes.unwrap_or(b"no change log"));
    for input in &opts.inputs {
        d.text(input.as_os_str().as_encoded_bytes());
    }
    d.number(opts.inputs.len() as u64)
        .number(opts.slice as u64)
        .number(u64::from(opts.serve.is_some()))
        .number(u64::from(opts.single_writer));
    d.finish()
}

/// What process 0 writes, opened: everything but the API.
struct LeaderOutputs {
    destination: LineOutput,
    derived: Option<Derived>,
    rejects: Option<SharedRejects>,
}

fn open_leader_outputs(
    opts: &BackfillOptions,
    names: &Arc<Vec<String>>,
) -> Result<LeaderOutputs, BackfillError> {
    let output_path = opts.output.as_deref();
    let destination = LineOutput::new(
        output_name(output_path),
        open_output(output_path)?,
        opts.progress_records,
    );
    let derived = match &opts.derived {
        None => None,
        Some(dir) => Some(
            Derived::create(dir).map_err(|source| BackfillError::Output {
                path: dir.clone(),
                source,
            })?,
        ),
    };
    let rejects: Option<SharedRejects> = match &opts.rejects {
        Some(p) => {
            let origins = Origins::Files {
                inputs: names.clone(),
                changes: opts.hunt_changes.as_ref().map(|c| c.display().to_string()),
            };
            let out = open_output(Some(p))?;
            let file = FileRejects::new(output_name(Some(p)), out, origins, &[], None);
            Some(Arc::new(Mutex::new(Box::new(file) as Box<dyn RejectSink>)))
        }
        None => None,
    };
    Ok(LeaderOutputs {
        destination,
        derived,
        rejects,
    })
}

/// Runs a backfill to completion: one process, or this process's part of
/// a cluster (see [`crate::job::cluster`]). Only process 0 writes the
/// notifications, the rejects, the derived files and the summary, and
/// serves the API.
pub fn finish(opts: &BackfillOptions) -> Result<Finished, BackfillError> {
    let cluster = check(opts)?;
    let leader = cluster.is_leader();
    let in_cluster = cluster.processes() > 1;
    let hunt = Arc::new(Hunt::load(&opts.hunt)?);
    let (changes, change_bytes) = match &opts.hunt_changes {
        None => (None, None),
        Some(path) => {
            let input = |source| BackfillError::Input {
                path: path.clone(),
                source,
            };
            let bytes = std::fs::read(path).map_err(input)?;
            (
                Some(changes::read_log(path, &hunt).map_err(input)?),
                Some(bytes),
            )
        }
    };
    let (partitions, local_bytes) = open_inputs(&opts.inputs, &cluster)?;
    let names: Arc<Vec<String>> = Arc::new(partitions.iter().map(|p| p.name.clone()).collect());
    let partitions = Arc::new(partitions);
    let stats = Arc::new(Stats {
        hunt_changes: changes.as_ref().map(|_| HuntChangeCounts::default()),
        ..Stats::default()
    });
    let fingerprint = fingerprint(opts, &hunt, change_bytes.as_deref());
    let (versions, notices, change_rejects) = versions(&hunt, changes, &stats);

    let outputs = if leader {
        Some(open_leader_outputs(opts, &names)?)
    } else {
        None
    };
    let errors: ErrorSlot = Arc::new(Mutex::new(None));
    // The API: served by process 0; the other processes of a cluster keep
    // their players where process 0 can ask for them.
    let live = match &opts.serve {
        None => None,
        Some(serve) if leader => Some(serve.launch(versions.clone(), stats.clone()).map_err(
            |source| BackfillError::Serve {
                addr: serve.addr,
                source,
            },
        )?),
        Some(serve) => Some(Live::new(versions.clone(), stats.clone(), serve.retention)),
    };
    let plane = match &live {
        Some(live) if in_cluster => {
            let plane = Plane::new(cluster.processes(), cluster.threads());
            live.join_cluster(plane.clone());
            Some(plane)
        }
        _ => None,
    };
    let (destination, derived, rejects) = match outputs {
        Some(o) => (Some(o.destination), o.derived, o.rejects),
        None => (None, None, None),
    };
    let output = slot(destination.map(|destination| {
        assemble::chain(Outputs {
            destination: Box::new(destination),
            derived: derived.map(|d| Arc::new(Mutex::new(d))),
            live: live.clone().filter(|_| leader),
            below: 0,
            written: None,
        })
    }));
    let rejects = slot(rejects);

    let worker_live = live.clone();
    let worker_stats = stats.clone();
    let worker_errors = errors.clone();
    let worker_plane = plane.clone();
    let slice = opts.slice;
    let max_ahead_ms = max_ahead_ms(&hunt);
    let writer = if opts.single_writer {
        Writer::Single
    } else {
        Writer::Parallel
    };
    let remote_bytes = Arc::new(AtomicU64::new(0));
    let worker_remote_bytes = remote_bytes.clone();
    let owner = cluster.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let guards = cluster.execute(fingerprint, move |worker| {
        let index = worker.index();
        if let Some(live) = &worker_live {
            crate::serve::metrics::count_arrangements(worker, live.clone());
        }
        let players = crate::serve::worker_players(worker_live.as_deref());
        let job = worker.next_dataflow_index();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let probe = timely::dataflow::ProbeHandle::new();
            let throttle = Throttle {
                probe: probe.clone(),
                max_ahead_ms,
            };
            let (mut inputs, reports) = files::build(
                scope,
                partitions.clone(),
                hunt.clone(),
                worker_stats.clone(),
                Some(throttle),
            );
            let local = owner.clone();
            files::count_reports(
                reports,
                worker_stats.clone(),
                names.clone(),
                move |p| local.owns_partition(p as usize),
                worker_remote_bytes.clone(),
            );
            let mine = if index == 0 {
                change_rejects.clone()
            } else {
                Vec::new()
            };
            inputs.rejects = inputs.rejects.concat(mine.to_stream(scope));
            inputs.control = Some(changes::notices(scope, notices.clone()));
            let config = crate::dataflow::Config::versions(versions.clone())
                .slice(slice)
                .players(players);
            assemble::assemble_with(
                inputs,
                Assembly {
                    versions: versions.clone(),
                    dataflow: config,
                    output: if index == 0 { take(&output) } else { None },
                    rejects: if index == 0 { take(&rejects) } else { None },
                    when: When::Complete,
                    marks: None,
                    owned: None,
                    errors: worker_errors.clone(),
                    probe: probe.clone(),
                },
                writer,
            );
            probe
        });
        if let (Some(plane), Some(live)) = (&worker_plane, &worker_live) {
            crate::serve::cluster::build(worker, plane.clone(), live.clone());
        }
        // Until every output is written: the job's dataflow is gone (the
        // queries' dataflow, if any, goes on).
        while !probe.done() || worker.installed_dataflows().contains(&job) {
            worker.step_or_park(None);
        }
        // Every time is complete, on every process: a peer going away now
        // loses nothing.
        if in_cluster {
            crate::job::cluster::mark_done();
        }
        if let Some(plane) = &worker_plane {
            plane.input_ended();
        }
        let _ = done_tx.send(());
    })?;

    let bar = if leader {
        progress_bar(opts, local_bytes, remote_bytes, &stats)
    } else {
        None
    };
    if plane.is_some() {
        // The workers go on answering the API's queries: wait for the
        // job's end without joining them.
        for _ in 0..cluster.threads() {
            if done_rx.recv().is_err() {
                break;
            }
        }
        std::thread::spawn(move || {
            for result in guards.join() {
                if let Err(e) = result {
                    eprintln!("huntflow: a worker failed: {e}");
                    std::process::exit(2);
                }
            }
        });
    } else {
        for result in guards.join() {
            result.map_err(BackfillError::Dataflow)?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(e) = errors.lock().ok().and_then(|mut e| e.take()) {
        return Err(e.into());
    }
    if let Some(e) = stats.first_error() {
        return Err(BackfillError::Input {
            path: PathBuf::from(e.partition),
            source: std::io::Error::other(e.message),
        });
    }
    let summary = Summary::from_stats(&stats);
    if leader {
        if let Some(path) = &opts.summary {
            std::fs::write(path, format!("{}\n", summary.to_json())).map_err(|source| {
                BackfillError::Output {
                    path: path.clone(),
                    source,
                }
            })?;
        }
    }
    Ok(Finished {
        summary,
        live: live.filter(|_| leader),
        leader,
        serving: opts.serve.is_some() && (leader || in_cluster),
    })
}

/// The versions of a backfill: the start hunt and every accepted change of
/// the log, all known before any event; the notices of those taking effect,
/// and the log's rejects, counted.
fn versions(
    hunt: &Hunt,
    changes: Option<ChangeLog>,
    stats: &Stats,
) -> (SharedVersions, Vec<Notice>, Vec<Reject>) {
    let mut versions = Versions::new(hunt.clone());
    let Some(log) = changes else {
        return (versions.shared(), Vec::new(), Vec::new());
    };
    if let Some(counts) = &stats.hunt_changes {
        counts
            .accepted
            .store(log.accepted.len() as u64, Ordering::Relaxed);
        counts
            .rejected
            .store(log.rejects.len() as u64, Ordering::Relaxed);
    }
    let mut notices = Vec::new();
    for (notice, hunt) in log.accepted {
        versions.add(notice.seq, notice.effective, hunt);
        notices.push(notice);
    }
    (versions.shared(), notices, log.rejects)
}

/// A progress bar over the input bytes, on a terminal: this process's
/// files and, in a cluster, the other processes' as they report them.
fn progress_bar(
    opts: &BackfillOptions,
    local_bytes: u64,
    remote_bytes: Arc<AtomicU64>,
    stats: &Arc<Stats>,
) -> Option<indicatif::ProgressBar> {
    if !(opts.progress_bar && std::io::stderr().is_terminal()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(local_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let watched = stats.clone();
    let shown = bar.clone();
    std::thread::spawn(move || loop {
        shown.set_length(local_bytes + remote_bytes.load(Ordering::Relaxed));
        shown.set_position(watched.bytes.load(Ordering::Relaxed));
        shown.set_message(format!("{} records", watched.read.load(Ordering::Relaxed)));
        if shown.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    Some(bar)
}
