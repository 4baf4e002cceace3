//! Backfill: the dataflow run over dataset files (or standard input), one
//! partition per input, to completion, with the read/accepted/rejected summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::Probe;

use crate::event::Reason;
use crate::hunt::{Hunt, HuntError};
use crate::input::Reader;
use crate::sink::{self, ErrorSlot};
use crate::source::{self, Partition, Stats, Throttle};

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
        }
    }
}

/// Records read, accepted, and rejected by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub accepted: u64,
    /// Only reasons with a non-zero count.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl Summary {
    pub fn from_stats(stats: &Stats) -> Self {
        let mut rejected = BTreeMap::new();
        for reason in Reason::ALL {
            let n = stats.rejected[reason.index()].load(Ordering::Relaxed);
            if n > 0 {
                rejected.insert(reason.as_str(), n);
            }
        }
        Summary {
            read: stats.read.load(Ordering::Relaxed),
            accepted: stats.accepted.load(Ordering::Relaxed),
            rejected,
        }
    }

    /// `{"read":N,"accepted":N,"rejected":{"<reason>":N,...}}`, reasons in
    /// the contract's order.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"read\":{},\"accepted\":{},\"rejected\":{{",
            self.read, self.accepted
        );
        let mut first = true;
        for reason in Reason::ALL {
            if let Some(n) = self.rejected.get(reason.as_str()) {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!("\"{}\":{n}", reason.as_str()));
            }
        }
        s.push_str("}}");
        s
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
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

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write + Send>, BackfillError> {
    match path {
        None => Ok(Box::new(BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))),
        Some(p) if is_dash(p) => Ok(Box::new(BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))),
        Some(p) => {
            let f = File::create(p).map_err(|source| BackfillError::Output {
                path: p.to_owned(),
                source,
            })?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
        }
    }
}

type Slot<T> = Arc<Mutex<Option<T>>>;

fn take<T>(slot: &Slot<T>) -> Option<T> {
    slot.lock().ok().and_then(|mut s| s.take())
}

/// Runs a backfill to completion and returns its summary.
pub fn run(opts: &BackfillOptions) -> Result<Summary, BackfillError> {
    run_serving(opts).map(|(summary, _)| summary)
}

/// [`run`], and the API state when serving (the server keeps running).
pub fn run_serving(
    opts: &BackfillOptions,
) -> Result<(Summary, Option<Arc<crate::serve::Live>>), BackfillError> {
    if opts.inputs.is_empty() {
        return Err(BackfillError::NoInputs);
    }
    if opts.workers == 0 {
        return Err(BackfillError::NoWorkers);
    }
    if opts.inputs.iter().filter(|p| is_dash(p)).count() > 1 {
        return Err(BackfillError::StdinTwice);
    }
    let hunt = Arc::new(Hunt::load(&opts.hunt)?);

    let mut total_bytes = 0u64;
    let mut partitions = Vec::new();
    for path in &opts.inputs {
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
    let names: Arc<Vec<String>> = Arc::new(partitions.iter().map(|p| p.name.clone()).collect());
    let partitions = Arc::new(partitions);

    let output: Slot<Box<dyn Write + Send>> =
        Arc::new(Mutex::new(Some(open_output(opts.output.as_deref())?)));
    let derived: Slot<crate::derived::Derived> = Arc::new(Mutex::new(match &opts.derived {
        None => None,
        Some(dir) => Some(
            crate::derived::Derived::create(dir, &hunt).map_err(|source| {
                BackfillError::Output {
                    path: dir.clone(),
                    source,
                }
            })?,
        ),
    }));
    let rejects: Slot<Box<dyn Write + Send>> = Arc::new(Mutex::new(match &opts.rejects {
        Some(p) => Some(open_output(Some(p))?),
        None => None,
    }));
    let stats = Arc::new(Stats::default());
    let errors: ErrorSlot = Arc::new(Mutex::new(None));
    let live = match &opts.serve {
        None => None,
        Some(serve) => Some(
            serve
                .launch(hunt.clone(), stats.clone(), opts.workers)
                .map_err(|source| BackfillError::Serve {
                    addr: serve.addr,
                    source,
                })?,
        ),
    };
    let worker_live = live.clone();
    let progress_records = opts.progress_records;
    let slice = opts.slice;

    let worker_stats = stats.clone();
    let worker_errors = errors.clone();
    let worker_hunt = hunt.clone();
    let max_ahead_ms = (hunt.max_lateness_ms.saturating_mul(10)).max(60_000);
    let guards = timely::execute(timely::Config::process(opts.workers), move |worker| {
        let index = worker.index();
        let out = if index == 0 { take(&output) } else { None };
        let rej = if index == 0 { take(&rejects) } else { None };
        let hunt = worker_hunt.clone();
        if let Some(live) = &worker_live {
            crate::serve::metrics::count_arrangements(worker, live.clone());
        }
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let probe = timely::dataflow::ProbeHandle::new();
            let throttle = Throttle {
                probe: probe.clone(),
                max_ahead_ms,
            };
            let (events, rejected) = source::build(
                scope,
                partitions.clone(),
                hunt.clone(),
                worker_stats.clone(),
                Some(throttle),
            );
            let serving = worker_live.clone();
            let (changes, _) = crate::dataflow::build_with(
                scope,
                events,
                hunt.clone(),
                slice,
                None,
                crate::serve::worker_players(serving.as_deref()),
            );
            let changes = changes.inner.probe_with(&probe);
            let files = if index == 0 { take(&derived) } else { None };
            let output = out.map(|w| {
                let mut line: Box<dyn sink::NotificationOutput> =
                    Box::new(sink::LineOutput::new(w, progress_records));
                if let Some(derived) = files {
                    line = Box::new(crate::derived::WithDerived {
                        inner: line,
                        derived: Arc::new(Mutex::new(derived)),
                    });
                }
                match &serving {
                    Some(live) => Box::new(crate::serve::Tee {
                        inner: line,
                        live: live.clone(),
                        below: 0,
                    }) as Box<dyn sink::NotificationOutput>,
                    None => line,
                }
            });
            sink::notification_sink(changes, hunt.clone(), output, worker_errors.clone());
            sink::reject_sink(
                rejected,
                names.clone(),
                rej.map(|w| w as Box<dyn Write>),
                worker_errors.clone(),
            );
            probe
        });
        while !probe.done() {
            worker.step_or_park(None);
        }
    })
    .map_err(BackfillError::Dataflow)?;

    let bar =
        (opts.progress_bar && std::io::stderr().is_terminal() && total_bytes > 0).then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
    if let Some(bar) = &bar {
        let watched = stats.clone();
        let bar = bar.clone();
        std::thread::spawn(move || loop {
            bar.set_position(watched.bytes.load(Ordering::Relaxed));
            bar.set_message(format!("{} records", watched.read.load(Ordering::Relaxed)));
            if bar.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    for result in guards.join() {
        result.map_err(BackfillError::Dataflow)?;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(e) = errors.lock().ok().and_then(|mut e| e.take()) {
        return Err(BackfillError::Output {
            path: opts.output.clone().unwrap_or_else(|| PathBuf::from("-")),
            source: e,
        });
    }

    if let Some((name, message)) = stats.errors.lock().ok().and_then(|mut e| e.pop()) {
        return Err(BackfillError::Input {
            path: PathBuf::from(name),
            source: std::io::Error::other(message),
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
