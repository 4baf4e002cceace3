//! The notification sink: every change goes to worker 0, which buffers it
//! by time and, once a time is complete, writes that time's notifications
//! in the contract's order (docs/spec.md §6) to its [`NotificationOutput`],
//! then reports the new frontier (progress).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::order::{notifications, Notification};
use super::OutputError;
use crate::dataflow::Change;
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
    /// Every time below `frontier` is complete and written; `None`: the
    /// stream has ended.
    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError>;
}

/// Writes the notification stream. `output` is `Some` on the worker that
/// writes (worker 0) and `None` elsewhere; every change is routed to worker 0.
pub fn notification_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    versions: SharedVersions,
    output: Option<Box<dyn NotificationOutput>>,
    errors: ErrorSlot,
) {
    let mut output = output;
    let mut pending: BTreeMap<u64, Vec<(Change, isize)>> = BTreeMap::new();
    let mut last: Option<Option<u64>> = None;
    changes.sink(
        Exchange::new(|_: &(Change, u64, isize)| 0),
        "NotificationSink",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for (change, time, diff) in data.drain(..) {
                    pending.entry(time).or_default().push((change, diff));
                }
            });
            let limit = frontier.frontier().first().copied();
            let Some(out) = output.as_mut() else {
                pending.clear();
                return;
            };
            let mut result = Ok(());
            while let Some(entry) = pending.first_entry() {
                let time = *entry.key();
                if limit.is_some_and(|f| time >= f) {
                    break;
                }
                let registry = versions.read().expect("versions lock");
                let notifications = notifications(&registry, time, entry.remove());
                drop(registry);
                result = result.and_then(|_| out.write_time(time, &notifications));
            }
            if last != Some(limit) {
                result = result.and_then(|_| out.progress(limit));
                last = Some(limit);
            }
            if let Err(e) = result {
                record_error(&errors, e);
            }
            if limit.is_none() {
                output = None;
            }
        },
    );
}
