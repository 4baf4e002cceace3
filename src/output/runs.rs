//! The parallel writer: every worker sorts and formats its share of each
//! completed time, and worker 0 only merges the shares and writes.
//!
//! ```text
//!  changes ─exchange(player hash, zone)─► FormatRuns (each worker): per completed time,
//!                                         consolidate, sort, format ─► Run (lines + keys)
//!  runs ─exchange(worker 0)─► WriteRuns: per completed time, merge the runs by the
//!                             contract's order key ─► NotificationOutput::write_merged
//! ```
//!
//! A player's changes all go to one worker (by the hash of the player id)
//! and a zone's occupancy changes to one worker (by zone number), so each
//! worker consolidates a change undone within a time on its own. A run is
//! one worker's notifications of one time in the contract's order
//! (docs/spec.md §6) — players by (priority descending, player, kind,
//! item), then occupancy by zone — with each one's formatted line. The
//! notifications are the merge keys: their `Ord` is that order, players
//! before occupancy, and no two runs of a time hold the same key, so
//! merging the runs of a time gives exactly the bytes one writer would
//! have written. Outputs that write the contract's lines take the lines as
//! they are; the others (the API, the derived files) take the merged
//! notifications.

use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, Stream};

use super::format::LinesAt;
use super::order::{notifications, Notification};
use super::sink::{ErrorSlot, NotificationOutput, TimeWriter};
use crate::dataflow::by_time::Held;
use crate::dataflow::facts::player_hash;
use crate::dataflow::Change;
use crate::model::versions::SharedVersions;

/// One worker's notifications of one completed time, in order, each with
/// its formatted line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub time: u64,
    /// In the contract's order.
    pub notes: Vec<Notification>,
    /// The lines of `notes`, one after the other.
    pub bytes: Vec<u8>,
    /// Where each line ends in `bytes`.
    pub ends: Vec<usize>,
}

/// Runs written and emptied, their buffers kept for the next ones: fresh
/// memory for every run costs page faults that the writing does not.
static RECYCLED: Mutex<Vec<Run>> = Mutex::new(Vec::new());
const RECYCLED_RUNS: usize = 64;

impl Run {
    /// The notifications of `time` from its consolidated-to-be `changes`,
    /// which are left empty.
    pub fn format(versions: &SharedVersions, time: u64, changes: &mut Vec<(Change, isize)>) -> Run {
        let registry = versions.read().expect("versions lock");
        let notes = notifications(&registry, time, changes);
        drop(registry);
        let mut run = RECYCLED
            .lock()
            .ok()
            .and_then(|mut r| r.pop())
            .unwrap_or_default();
        run.time = time;
        run.bytes.reserve(notes.len() * 96);
        run.ends.reserve(notes.len());
        let lines = LinesAt::new(time);
        for n in &notes {
            lines.push(&mut run.bytes, n);
            run.ends.push(run.bytes.len());
        }
        run.notes = notes;
        run
    }

    /// Keeps the buffers of runs written for later runs.
    fn recycle(runs: Vec<Run>) {
        let Ok(mut recycled) = RECYCLED.lock() else {
            return;
        };
        for mut run in runs {
            if recycled.len() >= RECYCLED_RUNS {
                break;
            }
            run.notes = Vec::new();
            run.bytes.clear();
            run.ends.clear();
            recycled.push(run);
        }
    }

    /// Line `i`, with its newline.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// The runs of one completed time, merged in the contract's order.
pub struct Merged<'a> {
    runs: &'a [Run],
    /// `(run, line)` in order; unused with one run (its own order).
    order: Vec<(u32, u32)>,
    notes: OnceCell<Vec<Notification>>,
}

impl<'a> Merged<'a> {
    /// Merges `runs`, each sorted, no key in two of them.
    pub fn new(runs: &'a [Run]) -> Self {
        Self::reusing(runs, Vec::new())
    }

    /// [`Merged::new`], with `order` as the buffer of the merge's order.
    pub fn reusing(runs: &'a [Run], mut order: Vec<(u32, u32)>) -> Self {
        order.clear();
        match runs.len() {
            0 | 1 => {}
            2 => merge_two(&runs[0].notes, &runs[1].notes, &mut order),
            _ => merge_order(runs, &mut order),
        }
        Merged {
            runs,
            order,
            notes: OnceCell::new(),
        }
    }

    /// The order's buffer, for the next merge.
    pub fn into_order(self) -> Vec<(u32, u32)> {
        self.order
    }

    /// Notifications in all.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.notes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every line, in order.
    pub fn write_lines(&self, out: &mut Vec<u8>) {
        match self.runs {
            [] => {}
            [one] => out.extend_from_slice(&one.bytes),
            runs => {
                for &(r, i) in &self.order {
                    out.extend_from_slice(runs[r as usize].line(i as usize));
                }
            }
        }
    }

    /// The notifications, in order (built on first use).
    pub fn notifications(&self) -> &[Notification] {
        self.notes.get_or_init(|| match self.runs {
            [] => Vec::new(),
            [one] => one.notes.clone(),
            runs => self
                .order
                .iter()
                .map(|&(r, i)| runs[r as usize].notes[i as usize].clone())
                .collect(),
        })
    }
}

/// The order of the lines of two sorted runs.
fn merge_two(a: &[Notification], b: &[Notification], order: &mut Vec<(u32, u32)>) {
    order.reserve(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] < b[j] {
            order.push((0, i as u32));
            i += 1;
        } else {
            order.push((1, j as u32));
            j += 1;
        }
    }
    order.extend((i..a.len()).map(|i| (0, i as u32)));
    order.extend((j..b.len()).map(|j| (1, j as u32)));
}

/// The order of the lines of sorted `runs`: a k-way merge that takes
/// from one run for as long as it stays ahead of the others.
fn merge_order(runs: &[Run], order: &mut Vec<(u32, u32)>) {
    let total = runs.iter().map(|r| r.notes.len()).sum();
    order.reserve(total);
    let mut heads: BinaryHeap<Reverse<(&Notification, u32, u32)>> = runs
        .iter()
        .enumerate()
        .filter_map(|(k, r)| r.notes.first().map(|n| Reverse((n, k as u32, 0))))
        .collect();
    while let Some(Reverse((_, k, mut i))) = heads.pop() {
        let notes = &runs[k as usize].notes;
        order.push((k, i));
        i += 1;
        while let Some(next) = notes.get(i as usize) {
            if heads.peek().is_some_and(|Reverse((top, _, _))| *top < next) {
                heads.push(Reverse((next, k, i)));
                break;
            }
            order.push((k, i));
            i += 1;
        }
    }
}

/// Where a change is sorted and formatted: by player, or by zone for
/// occupancy (every change of one key on one worker).
fn route(c: &(Change, u64, isize)) -> u64 {
    match &c.0 {
        Change::Presence(p, _) | Change::Eligible(p, _) => player_hash(p),
        Change::Occupancy(zone, _) => u64::from(*zone),
    }
}

/// Writes the notification stream with the sorting and formatting spread
/// over the workers (see the module's header). `output` is `Some` on the
/// worker that writes (worker 0) and `None` elsewhere. `done` follows the
/// runs into the writer, in flight to it included (the facts operator waits
/// on it, so that runs do not pile up before a writer slower than the
/// workers).
pub fn parallel_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    versions: SharedVersions,
    output: Option<Box<dyn NotificationOutput>>,
    errors: ErrorSlot,
    done: &ProbeHandle<u64>,
) {
    let runs = format_runs(changes, versions);
    write_runs(runs, output, errors).probe_with(done);
}

/// Each worker's runs, one per completed time with notifications, at that
/// time.
fn format_runs<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    versions: SharedVersions,
) -> Stream<'scope, u64, Vec<Run>> {
    changes.unary_frontier(
        Exchange::new(route),
        "FormatRuns",
        move |_initial, _info| {
            let mut waiting = Held::<(Change, isize)>::default();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for (change, time, diff) in data.drain(..) {
                        waiting.push(time, (change, diff), || cap.delayed(&time, 0));
                    }
                });
                let limit = frontier.frontier().first().copied();
                while let Some((time, mut changes)) = waiting.take_before(limit) {
                    let run = Run::format(&versions, time, &mut changes);
                    waiting.recycle(changes);
                    if !run.notes.is_empty() {
                        output.session(&waiting.at(time)).give(run);
                    }
                }
                waiting.release();
            }
        },
    )
}

/// Worker 0 merges the runs of each completed time and writes them. Its
/// output carries nothing; its frontier is the writer's.
fn write_runs<'scope>(
    runs: Stream<'scope, u64, Vec<Run>>,
    output: Option<Box<dyn NotificationOutput>>,
    errors: ErrorSlot,
) -> Stream<'scope, u64, Vec<()>> {
    let mut writer = TimeWriter::new(output, errors);
    let mut order = Vec::new();
    let scope = runs.scope();
    runs.unary_frontier(
        Exchange::new(|_: &Run| 0),
        "WriteRuns",
        |_, info| {
            let activator = scope.activator_for(info.address);
            move |(input, frontier), _output: &mut OutputBuilderSession<'_, u64, CapacityContainerBuilder<Vec<()>>>| {
                input.for_each(|_cap, data| {
                    for run in data.drain(..) {
                        writer.push(run.time, run);
                    }
                });
                let limit = frontier.frontier().first().copied();
                let due = writer.advance(limit, |out, time, runs| {
                    let merged = Merged::reusing(&runs, std::mem::take(&mut order));
                    let result = out.write_merged(time, &merged);
                    order = merged.into_order();
                    Run::recycle(runs);
                    result
                });
                if let Some(wait) = due {
                    activator.activate_after(wait);
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Id;
    use crate::output::order::PlayerKind;

    fn player(priority: u8, p: &str, kind: PlayerKind, item: &str) -> Notification {
        Notification::Player {
            rank_priority: Reverse(priority),
            player: Id::from(p),
            kind,
            item: Id::from(item),
        }
    }

    fn run(notes: Vec<Notification>) -> Run {
        use crate::output::format::format_notification;
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for n in &notes {
            format_notification(&mut bytes, 7, n);
            ends.push(bytes.len());
        }
        Run {
            time: 7,
            notes,
            bytes,
            ends,
        }
    }

    #[test]
    fn merged_runs_are_the_sorted_whole() {
        use PlayerKind::*;
        let all = vec![
            player(9, "b", Enter, "z"),
            player(5, "a", Exit, "z"),
            player(5, "a", Enter, "y"),
            player(5, "a", Eligible, "r"),
            player(5, "c", Ineligible, "r"),
            player(0, "a", Enter, "q"),
            player(0, "d", Exit, "q"),
            Notification::Occupancy {
                zone: Id::from("q"),
                count: 3,
            },
            Notification::Occupancy {
                zone: Id::from("y"),
                count: 0,
            },
            Notification::Occupancy {
                zone: Id::from("z"),
                count: 1,
            },
        ];
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, all);
        // Three workers' shares: by player, and by zone.
        let key = |n: &Notification| match n {
            Notification::Player { player, .. } => player_hash(player),
            Notification::Occupancy { zone, .. } => u64::from(zone.as_bytes()[0]),
        };
        let share = |k: u64| -> Vec<Notification> {
            all.iter().filter(|n| key(n) % 3 == k).cloned().collect()
        };
        let runs: Vec<Run> = (0..3).map(|k| run(share(k))).collect();
        assert_eq!(runs.iter().map(|r| r.notes.len()).sum::<usize>(), all.len());
        let merged = Merged::new(&runs);
        assert_eq!(merged.notifications(), &all[..]);
        let mut bytes = Vec::new();
        merged.write_lines(&mut bytes);
        assert_eq!(bytes, run(all).bytes);
    }
}
