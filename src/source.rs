//! Sources: one timely source operator per input partition. Each reads its
//! partition's records, validates them, applies the partition's lateness and
//! duplicate rules, and emits accepted events and rejects as data, holding a
//! capability at the partition frontier `max(0, M - L)` so that times complete
//! as the frontier advances. At end of input the partition closes.
//!
//! Timely times carried by messages are partition frontiers; the event time of
//! a record travels in the record. Every record sent under a capability at
//! time `c` has event time `>= c`, so a downstream frontier `F` means every
//! event with `ts < F` has arrived.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::event::{self, Event, Id, Invalid, Reason};
use crate::hunt::Hunt;
use crate::input::{read_line_capped, Got, Line, Reader};

/// Longest raw text kept with a reject, in bytes.
pub const MAX_RAW_BYTES: usize = 4096;
/// Records read per activation of a source operator.
const BATCH_LINES: usize = 4096;

/// Lateness and duplicate rules of one partition (SPEC §2, §3).
///
/// Keeps the ids of accepted events whose `ts` is at or above the frontier;
/// older ids can no longer make a record a duplicate and are forgotten, so
/// the state is bounded by the events inside the lateness window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Admission {
    lateness: u64,
    max_ts: Option<u64>,
    /// Accepted ids and their `ts`.
    ids: FxHashMap<Id, u64>,
    /// The same ids in the order they were accepted, pruned from the front
    /// once below the frontier.
    order: VecDeque<(u64, Id)>,
}

impl Admission {
    pub fn new(lateness: u64) -> Self {
        Admission {
            lateness,
            ..Default::default()
        }
    }

    /// The partition frontier `max(0, M - L)`, 0 before the first accept.
    pub fn frontier(&self) -> u64 {
        self.max_ts.map_or(0, |m| m.saturating_sub(self.lateness))
    }

    /// Decides `late` or `duplicate` for a record that passed every other
    /// check, and records it as accepted when it is neither.
    pub fn admit(&mut self, id: &str, ts: u64) -> Result<(), Invalid> {
        let frontier = self.frontier();
        if let Some(m) = self.max_ts {
            if ts < frontier {
                return Err(Invalid {
                    reason: Reason::Late,
                    detail: format!(
                        "ts {ts} is more than {} ms behind the partition's latest ts {m}",
                        self.lateness
                    ),
                });
            }
        }
        if let Some(&prev) = self.ids.get(id) {
            if prev >= frontier {
                return Err(Invalid {
                    reason: Reason::Duplicate,
                    detail: format!("id {id:?} already accepted (ts {prev})"),
                });
            }
        }
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        let id = Id::from(id);
        self.ids.insert(id.clone(), ts);
        self.order.push_back((ts, id));
        self.prune();
        Ok(())
    }

    /// Forgets the ids below the frontier.
    fn prune(&mut self) {
        let frontier = self.frontier();
        while self.order.front().is_some_and(|(ts, _)| *ts < frontier) {
            let (old_ts, old_id) = self.order.pop_front().expect("front exists");
            if self.ids.get(&old_id) == Some(&old_ts) {
                self.ids.remove(&old_id);
            }
        }
    }

    /// Raises the partition's latest ts to at least `m`, as if an event at
    /// `m` had been accepted: the frontier moves to `m - L`. Used to advance
    /// an idle partition, or to start a partition discovered while running
    /// at the job's frontier.
    pub fn advance(&mut self, m: u64) {
        self.max_ts = Some(self.max_ts.map_or(m, |old| old.max(m)));
        self.prune();
    }

    /// The latest accepted ts (or advance), if any.
    pub fn latest(&self) -> Option<u64> {
        self.max_ts
    }

    /// Number of ids currently retained.
    pub fn retained(&self) -> usize {
        self.ids.len()
    }
}

/// A rejected record: reason, detail, where it came from and its raw text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub reason: Reason,
    pub detail: String,
    pub partition: u32,
    /// 1-based line number within the partition.
    pub line: u64,
    /// The partition frontier when the record was read (orders the rejects sink).
    pub frontier: u64,
    /// The raw record, cut at [`MAX_RAW_BYTES`].
    pub raw: Vec<u8>,
}

/// Counters shared by every source of a run.
#[derive(Debug, Default)]
pub struct Stats {
    pub read: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: [AtomicU64; 8],
    pub bytes: AtomicU64,
    /// Read errors, as `(partition name, message)`; a partition that fails to
    /// read is closed.
    pub errors: Mutex<Vec<(String, String)>>,
    /// Per partition: frontier, latest time, and (when `track` is set) when
    /// each frontier was reached.
    pub partitions: Mutex<BTreeMap<u32, PartitionProgress>>,
    /// Keep the history that [`Stats::completed_at`] needs.
    pub track: std::sync::atomic::AtomicBool,
}

/// Where one partition stands.
#[derive(Debug, Default, Clone)]
pub struct PartitionProgress {
    pub frontier: u64,
    pub latest: Option<u64>,
    pub closed: bool,
    history: VecDeque<(u64, Instant)>,
}

impl Stats {
    /// Partition `p` stands at `frontier` (`None`: closed) with `latest`.
    pub fn progress(&self, p: u32, frontier: Option<u64>, latest: Option<u64>) {
        let Ok(mut parts) = self.partitions.lock() else {
            return;
        };
        let part = parts.entry(p).or_default();
        let f = frontier.unwrap_or(u64::MAX);
        if f != part.frontier || latest != part.latest {
            part.latest = latest;
            part.closed = frontier.is_none();
            if f > part.frontier || part.history.is_empty() {
                part.frontier = f;
                if self.track.load(Ordering::Relaxed) {
                    part.history.push_back((f, Instant::now()));
                }
            }
        }
    }

    /// When every partition had passed `f`: the completion instant of the
    /// times below `f`. Forgets what later calls (with larger `f`) cannot need.
    pub fn completed_at(&self, f: u64) -> Option<Instant> {
        let mut parts = self.partitions.lock().ok()?;
        let mut latest: Option<Instant> = None;
        for part in parts.values_mut() {
            while part.history.len() > 1 && part.history[1].0 <= f {
                part.history.pop_front();
            }
            let at = part
                .history
                .iter()
                .find(|(v, _)| *v >= f)
                .map(|(_, at)| *at)?;
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
        latest
    }

    pub fn count(&self, read: u64, accepted: u64, rejected: &[u64; 8], bytes: u64) {
        self.read.fetch_add(read, Ordering::Relaxed);
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        for (slot, n) in self.rejected.iter().zip(rejected) {
            if *n > 0 {
                slot.fetch_add(*n, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// One input partition: a reader taken by the worker that owns it.
pub struct Partition {
    pub name: String,
    pub reader: Mutex<Option<Reader>>,
}

/// Validates one raw record of partition `partition` against the hunt and
/// the partition's admission state.
pub fn ingest(
    line: &[u8],
    hunt: &Hunt,
    admission: &mut Admission,
) -> Result<Option<Event>, Invalid> {
    let parsed = event::parse(line, hunt)?;
    admission.admit(&parsed.id, parsed.ts)?;
    Ok(parsed.into_event(hunt))
}

pub fn cut_raw(line: &[u8]) -> Vec<u8> {
    let mut end = line.len().min(MAX_RAW_BYTES);
    // Keep valid UTF-8 text whole: do not cut inside a character.
    if std::str::from_utf8(line).is_ok() {
        while end < line.len() && (line[end] & 0xC0) == 0x80 {
            end -= 1;
        }
    }
    line[..end].to_vec()
}

/// Flow control: a partition more than this far ahead (in event time) of the
/// completed output waits, so that one fast partition cannot fill memory.
#[derive(Clone)]
pub struct Throttle {
    pub probe: ProbeHandle<u64>,
    pub max_ahead_ms: u64,
}

type Ingested = Result<Event, Reject>;

/// Builds one source operator per partition; worker `p % peers` reads
/// partition `p`. Returns the accepted events and the rejects.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    partitions: Arc<Vec<Partition>>,
    hunt: Arc<Hunt>,
    stats: Arc<Stats>,
    throttle: Option<Throttle>,
) -> (
    Stream<'scope, u64, Vec<Event>>,
    Stream<'scope, u64, Vec<Reject>>,
) {
    let mut streams = Vec::new();
    for index in 0..partitions.len() {
        let partitions = partitions.clone();
        let hunt = hunt.clone();
        let stats = stats.clone();
        let throttle = throttle.clone();
        let owner = index % scope.peers() == scope.index();
        let stream = source(scope, &format!("Source[{index}]"), move |cap, info| {
            let activator = scope.activator_for(info.address.clone());
            let reader = if owner {
                partitions[index]
                    .reader
                    .lock()
                    .ok()
                    .and_then(|mut r| r.take())
            } else {
                None
            };
            if let Some(r) = &reader {
                let wake = scope.worker().sync_activator_for(info.address.to_vec());
                r.on_ready(move || {
                    let _ = wake.activate();
                });
            }
            let mut cap = reader.as_ref().map(|_| cap);
            let mut reader = reader;
            let mut admission = Admission::new(hunt.max_lateness_ms);
            let mut line_no: u64 = 0;
            let mut buf = Vec::with_capacity(1024);
            let mut line = Line::default();
            move |output| {
                let (Some(c), Some(r)) = (cap.as_mut(), reader.as_mut()) else {
                    cap = None;
                    return;
                };
                if let Some(t) = &throttle {
                    let ahead = t.probe.with_frontier(|f| {
                        f.iter()
                            .all(|&done| admission.frontier() > done.saturating_add(t.max_ahead_ms))
                    });
                    if ahead && !t.probe.done() {
                        activator.activate();
                        return;
                    }
                }
                let mut session = output.session(&*c);
                let (mut read, mut accepted, mut bytes) = (0u64, 0u64, 0u64);
                let mut rejected = [0u64; 8];
                let mut eof = false;
                let mut pending = false;
                for _ in 0..BATCH_LINES {
                    match read_line_capped(r, &mut buf, &mut line, event::MAX_RECORD_BYTES) {
                        Ok(Got::Line) => {}
                        Ok(Got::Pending) => {
                            pending = true;
                            break;
                        }
                        Ok(Got::End) => {
                            eof = true;
                            break;
                        }
                        Err(e) => {
                            if let Ok(mut errors) = stats.errors.lock() {
                                errors.push((partitions[index].name.clone(), e.to_string()));
                            }
                            eof = true;
                            break;
                        }
                    };
                    let line = std::mem::take(&mut line);
                    bytes += line.consumed as u64;
                    line_no += 1;
                    if event::is_blank(&buf) && line.rest_blank {
                        continue;
                    }
                    read += 1;
                    let frontier = admission.frontier();
                    let result = if line.len > buf.len() {
                        Err(Invalid {
                            reason: Reason::Malformed,
                            detail: format!(
                                "record of {} bytes is over {} bytes",
                                line.len,
                                event::MAX_RECORD_BYTES
                            ),
                        })
                    } else {
                        ingest(&buf, &hunt, &mut admission)
                    };
                    match result {
                        Ok(event) => {
                            accepted += 1;
                            if let Some(event) = event {
                                session.give(Ok::<Event, Reject>(event));
                            }
                        }
                        Err(bad) => {
                            rejected[bad.reason.index()] += 1;
                            session.give(Err::<Event, Reject>(Reject {
                                reason: bad.reason,
                                detail: bad.detail,
                                partition: index as u32,
                                line: line_no,
                                frontier,
                                raw: cut_raw(&buf),
                            }));
                        }
                    }
                }
                drop(session);
                stats.count(read, accepted, &rejected, bytes);
                if eof {
                    stats.progress(index as u32, None, admission.latest());
                    cap = None;
                    reader = None;
                } else {
                    stats.progress(index as u32, Some(admission.frontier()), admission.latest());
                    c.downgrade(&admission.frontier());
                    // With nothing to read yet, the input's thread wakes us.
                    if !pending {
                        activator.activate();
                    }
                }
            }
        });
        streams.push(stream);
    }
    let all: Stream<'scope, u64, Vec<Ingested>> = scope.concatenate(streams);
    all.ok_err(|x| x)
}
