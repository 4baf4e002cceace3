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
pub mod player;
pub mod players;

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
    let players = Arc::new(players::Players::new(false));
    build_with(scope, events, hunt, slice, None, players).0
}

/// [`build`], with the per-player state restored from a snapshot and kept
/// in `players` (where the API reads it), and a handle on that state for
/// taking the next snapshot.
pub fn build_with<'scope>(
    scope: Scope<'scope, u64>,
    events: Stream<'scope, u64, Vec<Event>>,
    hunt: Arc<Hunt>,
    slice: usize,
    restore: Option<facts::Restore>,
    players: Arc<players::Players>,
) -> (
    VecCollection<'scope, u64, Change, isize>,
    facts::FactsHandle,
) {
    let (facts, handle) = facts::build_with(events, hunt.clone(), slice, restore, players);
    // Split by kind, moving each record to exactly one stream.
    let mut parts = facts
        .partition(4, |((kind, p, n), t, r)| (kind as u64, ((p, n), t, r)))
        .into_iter()
        .map(|part| part.as_collection());
    let mut next = || parts.next().expect("four parts");
    let presence = next();
    let sensor_ok = next();
    let solved = next();
    let claimed = next();
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
    (changes, handle)
}
