//! The dataflow: accepted events in, the changes of presence, eligibility and
//! occupancy out, each at its logical time.
//!
//! ```text
//! events ─exchange(player)─► facts ─┬─ presence(p,z) ──────────────┬─► enter / exit
//!                                   │                              └─ count by z ─► occupancy
//!                                   ├─ solved(p,c) ─┐
//!                                   ├─ sensor_ok(p,r)├─ eligibility ◄─ active(r) windows
//!                                   └─ claimed(p,r) ─┘      │
//!                                                           └────────► eligible / ineligible
//! ```

pub mod eligibility;
pub mod facts;
pub mod occupancy;

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::Partition;
use timely::dataflow::{Scope, Stream};

use crate::event::{Event, Id};
use crate::hunt::Hunt;

/// One change of an output collection; the sink turns consolidated changes
/// into notifications.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// presence(player, zone)
    Presence(Id, u32),
    /// eligible(player, reward)
    Eligible(Id, u32),
    /// occupancy(zone) = count
    Occupancy(u32, i64),
}

/// Builds the whole dataflow over accepted events; `slice` bounds the work
/// of one activation of the facts operator (see [`facts::build`]).
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    events: Stream<'scope, u64, Vec<Event>>,
    hunt: Arc<Hunt>,
    slice: usize,
) -> VecCollection<'scope, u64, Change, isize> {
    build_with(scope, events, hunt, slice, None, false).0
}

/// Per player, its [`facts::PlayerView`] after a time (`None`: nothing live).
pub type Details<'scope> = Stream<'scope, u64, Vec<(Id, u64, Option<Box<facts::PlayerView>>)>>;

/// [`build`], with the per-player state restored from a snapshot, a handle
/// on that state for taking the next one, and (when `details` is set) the
/// stream of player views for the analysts' API.
pub fn build_with<'scope>(
    scope: Scope<'scope, u64>,
    events: Stream<'scope, u64, Vec<Event>>,
    hunt: Arc<Hunt>,
    slice: usize,
    restore: Option<facts::Restore>,
    details: bool,
) -> (
    VecCollection<'scope, u64, Change, isize>,
    facts::FactsHandle,
    Details<'scope>,
) {
    use facts::FactsOut;
    use timely::dataflow::operators::vec::Map;
    let (facts, handle) = facts::build_with(events, hunt.clone(), slice, restore, details);
    // Split by kind, moving each record to exactly one stream.
    let mut parts = facts
        .partition(5, |(out, t, r)| {
            let part = match &out {
                FactsOut::Fact((kind, _, _)) => *kind as u64,
                FactsOut::Detail(..) => 4,
            };
            (part, (out, t, r))
        })
        .into_iter();
    let mut next = || {
        parts
            .next()
            .expect("five parts")
            .flat_map(|(out, t, r)| match out {
                FactsOut::Fact((_, p, n)) => Some(((p, n), t, r)),
                FactsOut::Detail(..) => None,
            })
            .as_collection()
    };
    let presence = next();
    let sensor_ok = next();
    let solved = next();
    let claimed = next();
    let details = parts
        .next()
        .expect("five parts")
        .flat_map(|(out, t, _)| match out {
            FactsOut::Detail(p, view) => Some((p, t, view)),
            FactsOut::Fact(_) => None,
        });
    let inputs = eligibility::Inputs {
        presence: presence.clone(),
        solved,
        sensor_ok,
        claimed,
    };
    let eligible = eligibility::build(scope, inputs, hunt);
    let occupancy = occupancy::build(presence.clone());

    let changes = presence
        .map(|(p, z)| Change::Presence(p, z))
        .concat(eligible.map(|(p, r)| Change::Eligible(p, r)))
        .concat(occupancy.map(|(z, n)| Change::Occupancy(z, n)));
    (changes, handle, details)
}
