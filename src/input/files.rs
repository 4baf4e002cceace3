//! The file sources of a backfill: one timely source operator per input
//! partition (a file, a pipe, or standard input), read by worker
//! `p % workers`. Each reads its partition's records, takes them through
//! [`ingest`], and emits accepted events and rejects as data, holding a
//! capability at the partition frontier `max(0, M - L)` so that times
//! complete as the frontier advances. At end of input the partition closes.
//!
//! Timely times carried by messages are partition frontiers; the event time
//! of a record travels in the record. Every record sent under a capability
//! at time `c` has event time `>= c`, so a downstream frontier `F` means
//! every event with `ts < F` has arrived.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope};

use super::admission::{ingest, Admission};
use super::reader::{read_line_capped, Got, Line, Reader};
use super::reject::{Place, Reject};
use super::stats::{Counts, InputError, Stats};
use super::{Ingested, Inputs};
use crate::model::event::{self, Invalid, Reason};
use crate::model::hunt::Hunt;

/// Records read per activation of a source operator.
const BATCH_LINES: usize = 4096;

/// One input partition: a reader taken by the worker that owns it.
pub struct Partition {
    pub name: String,
    pub reader: Mutex<Option<Reader>>,
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
}

impl FileSource {
    /// Whether the partition is too far ahead of the completed output.
    fn throttled(&self, throttle: Option<&Throttle>) -> bool {
        let Some(t) = throttle else { return false };
        let frontier = self.admission.frontier();
        let ahead = t.probe.with_frontier(|f| {
            f.iter()
                .all(|&done| frontier > done.saturating_add(t.max_ahead_ms))
        });
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

    /// After a batch: counts it and moves the capability to the partition
    /// frontier. Returns `None` once the partition is closed, else whether
    /// to read again at once.
    fn settle(&mut self, batch: Batch, counts: &Counts, cap: &mut Capability<u64>) -> Option<bool> {
        self.stats.count(counts);
        if let Batch::End = batch {
            self.stats
                .progress(self.index, None, self.admission.latest());
            return None;
        }
        let frontier = self.admission.frontier();
        self.stats
            .progress(self.index, Some(frontier), self.admission.latest());
        cap.downgrade(&frontier);
        Some(matches!(batch, Batch::Full))
    }
}

/// Builds one source operator per partition; worker `p % peers` reads
/// partition `p`.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    partitions: Arc<Vec<Partition>>,
    hunt: Arc<Hunt>,
    stats: Arc<Stats>,
    throttle: Option<Throttle>,
) -> Inputs<'scope> {
    let mut streams = Vec::new();
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
        let mut reading = taken.map(|reader| FileSource {
            index: index as u32,
            name: partitions[index].name.clone(),
            reader,
            hunt: hunt.clone(),
            stats: stats.clone(),
            admission: Admission::new(hunt.max_lateness_ms),
            line_no: 0,
            buf: Vec::with_capacity(1024),
            line: Line::default(),
        });
        let throttle = throttle.clone();
        let stream = source(scope, &format!("Source[{index}]"), move |cap, info| {
            let activator = scope.activator_for(info.address.clone());
            if let Some(r) = &reading {
                let wake = scope.worker().sync_activator_for(info.address.to_vec());
                r.reader.on_ready(move || {
                    let _ = wake.activate();
                });
            }
            let mut cap = reading.as_ref().map(|_| cap);
            move |output| {
                let (Some(c), Some(r)) = (cap.as_mut(), reading.as_mut()) else {
                    cap = None;
                    return;
                };
                if r.throttled(throttle.as_ref()) {
                    activator.activate();
                    return;
                }
                let mut counts = Counts::default();
                let batch = {
                    let mut session = output.session(&*c);
                    r.read_batch(&mut |x| session.give(x), &mut counts)
                };
                match r.settle(batch, &counts, c) {
                    None => {
                        cap = None;
                        reading = None;
                    }
                    Some(true) => activator.activate(),
                    Some(false) => {}
                }
            }
        });
        streams.push(stream);
    }
    super::split(scope.concatenate(streams))
}
