//! Reward eligibility (docs/spec.md §5, §9): eligible(p, r) holds when the
//! player conditions of reward `r` hold for player `p` and `p` has not
//! claimed `r` — the facts operator emits those pairs as `met(p, r)`, under
//! the version in effect — and `r` is active: its version is in effect and
//! its window open.
//!
//! `active(r)` is a collection of its own, maintained from the versions as
//! they arrive: each version adds the intervals on which its rewards are
//! active (`[max(from, T_k), min(until, T_k+1))`) as updates at future
//! times, and a version arriving later cuts its predecessor's intervals at
//! its effective time. Eligibility is `met` semijoined with `active`, so a
//! window opening flips every waiting player at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::Control;
use crate::model::event::Id;
use crate::model::versions::{activity, Notice, SharedVersions, Version};

/// `(player, number)` pairs.
pub type Pairs<'scope> = VecCollection<'scope, u64, (Id, u32), isize>;

/// Builds eligible(p, r) from met(p, r) and the versions: the start state
/// of `versions` and the [`Notice`]s of versions taking effect later
/// (every worker receives every notice; worker 0 maintains `active`).
pub fn build<'scope>(
    met: Pairs<'scope>,
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
) -> Pairs<'scope> {
    let active = active(control, versions);
    met.map(|(p, r)| (r, p))
        .semijoin(active)
        .map(|(r, p)| (p, r))
}

/// The versions one worker has received, and the activity it emitted.
struct Activity {
    versions: SharedVersions,
    /// By effective time: the version in effect from then.
    known: BTreeMap<u64, Arc<Version>>,
    emitted: BTreeMap<(u32, u64), i64>,
}

impl Activity {
    /// Notes the version of `notice`; false when it changes nothing.
    fn learn(&mut self, notice: &Notice) -> bool {
        let registry = self.versions.read().expect("versions lock");
        let Some(v) = registry.get(notice.seq).or_else(|| {
            let v = registry.at(notice.effective);
            (v.seq == notice.seq).then_some(v)
        }) else {
            // Superseded by a later version of the same time.
            return false;
        };
        if self.known.get(&v.effective).is_some_and(|k| k.seq >= v.seq) {
            return false;
        }
        self.known.insert(v.effective, v.clone());
        true
    }

    /// The updates that bring what was emitted to the activity of the
    /// versions known now.
    fn updates(&mut self) -> Vec<(u32, u64, isize)> {
        let now = activity(self.known.values());
        let mut out = Vec::new();
        for (&(r, t), &d) in &now {
            let before = self.emitted.get(&(r, t)).copied().unwrap_or(0);
            if d != before {
                out.push((r, t, (d - before) as isize));
            }
        }
        for (&(r, t), &d) in &self.emitted {
            if !now.contains_key(&(r, t)) {
                out.push((r, t, -d as isize));
            }
        }
        self.emitted = now;
        out
    }
}

/// active(r), maintained on worker 0.
fn active<'scope>(
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
) -> VecCollection<'scope, u64, u32, isize> {
    let worker = control.scope().index();
    let stream = control.unary_frontier(Pipeline, "Active", move |initial, _info| {
        let known: BTreeMap<u64, Arc<Version>> = {
            let registry = versions.read().expect("versions lock");
            registry.all().map(|v| (v.effective, v.clone())).collect()
        };
        let mut activity = Activity {
            versions,
            known,
            emitted: BTreeMap::new(),
        };
        let mut first = (worker == 0).then_some(initial);
        move |(input, _frontier), output| {
            let mut caps: Vec<Capability<u64>> = Vec::new();
            let mut changed = false;
            input.for_each(|cap, data| {
                for record in data.drain(..) {
                    if let Control::Version(notice) = record {
                        changed |= activity.learn(&notice);
                    }
                }
                if let Some(&t) = cap.least() {
                    caps.push(cap.delayed(&t, 0));
                }
            });
            if worker != 0 {
                return;
            }
            // The start state goes out once, with the initial capability.
            if let Some(cap) = first.take() {
                caps.push(cap);
                changed = true;
            }
            if !changed {
                return;
            }
            let Some(cap) = caps.iter().min_by_key(|c| *c.time()) else {
                return;
            };
            let mut updates: Vec<(u32, u64, isize)> = activity.updates();
            if updates.is_empty() {
                return;
            }
            updates.sort_unstable_by_key(|&(_, t, _)| t);
            for (r, t, d) in updates {
                output.session(&cap.delayed(&t)).give((r, t, d));
            }
        }
    });
    stream.as_collection()
}
