//! Backfill: the job over dataset files (or standard input), one partition
//! per input, run to completion, with the read/accepted/rejected summary.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::assemble::{self, Assembly, Outputs};
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

/// Runs a backfill to completion and returns its summary.
pub fn run(opts: &BackfillOptions) -> Result<Summary, BackfillError> {
    run_serving(opts).map(|(summary, _)| summary)
}

/// Opens every input, one partition each; returns them with their total
/// size in bytes (regular files only).
fn open_inputs(inputs: &[PathBuf]) -> Result<(Vec<Partition>, u64), BackfillError> {
    let mut total_bytes = 0u64;
    let mut partitions = Vec::new();
    for path in inputs {
        let reader = if is_dash(path) {
            Reader::stdin()
        } else {
            let (reader, size) = Reader::open(path).map_err(|source| BackfillError::Input {
                path: path.clone(),
                source,
            })?;
            total_bytes += size.unwrap_or(0);
            reader
        };
        partitions.push(Partition {
            name: path.display().to_string(),
            reader: Mutex::new(Some(reader)),
        });
    }
    Ok((partitions, total_bytes))
}

fn check(opts: &BackfillOptions) -> Result<(), BackfillError> {
    if opts.inputs.is_empty() {
        return Err(BackfillError::NoInputs);
    }
    if opts.workers == 0 {
        return Err(BackfillError::NoWorkers);
    }
    if opts.inputs.iter().filter(|p| is_dash(p)).count() > 1 {
        return Err(BackfillError::StdinTwice);
    }
    Ok(())
}

/// [`run`], and the API state when serving (the server keeps running).
pub fn run_serving(
    opts: &BackfillOptions,
) -> Result<(Summary, Option<Arc<crate::serve::Live>>), BackfillError> {
    check(opts)?;
    let hunt = Arc::new(Hunt::load(&opts.hunt)?);
    let changes = match &opts.hunt_changes {
        None => None,
        Some(path) => {
            Some(
                changes::read_log(path, &hunt).map_err(|source| BackfillError::Input {
                    path: path.clone(),
                    source,
                })?,
            )
        }
    };
    let (partitions, total_bytes) = open_inputs(&opts.inputs)?;
    let names: Arc<Vec<String>> = Arc::new(partitions.iter().map(|p| p.name.clone()).collect());
    let partitions = Arc::new(partitions);
    let stats = Arc::new(Stats {
        hunt_changes: changes.as_ref().map(|_| HuntChangeCounts::default()),
        ..Stats::default()
    });
    let (versions, notices, change_rejects) = versions(&hunt, changes, &stats);

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
    let errors: ErrorSlot = Arc::new(Mutex::new(None));
    let live =
        match &opts.serve {
            None => None,
            Some(serve) => Some(serve.launch(versions.clone(), stats.clone()).map_err(
                |source| BackfillError::Serve {
                    addr: serve.addr,
                    source,
                },
            )?),
        };
    let output = slot(Some(assemble::chain(Outputs {
        destination: Box::new(destination),
        derived: derived.map(|d| Arc::new(Mutex::new(d))),
        live: live.clone(),
        below: 0,
        written: None,
    })));
    let rejects = slot(rejects);

    let worker_live = live.clone();
    let worker_stats = stats.clone();
    let worker_errors = errors.clone();
    let slice = opts.slice;
    let max_ahead_ms = max_ahead_ms(&hunt);
    let guards = timely::execute(timely::Config::process(opts.workers), move |worker| {
        let index = worker.index();
        if let Some(live) = &worker_live {
            crate::serve::metrics::count_arrangements(worker, live.clone());
        }
        let players = crate::serve::worker_players(worker_live.as_deref());
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let probe = timely::dataflow::ProbeHandle::new();
            let throttle = Throttle {
                probe: probe.clone(),
                max_ahead_ms,
            };
            let mut inputs = files::build(
                scope,
                partitions.clone(),
                hunt.clone(),
                worker_stats.clone(),
                Some(throttle),
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
            assemble::assemble(
                inputs,
                Assembly {
                    versions: versions.clone(),
                    dataflow: config,
                    output: if index == 0 { take(&output) } else { None },
                    rejects: if index == 0 { take(&rejects) } else { None },
                    when: When::Complete,
                    marks: None,
                    errors: worker_errors.clone(),
                    probe: probe.clone(),
                },
            );
            probe
        });
        while !probe.done() {
            worker.step_or_park(None);
        }
    })
    .map_err(BackfillError::Dataflow)?;

    let bar = progress_bar(opts, total_bytes, &stats);
    for result in guards.join() {
        result.map_err(BackfillError::Dataflow)?;
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
    if let Some(path) = &opts.summary {
        std::fs::write(path, format!("{}\n", summary.to_json())).map_err(|source| {
            BackfillError::Output {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok((summary, live))
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

/// A progress bar over the input bytes, on a terminal.
fn progress_bar(
    opts: &BackfillOptions,
    total_bytes: u64,
    stats: &Arc<Stats>,
) -> Option<indicatif::ProgressBar> {
    if !(opts.progress_bar && std::io::stderr().is_terminal() && total_bytes > 0) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let watched = stats.clone();
    let shown = bar.clone();
    std::thread::spawn(move || loop {
        shown.set_position(watched.bytes.load(Ordering::Relaxed));
        shown.set_message(format!("{} records", watched.read.load(Ordering::Relaxed)));
        if shown.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    Some(bar)
}
