//! Output that resumes after a restart without gap or duplicate: the
//! continuous job re-creates, from its last snapshot, exactly the records it
//! wrote before it stopped (docs/spec.md §7), and each output skips those
//! its destination already holds. Until it has re-created all of them, no
//! snapshot is taken ([`Held`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::order::Notification;
use super::rejects::parse_reject_origin;
use crate::input::reject::{Place, Reject};

/// Which re-created notifications an output must skip: per output
/// partition, those up to the last one the destination already holds. A
/// partition's notifications are in the contract's order, so they are
/// ordered by `(time, notification)`. (Those below the snapshot's frontier,
/// the restored state re-derived, never reach an output: see
/// [`super::chain`].)
pub struct Resume {
    last: Vec<Option<(u64, Notification)>>,
}

impl Resume {
    pub fn new(partitions: usize) -> Self {
        Resume {
            last: vec![None; partitions.max(1)],
        }
    }

    /// The destination holds `n` at `time` in partition `p` (called in order).
    pub fn written(&mut self, p: usize, time: u64, n: Notification) {
        self.last[p] = Some((time, n));
    }

    /// What the destination holds beyond the snapshot: its latest time,
    /// over all partitions (before anything is written).
    pub fn held(&self) -> Held {
        Held {
            until: self.last.iter().flatten().map(|(t, _)| *t).max(),
            ..Held::default()
        }
    }

    /// Whether `n` at `time` must be written to partition `p`.
    pub fn keep(&mut self, p: usize, time: u64, n: &Notification) -> bool {
        match &self.last[p] {
            Some((t, last)) if (time, n) <= (*t, last) => false,
            Some(_) => {
                self.last[p] = None;
                true
            }
            None => true,
        }
    }
}

/// What the outputs held beyond the snapshot's marks when the job
/// started: what it wrote after that snapshot before it stopped. Until the
/// job has re-created all of it, an output's end is ahead of the job, and a
/// snapshot taken then would mark it as written at the snapshot's frontier:
/// the next start would skip none of it and write it twice. The snapshot
/// protocol waits until it is [`passed`](Held::passed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// The latest time of a record held.
    pub until: Option<u64>,
    /// Per input partition, the latest offset of a reject held.
    pub offsets: BTreeMap<u32, i64>,
}

impl Held {
    pub fn time(&mut self, time: Option<u64>) {
        self.until = self.until.max(time);
    }

    pub fn offset(&mut self, partition: u32, offset: i64) {
        let o = self.offsets.entry(partition).or_insert(offset);
        *o = (*o).max(offset);
    }

    pub fn merge(&mut self, other: Held) {
        self.time(other.until);
        for (p, o) in other.offsets {
            self.offset(p, o);
        }
    }

    /// Whether the job has re-created all of it: every time up to the latest
    /// written (`written`: every time below it is), and every input
    /// partition read past its latest reject (`next`: a partition's next
    /// offset, if known).
    pub fn passed(&self, written: u64, next: impl Fn(u32) -> Option<i64>) -> bool {
        self.until.is_none_or(|t| written > t)
            && self
                .offsets
                .iter()
                .all(|(&p, &o)| next(p).is_some_and(|n| n > o))
    }
}

/// Per input partition, the last reject a destination already holds, as
/// `(offset, line)`; rejects up to it are not written again.
#[derive(Default)]
pub struct WrittenRejects(Mutex<HashMap<u32, (i64, u32)>>);

impl WrittenRejects {
    /// Notes a record read back from the destination.
    pub fn note(&mut self, record: &[u8]) {
        if let (Some((p, at)), Ok(map)) = (parse_reject_origin(record), self.0.get_mut()) {
            let slot = map.entry(p).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Per input partition, the offset of the last reject held.
    pub fn held(&self) -> Held {
        let mut held = Held::default();
        if let Ok(map) = self.0.lock() {
            for (&p, &(offset, _)) in map.iter() {
                held.offset(p, offset);
            }
        }
        held
    }

    /// Whether reject `r` must be written: a reject read from a topic
    /// that the destination holds already is not.
    pub fn is_new(&self, r: &Reject) -> bool {
        let Place::Message { offset, line } = r.place else {
            return true;
        };
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        match map.get(&r.partition) {
            Some(&last) if (offset, line) <= last => false,
            Some(_) => {
                map.remove(&r.partition);
                true
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::order::PlayerKind;

    fn player(p: &str, kind: PlayerKind, item: u32) -> Notification {
        Notification::Player {
            rank_priority: std::cmp::Reverse(1),
            player: p.into(),
            kind,
            item: format!("z{item}").into(),
        }
    }

    #[test]
    fn skips_up_to_the_last_written() {
        let mut r = Resume::new(2);
        r.written(0, 12, player("b", PlayerKind::Enter, 0));
        assert!(!r.keep(0, 12, &player("a", PlayerKind::Enter, 0)));
        assert!(!r.keep(0, 12, &player("b", PlayerKind::Enter, 0)));
        assert!(r.keep(1, 12, &player("a", PlayerKind::Enter, 0)));
        assert!(r.keep(0, 12, &player("c", PlayerKind::Enter, 0)));
        // Once past the last written, everything is new.
        assert!(r.keep(0, 13, &player("a", PlayerKind::Enter, 0)));
    }

    #[test]
    fn what_was_held_is_passed_once_written_and_read_beyond_it() {
        let mut held = Held::default();
        assert!(held.passed(0, |_| None), "nothing held");
        held.time(Some(20));
        held.merge(Held {
            until: Some(15),
            offsets: [(1, 7)].into(),
        });
        held.offset(1, 5);
        assert_eq!(held.until, Some(20));
        assert_eq!(held.offsets, [(1, 7)].into());
        assert!(!held.passed(20, |_| Some(100)), "time 20 not yet written");
        assert!(!held.passed(21, |_| Some(7)), "offset 7 not yet read");
        assert!(!held.passed(21, |_| None), "partition 1 not yet read");
        assert!(held.passed(21, |_| Some(8)));
    }
}
