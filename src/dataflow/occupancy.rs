//! Occupancy: the number of players present in each zone.
//!
//! The count of a zone is kept by one worker (presence changes are
//! exchanged by zone). Each complete time's changes are summed per zone
//! and applied in time order; a zone whose count moved from `old` to `new`
//! at `t` gives the changes `(zone, old) -1` and `(zone, new) +1` at `t`, a
//! zero count being no record — the output of differential's `count_total`
//! over the zones of presence, without arranging every presence change.

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

use super::by_time::Held;
use crate::model::event::Id;

/// One worker's zones' counts.
#[derive(Default)]
struct Counts {
    counts: FxHashMap<u32, i64>,
}

impl Counts {
    /// Applies the changes of time `t` (all of them), pushing the changes
    /// of the counts.
    fn apply(
        &mut self,
        t: u64,
        changes: &mut [(u32, isize)],
        out: &mut Vec<((u32, i64), u64, isize)>,
    ) {
        changes.sort_unstable_by_key(|&(zone, _)| zone);
        let mut i = 0;
        while i < changes.len() {
            let zone = changes[i].0;
            let mut net = 0;
            while i < changes.len() && changes[i].0 == zone {
                net += changes[i].1 as i64;
                i += 1;
            }
            if net == 0 {
                continue;
            }
            let count = self.counts.entry(zone).or_insert(0);
            let old = *count;
            *count += net;
            let new = *count;
            if new == 0 {
                self.counts.remove(&zone);
            }
            if old != 0 {
                out.push(((zone, old), t, -1));
            }
            if new != 0 {
                out.push(((zone, new), t, 1));
            }
        }
    }
}

/// Builds occupancy(z) = |{p : presence(p, z)}| from presence(p, z), as
/// `(zone, count)` records; a zone with no player has no record.
pub fn build<'scope>(
    presence: VecCollection<'scope, u64, (Id, u32), isize>,
) -> VecCollection<'scope, u64, (u32, i64), isize> {
    presence
        .inner
        .map(|((_, zone), t, diff)| (zone, t, diff))
        .unary_frontier(
            Exchange::new(|&(zone, _, _): &(u32, u64, isize)| u64::from(zone)),
            "Occupancy",
            |_initial, _info| {
                let mut zones = Counts::default();
                let mut waiting = Held::<(u32, isize)>::default();
                let mut out = Vec::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (zone, t, diff) in data.drain(..) {
                            waiting.push(t, (zone, diff), || cap.delayed(&t, 0));
                        }
                    });
                    let limit = frontier.frontier().first().copied();
                    while let Some((t, mut changes)) = waiting.take_before(limit) {
                        zones.apply(t, &mut changes, &mut out);
                        waiting.recycle(changes);
                        if !out.is_empty() {
                            output.session(&waiting.at(t)).give_container(&mut out);
                            out.clear();
                        }
                    }
                    waiting.release();
                }
            },
        )
        .as_collection()
}
