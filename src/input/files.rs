//! The file sources of a backfill: one timely source operator per input
//! partition (a file, a pipe, or standard input), read by global worker
//! `p % peers` (in a cluster, the process of that worker is the one that
//! opens the file). Each reads its partition's records, takes them through
//! [`ingest`], and emits accepted events and rejects as data, holding a
//! capability at the partition frontier `max(0, M - L)` so that times
//! complete as the frontier advances. At end of input the partition closes.
//!
//! Timely times carried by messages are partition frontiers; the event time
//! of a record travels in the record. Every record sent under a capability
//! at time `c` has event time `>= c`, so a downstream frontier `F` means
//! every event with `ts < F` has arrived.
//!
//! After each batch a source also emits a [`Report`] of what it read (a
//! second output): the counts for the summary, its frontier, and the error
//! that closed it if any. Worker 0 receives every report, so that process 0
//! of a cluster counts the records every process read.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use super::admission::{ingest, Admission};
use super::reader::{read_line_capped, Got, Line, Reader};
use super::reject::{Place, Reject};
use super::stats::{Counts, InputError, Stats};
use super::{Ingested, Inputs};
use crate::model::event::{self, Invalid, Reason};
use crate::model::hunt::Hunt;

/// Records read per activation of a source operator.
const BATCH_LINES: usize = 4096;

/// How far (event time) a file partition reads ahead of the completed
/// output at most, when that is less than the throttle's bound. A file can
/// be read at any pace, so reading further ahead buys nothing but memory:
/// every event read waits in the facts operator until its time completes.
const FILE_AHEAD_MS: u64 = 250;

/// One input partition: a reader taken by the worker that owns it (`None`
/// in the processes of a cluster that do not read it).
pub struct Partition {
    pub name: String,
    pub reader: Mutex<Option<Reader>>,
    /// Its size in bytes, when it is a regular file this process opened.
    pub size: Option<u64>,
}

/// What one partition's source read in one batch, for worker 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub partition: u32,
    /// Read, accepted, rejected by reason and bytes, in this batch.
    pub counts: Counts,
    /// The partition frontier after the batch; `None` once closed.
    pub frontier: Option<u64>,
    /// The latest event time accepted so far.
    pub latest: Option<u64>,
    /// The read error that closed the partition.
    pub error: Option<String>,
    /// The partition's size in bytes (in its first report).
    pub size: Option<u64>,
}

/// Flow control: a partition more than `max_ahead_ms` ahead (in event time)
/// of the completed output waits.
#[derive(Clone)]
pub struct Throttle {
    pub probe: ProbeHandle<u64>,
    pub max_ahead_ms: u64,
}

/// What ended a batch.
enum Batch {
    /// The batch is full: more may be there at once.
    Full,
    /// Nothing more to read now; the input's thread wakes the operator.
    Pending,
    /// End of input (or a read error, recorded in the stats).
    End,
}

/// The reading state of one partition, on the worker that owns it.
struct FileSource {
    index: u32,
    name: String,
    reader: Reader,
    hunt: Arc<Hunt>,
    stats: Arc<Stats>,
    admission: Admission,
    line_no: u64,
    buf: Vec<u8>,
    line: Line,
    /// For the next report: the error that ended the input, the size.
    error: Option<String>,
    size: Option<u64>,
}

impl FileSource {
    /// Whether the partition is too far ahead of the completed output.
    fn throttled(&self, throttle: Option<&Throttle>) -> bool {
        let Some(t) = throttle else { return false };
        let frontier = self.admission.frontier();
        let bound = t.max_ahead_ms.min(FILE_AHEAD_MS);
        let ahead = t
            .probe
            .with_frontier(|f| f.iter().all(|&done| frontier > done.saturating_add(bound)));
        ahead && !t.probe.done()
    }

    /// Reads up to [`BATCH_LINES`] records, handing each to `give`.
    fn read_batch(&mut self, give: &mut impl FnMut(Ingested), counts: &mut Counts) -> Batch {
        for _ in 0..BATCH_LINES {
            match read_line_capped(
                &mut self.reader,
                &mut self.buf,
                &mut self.line,
                event::MAX_RECORD_BYTES,
            ) {
                Ok(Got::Line) => {}
                Ok(Got::Pending) => return Batch::Pending,
                Ok(Got::End) => return Batch::End,
                Err(e) => {
                    self.stats.error(InputError {
                        partition: self.name.clone(),
                        message: e.to_string(),
                        transient: false,
                    });
                    self.error = Some(e.to_string());
                    return Batch::End;
                }
            }
            let line = std::mem::take(&mut self.line);
            counts.bytes += line.consumed as u64;
            self.line_no += 1;
            if event::is_blank(&self.buf) && line.rest_blank {
                continue;
            }
            counts.read += 1;
            if let Some(record) = self.record(&line, counts) {
                give(record);
            }
        }
        Batch::Full
    }

    /// Validates the record in `buf`: an event, a reject, or nothing (an
    /// accepted record with no effect).
    fn record(&mut self, line: &Line, counts: &mut Counts) -> Option<Ingested> {
        let frontier = self.admission.frontier();
        let result = if line.len > self.buf.len() {
            Err(Invalid {
                reason: Reason::Malformed,
                detail: format!(
                    "record of {} bytes is over {} bytes",
                    line.len,
                    event::MAX_RECORD_BYTES
                ),
            })
        } else {
            ingest(&self.buf, &self.hunt, &mut self.admission)
        };
        match result {
            Ok(event) => {
                counts.accepted += 1;
                event.map(Ok)
            }
            Err(bad) => {
                counts.reject(&bad);
                let place = Place::Line(self.line_no);
                Some(Err(Reject::new(
                    bad, self.index, place, frontier, &self.buf,
                )))
            }
        }
    }

    /// After a batch: counts it and reports it, and moves the capabilities
    /// to the partition frontier. Returns `None` once the partition is
    /// closed, else whether to read again at once.
    fn settle(
        &mut self,
        batch: Batch,
        counts: Counts,
        caps: &mut Caps,
        reports: &mut Vec<Report>,
    ) -> Option<bool> {
        self.stats.count(&counts);
        let latest = self.admission.latest();
        let closed = matches!(batch, Batch::End);
        let frontier = (!closed).then(|| self.admission.frontier());
        self.stats.progress(self.index, frontier, latest);
        reports.push(Report {
            partition: self.index,
            counts,
            frontier,
            latest,
            error: self.error.take(),
            size: self.size.take(),
        });
        let frontier = frontier?;
        caps.records.downgrade(&frontier);
        caps.reports.downgrade(&frontier);
        Some(matches!(batch, Batch::Full))
    }
}

/// A source's capabilities: one for each of its outputs.
struct Caps {
    records: Capability<u64>,
    reports: Capability<u64>,
}

/// The reports of every source, on worker 0 (see the module's header).
pub type Reports<'scope> = Stream<'scope, u64, Vec<Report>>;

/// Builds one source operator per partition; global worker `p % peers`
/// reads partition `p`. Returns the inputs and the sources' reports, which
/// are all routed to worker 0.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    partitions: Arc<Vec<Partition>>,
    hunt: Arc<Hunt>,
    stats: Arc<Stats>,
    throttle: Option<Throttle>,
) -> (Inputs<'scope>, Reports<'scope>) {
    let mut streams = Vec::new();
    let mut reports = Vec::new();
    for index in 0..partitions.len() {
        let owner = index % scope.peers() == scope.index();
        let taken = owner
            .then(|| {
                partitions[index]
                    .reader
                    .lock()
                    .ok()
                    .and_then(|mut r| r.take())
            })
            .flatten();
        let reading = taken.map(|reader| FileSource {
            index: index as u32,
            name: partitions[index].name.clone(),
            reader,
            hunt: hunt.clone(),
            stats: stats.clone(),
            admission: Admission::new(hunt.max_lateness_ms),
            line_no: 0,
            buf: Vec::with_capacity(1024),
            line: Line::default(),
            error: None,
            size: partitions[index].size,
        });
        let (records, reported) = source(scope, index, reading, throttle.clone());
        streams.push(records);
        reports.push(reported);
    }
    let reports =
        scope
            .concatenate(reports)
            .unary(Exchange::new(|_: &Report| 0), "Reports", |_, _| {
                move |input, output| {
                    input.for_each(|cap, data| output.session(&cap).give_container(data));
                }
            });
    (super::split(scope.concatenate(streams)), reports)
}

/// The source operator of partition `index`, reading when this worker owns
/// it (`reading` is `Some`): its records and its reports.
fn source<'scope>(
    scope: Scope<'scope, u64>,
    index: usize,
    reading: Option<FileSource>,
    throttle: Option<Throttle>,
) -> (Stream<'scope, u64, Vec<Ingested>>, Reports<'scope>) {
    let mut reading = reading;
    let mut builder = OperatorBuilder::new(format!("Source[{index}]"), scope);
    let info = builder.operator_info();
    let (records_out, records) = builder.new_output::<Vec<Ingested>>();
    let (reports_out, reports) = builder.new_output::<Vec<Report>>();
    let mut records_out = OutputBuilder::from(records_out);
    let mut reports_out = OutputBuilder::from(reports_out);
    builder.build(move |mut capabilities| {
        let activator = scope.activator_for(info.address.clone());
        if let Some(r) = &reading {
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            r.reader.on_ready(move || {
                let _ = wake.activate();
            });
        }
        let reports_cap = capabilities.pop().expect("a capability per output");
        let records_cap = capabilities.pop().expect("a capability per output");
        let mut caps = reading.as_ref().map(|_| Caps {
            records: records_cap,
            reports: reports_cap,
        });
        let mut reported = Vec::new();
        move |_frontiers| {
            let (Some(c), Some(r)) = (caps.as_mut(), reading.as_mut()) else {
                caps = None;
                return;
            };
            if r.throttled(throttle.as_ref()) {
                activator.activate();
                return;
            }
            let mut counts = Counts::default();
            let batch = {
                let mut out = records_out.activate();
                let mut session = out.session(&c.records);
                r.read_batch(&mut |x| session.give(x), &mut counts)
            };
            let more = {
                let next = r.settle(batch, counts, c, &mut reported);
                let mut out = reports_out.activate();
                out.session(&c.reports).give_container(&mut reported);
                reported.clear();
                next
            };
            match more {
                None => {
                    caps = None;
                    reading = None;
                }
                Some(true) => activator.activate(),
                Some(false) => {}
            }
        }
    });
    (records, reports)
}

/// Adds to `stats` what the reports of partitions read by other processes
/// say (`local(p)`: this process reads partition `p`, and its sources have
/// counted it already); `sizes` sums their sizes. Only worker 0 receives
/// reports.
pub fn count_reports(
    reports: Reports<'_>,
    stats: Arc<Stats>,
    names: Arc<Vec<String>>,
    local: impl Fn(u32) -> bool + 'static,
    sizes: Arc<std::sync::atomic::AtomicU64>,
) {
    use timely::dataflow::channels::pact::Pipeline;
    reports.sink(Pipeline, "CountReports", move |(input, _frontier)| {
        input.for_each(|_cap, data| {
            for r in data.drain(..) {
                if local(r.partition) {
                    continue;
                }
                stats.count(&r.counts);
                stats.progress(r.partition, r.frontier, r.latest);
                if let Some(message) = r.error {
                    let partition = names
                        .get(r.partition as usize)
                        .cloned()
                        .unwrap_or_else(|| r.partition.to_string());
                    stats.error(InputError {
                        partition,
                        message,
                        transient: false,
                    });
                }
                if let Some(size) = r.size {
                    sizes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    });
}
