//! One input partition of the Kafka source: its admission state, where
//! reading stands, the accepted events a snapshot must carry, and the
//! logged decisions still to replay; and the records of those decisions
//! and of a partition's saved state.

use std::collections::VecDeque;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::input::admission::Admission;
use crate::kafka::position::Positioning;
use crate::model::event::Event;

/// A decision that is not a function of the input: a partition's latest
/// time raised to `m` when its next offset to read was `next` (-1: before
/// its first record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advance {
    pub partition: u32,
    pub next: i64,
    pub m: u64,
}

/// Durable log of [`Advance`] decisions, written before they take effect.
pub trait AdvanceLog: Send + Sync {
    fn record(&self, advance: &Advance) -> std::io::Result<()>;
}

/// The saved state of one input partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPartition {
    pub partition: u32,
    pub admission: Admission,
    /// The next offset to read; `None`: from the partition's start.
    pub next: Option<i64>,
    /// Accepted events at or above the snapshot's frontier, in read order.
    pub events: Vec<Event>,
}

/// The reading state of one partition.
pub(super) struct Part {
    pub admission: Admission,
    pub next: Option<i64>,
    /// Accepted events not yet known to be below the completed frontier.
    pub retained: VecDeque<Event>,
    /// Logged advances not yet replayed, by `next`.
    pub advances: VecDeque<Advance>,
    pub at_end: bool,
    /// Set after the consumer was positioned, until reading is in place.
    pub positioning: Option<Positioning>,
    pub idle_since: Option<Instant>,
    pub last_advance: Instant,
}

impl Part {
    pub fn new(admission: Admission, next: Option<i64>) -> Self {
        Part {
            admission,
            next,
            retained: VecDeque::new(),
            advances: VecDeque::new(),
            at_end: false,
            positioning: next.filter(|&n| n > 0).map(Positioning::new),
            idle_since: None,
            last_advance: Instant::now(),
        }
    }

    /// A partition restored from a snapshot.
    pub fn restored(saved: SavedPartition) -> Self {
        let mut part = Part::new(saved.admission, saved.next);
        part.retained = saved.events.into();
        part
    }

    /// Replays the logged advances due before reading offset `offset`.
    pub fn replay(&mut self, offset: i64) {
        while let Some(a) = self.advances.pop_front_if(|a| a.next <= offset) {
            self.admission.advance(a.m);
        }
    }

    /// Drops the retained events below the completed frontier `done`.
    pub fn retain_from(&mut self, done: u64) {
        while self.retained.front().is_some_and(|e| e.ts < done) {
            self.retained.pop_front();
        }
    }

    /// What a snapshot at `frontier` keeps of this partition.
    pub fn save(&self, partition: u32, frontier: u64) -> SavedPartition {
        SavedPartition {
            partition,
            admission: self.admission.clone(),
            next: self.next,
            events: self
                .retained
                .iter()
                .filter(|e| e.ts >= frontier)
                .cloned()
                .collect(),
        }
    }

    /// The latest time an idle partition should be raised to now, if one is
    /// due: from `base` (the largest time any partition has seen), by the
    /// time it has been idle beyond `idle`.
    pub fn idle_advance(
        &mut self,
        now: Instant,
        idle: std::time::Duration,
        base: u64,
    ) -> Option<u64> {
        if !self.at_end || !self.advances.is_empty() {
            return None;
        }
        let since = *self.idle_since.get_or_insert(now);
        let idle_for = now.duration_since(since);
        if idle_for < idle || now.duration_since(self.last_advance) < super::ADVANCE_EVERY {
            return None;
        }
        let m = base.saturating_add((idle_for - idle).as_millis() as u64);
        self.admission.latest().is_none_or(|l| l < m).then_some(m)
    }
}
