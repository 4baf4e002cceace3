//! The admission rules of one partition (docs/spec.md §2, §3): lateness and
//! duplicates, the partition frontier they define, and [`ingest`], which
//! takes one raw record through every check in the contract's order.

use std::collections::VecDeque;

use hashbrown::hash_map::EntryRef;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use crate::model::event::{self, Event, Id, Invalid, Reason};
use crate::model::hunt::Hunt;

/// Lateness and duplicate rules of one partition.
///
/// Keeps the ids of accepted events whose `ts` is at or above the frontier;
/// older ids can no longer make a record a duplicate and are forgotten, so
/// the state is bounded by the events inside the lateness window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Admission {
    lateness: u64,
    max_ts: Option<u64>,
    /// Accepted ids and their `ts` (one lookup per record: an entry).
    ids: hashbrown::HashMap<Id, u64, FxBuildHasher>,
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
        let entry = self.ids.entry_ref(id);
        if let EntryRef::Occupied(seen) = &entry {
            let prev = *seen.get();
            if prev >= frontier {
                return Err(Invalid {
                    reason: Reason::Duplicate,
                    detail: format!("id {id:?} already accepted (ts {prev})"),
                });
            }
        }
        entry.insert(ts);
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.order.push_back((ts, Id::from(id)));
        self.prune();
        Ok(())
    }

    /// Forgets the ids below the frontier.
    fn prune(&mut self) {
        let frontier = self.frontier();
        while self.order.front().is_some_and(|(ts, _)| *ts < frontier) {
            let (old_ts, old_id) = self.order.pop_front().expect("front exists");
            if let EntryRef::Occupied(seen) = self.ids.entry_ref(old_id.as_str()) {
                if *seen.get() == old_ts {
                    seen.remove();
                }
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

/// Takes one raw record through every check (docs/spec.md §3) against the
/// hunt and the partition's admission state: `Ok(None)` for an accepted
/// record that can have no effect under any hunt.
pub fn ingest(
    line: &[u8],
    hunt: &Hunt,
    admission: &mut Admission,
) -> Result<Option<Event>, Invalid> {
    let parsed = event::parse(line, hunt)?;
    admission.admit(&parsed.id, parsed.ts)?;
    Ok(parsed.into_event())
}

/// How far (event time) a partition may run ahead of the completed output
/// before it stops being read, so that one fast partition cannot fill
/// memory: `max(10 × lateness, 60 s)`.
pub fn max_ahead_ms(hunt: &Hunt) -> u64 {
    hunt.max_lateness_ms.saturating_mul(10).max(60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    /// The rules as the contract states them: an id is a duplicate while an
    /// accepted record with it has its `ts` at or above the frontier.
    #[derive(Default)]
    struct Naive {
        lateness: u64,
        max_ts: Option<u64>,
        seen: HashMap<String, Vec<u64>>,
    }

    impl Naive {
        fn admit(&mut self, id: &str, ts: u64) -> Result<(), Reason> {
            let frontier = self.max_ts.map_or(0, |m| m.saturating_sub(self.lateness));
            if self.max_ts.is_some() && ts < frontier {
                return Err(Reason::Late);
            }
            let times = self.seen.entry(id.to_string()).or_default();
            if times.iter().any(|&t| t >= frontier) {
                return Err(Reason::Duplicate);
            }
            times.push(ts);
            self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
            Ok(())
        }
    }

    #[test]
    fn agrees_with_the_rules_through_saves_and_restores() {
        for seed in 0..40 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let lateness = rng.random_range(0..50);
            let mut admission = Admission::new(lateness);
            let mut naive = Naive {
                lateness,
                ..Naive::default()
            };
            let mut ts = 0u64;
            for step in 0..3000 {
                ts += rng.random_range(0..3);
                let t = ts.saturating_sub(rng.random_range(0..lateness + 10));
                let id = format!("e{}", rng.random_range(0..200));
                let got = admission.admit(&id, t).map_err(|e| e.reason);
                assert_eq!(got, naive.admit(&id, t), "seed {seed} step {step}");
                if step % 97 == 0 {
                    admission.advance(ts + rng.random_range(0..5));
                    naive.max_ts = admission.latest();
                }
                if step % 211 == 0 {
                    let text = serde_json::to_string(&admission).unwrap();
                    admission = serde_json::from_str(&text).unwrap();
                }
                assert_eq!(
                    admission.frontier(),
                    naive.max_ts.map_or(0, |m| m.saturating_sub(lateness))
                );
            }
            assert!(admission.retained() <= 200);
        }
    }
}
