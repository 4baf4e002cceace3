//! The notification sink with a single writer: every change goes to
//! worker 0, which buffers it by time and, once a time is complete, writes
//! that time's notifications in the contract's order (docs/spec.md §6) to
//! its [`NotificationOutput`], then reports the new frontier (progress).
//! For a snapshot at frontier `F`, the outputs are marked once every time
//! below `F` is written and before any time at or above it.
//! [`super::runs`] spreads the sorting and formatting over the workers
//! instead (for backfills); both end in the same [`NotificationOutput`].
//! [`owned_notification_sink`] routes each change to the worker that owns
//! its topic partition instead, and every worker writes its own (the
//! continuous job's notifications topic); each writer's marks are merged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::Stream;

use super::order::{notifications, Notification};
use super::runs::Merged;
use super::{MarkSlot, Marks, OutputError};
use crate::dataflow::{Change, Control};
use crate::kafka::partitioner::partition_of;
use crate::model::versions::SharedVersions;

/// A shared slot for the first write error of the sinks.
pub type ErrorSlot = Arc<Mutex<Option<OutputError>>>;

/// Keeps the first error in `slot`.
pub fn record_error(slot: &ErrorSlot, e: OutputError) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
}

/// Where the notification sink writes: the notifications of each completed
/// time in order, and the frontier as it advances.
pub trait NotificationOutput: Send {
    /// Writes the notifications of completed time `time`, in order.
    fn write_time(&mut self, time: u64, notifications: &[Notification]) -> Result<(), OutputError>;
    /// The notifications of a time below a restarted job's snapshot: its
    /// restored state, re-derived. They were written before the restart, so
    /// outputs ignore them; the API's live state is rebuilt from them.
    fn restored(&mut self, _time: u64, _notifications: &[Notification]) -> Result<(), OutputError> {
        Ok(())
    }
    /// Writes the notifications of completed time `time` that the workers
    /// sorted and formatted (the parallel writer, [`super::runs`]), merged
    /// in order. By default, as [`NotificationOutput::write_time`]; an
    /// output that writes the contract's lines takes them as formatted.
    fn write_merged(&mut self, time: u64, merged: &Merged<'_>) -> Result<(), OutputError> {
        self.write_time(time, merged.notifications())
    }
    /// Every time below `frontier` is complete and written; `None`: the
    /// stream has ended.
    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError>;
    /// How soon [`NotificationOutput::progress`] should be called again
    /// though the frontier has not moved: an output that paces its
    /// progress records holds one back, and must not keep it forever.
    fn progress_due_in(&self) -> Option<Duration> {
        None
    }
    /// Writes now a progress record held back for a frontier at or below
    /// `upto`: a snapshot at `upto` is about to be marked, and the record
    /// belongs before its mark (a job restarted from the snapshot records
    /// progress above `upto` only).
    fn flush_progress(&mut self, _upto: u64) -> Result<(), OutputError> {
        Ok(())
    }
    /// Notes in `marks` where the output stands now: every notification
    /// handed to it so far is before the mark, none after it.
    fn mark(&mut self, _marks: &mut Marks) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Worker 0's end of either writer: what has come, by time, and the
/// output; once times are complete, writes each in order, then the new
/// frontier. A snapshot at frontier `F` is marked once every time below `F`
/// is written and before any time at or above it. (The other workers have
/// no output and keep nothing.)
pub(crate) struct TimeWriter<T> {
    output: Option<Box<dyn NotificationOutput>>,
    pending: BTreeMap<u64, Vec<T>>,
    last: Option<Option<u64>>,
    errors: ErrorSlot,
    /// Snapshots to mark, by frontier: epoch.
    snapshots: BTreeMap<u64, u64>,
    marks: Option<MarkSlot>,
}

impl<T> TimeWriter<T> {
    pub(crate) fn new(output: Option<Box<dyn NotificationOutput>>, errors: ErrorSlot) -> Self {
        TimeWriter {
            output,
            pending: BTreeMap::new(),
            last: None,
            errors,
            snapshots: BTreeMap::new(),
            marks: None,
        }
    }

    /// Snapshots' marks go to `marks`.
    fn marking(mut self, marks: Option<MarkSlot>) -> Self {
        self.marks = marks;
        self
    }

    /// Something of time `time` to write once the time is complete.
    pub(crate) fn push(&mut self, time: u64, item: T) {
        if self.output.is_some() {
            self.pending.entry(time).or_default().push(item);
        }
    }

    /// A snapshot `epoch` at frontier `at`, to mark.
    fn snapshot(&mut self, epoch: u64, at: u64) {
        if self.output.is_some() {
            self.snapshots.insert(at, epoch);
        }
    }

    /// Every time below `limit` (all when `None`: the stream ended) is
    /// complete: hands each, in order, to `write`, then reports the
    /// frontier (again when the output held a progress record back). The
    /// first error goes to the error slot. Returns how soon to come back
    /// for a held-back progress record.
    pub(crate) fn advance(
        &mut self,
        limit: Option<u64>,
        mut write: impl FnMut(&mut dyn NotificationOutput, u64, Vec<T>) -> Result<(), OutputError>,
    ) -> Option<Duration> {
        let out = self.output.as_mut()?;
        let mut result = Ok(());
        while let Some(entry) = self.pending.first_entry() {
            let time = *entry.key();
            if limit.is_some_and(|f| time >= f) {
                break;
            }
            let items = entry.remove();
            result = result
                .and_then(|_| mark_before(out.as_mut(), &mut self.snapshots, &self.marks, time))
                .and_then(|_| write(out.as_mut(), time, items));
        }
        if self.last != Some(limit) || out.progress_due_in().is_some() {
            result = result.and_then(|_| out.progress(limit));
            self.last = Some(limit);
        }
        let end = limit.unwrap_or(u64::MAX);
        result =
            result.and_then(|_| mark_before(out.as_mut(), &mut self.snapshots, &self.marks, end));
        if let Err(e) = result {
            record_error(&self.errors, e);
        }
        let due = out.progress_due_in();
        if limit.is_none() {
            self.output = None;
        }
        due
    }
}

/// Marks `out` for every snapshot at or below `t` (every time below `t` is
/// written, none at or above it).
fn mark_before(
    out: &mut dyn NotificationOutput,
    snapshots: &mut BTreeMap<u64, u64>,
    slot: &Option<MarkSlot>,
    t: u64,
) -> Result<(), OutputError> {
    while let Some(entry) = snapshots.first_entry() {
        let at = *entry.key();
        if at > t {
            break;
        }
        let epoch = entry.remove();
        out.flush_progress(at)?;
        let mut marks = Marks::default();
        out.mark(&mut marks)?;
        if let Some(slot) = slot {
            if let Ok(mut slot) = slot.lock() {
                slot.entry(epoch).or_default().merge(marks);
            }
        }
    }
    Ok(())
}

/// Writes the notification stream. `output` is `Some` on the worker that
/// writes (worker 0) and `None` elsewhere; every change is routed to worker
/// 0. The [`Control`] records' snapshots are marked in `marks` once every
/// time below their frontier is written.
pub fn notification_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
    output: Option<Box<dyn NotificationOutput>>,
    marks: Option<MarkSlot>,
    errors: ErrorSlot,
) {
    let writer = TimeWriter::new(output, errors).marking(marks);
    time_sink(changes, control, versions, writer, |_| 0);
}

/// Writes the notifications of a topic of `partitions` partitions, each
/// partition on the worker that owns it
/// ([`super::kafka::partition_owner`]): a change goes to the owner of the
/// partition its notification's key falls in. Every worker has an
/// `output` for its own partitions; each marks its snapshots in `marks`
/// (merged there with the others').
pub fn owned_notification_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
    (output, partitions): (Box<dyn NotificationOutput>, u32),
    marks: Option<MarkSlot>,
    errors: ErrorSlot,
) {
    let writer = TimeWriter::new(Some(output), errors).marking(marks);
    let keys = versions.clone();
    time_sink(changes, control, versions, writer, move |(change, _, _)| {
        let p = match change {
            Change::Presence(player, _) | Change::Eligible(player, _) => {
                partition_of(player.as_bytes(), partitions)
            }
            Change::Occupancy(zone, _) => {
                let registry = keys.read().expect("versions lock");
                partition_of(registry.dictionary().zones.id(*zone).as_bytes(), partitions)
            }
        };
        u64::from(p)
    });
}

/// The sink operator of both: changes routed by `route` (global worker
/// `route % peers`), each time written by `writer` once complete.
fn time_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
    mut writer: TimeWriter<(Change, isize)>,
    route: impl Fn(&(Change, u64, isize)) -> u64 + 'static,
) {
    let scope = changes.scope();
    changes.binary_frontier(
        control,
        Exchange::new(route),
        Pipeline,
        "NotificationSink",
        |_, info| {
            let activator = scope.activator_for(info.address);
            move |(input, frontier), (control, control_frontier), _output: &mut OutputBuilderSession<'_, u64, CapacityContainerBuilder<Vec<()>>>| {
                input.for_each(|_cap, data| {
                    for (change, time, diff) in data.drain(..) {
                        writer.push(time, (change, diff));
                    }
                });
                control.for_each(|_cap, data| {
                    for record in data.drain(..) {
                        if let Control::Snapshot { epoch, at } = record {
                            writer.snapshot(epoch, at);
                        }
                    }
                });
                let limit = [frontier.frontier().first(), control_frontier.frontier().first()]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied();
                let due = writer.advance(limit, |out, time, mut changes| {
                    let registry = versions.read().expect("versions lock");
                    let notifications = notifications(&registry, time, &mut changes);
                    drop(registry);
                    out.write_time(time, &notifications)
                });
                if let Some(wait) = due {
                    activator.activate_after(wait);
                }
            }
        },
    );
}
