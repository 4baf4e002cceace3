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

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::{Scope, Stream};

use crate::event::Event;
use crate::hunt::Hunt;
use facts::FactKind;

/// One change of an output collection; the sink turns consolidated changes
/// into notifications.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// presence(player, zone)
    Presence(String, u32),
    /// eligible(player, reward)
    Eligible(String, u32),
    /// occupancy(zone) = count
    Occupancy(u32, i64),
}

/// Builds the whole dataflow over accepted events.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    events: Stream<'scope, u64, Vec<Event>>,
    hunt: Arc<Hunt>,
) -> VecCollection<'scope, u64, Change, isize> {
    let facts = facts::build(events, hunt.clone());
    let of_kind = |kind: FactKind| {
        facts
            .clone()
            .filter(move |(k, _, _)| *k == kind)
            .map(|(_, p, n)| (p, n))
    };
    let presence = of_kind(FactKind::Presence);
    let inputs = eligibility::Inputs {
        presence: presence.clone(),
        solved: of_kind(FactKind::Solved),
        sensor_ok: of_kind(FactKind::SensorOk),
        claimed: of_kind(FactKind::Claimed),
    };
    let eligible = eligibility::build(scope, inputs, hunt);
    let occupancy = occupancy::build(presence.clone());

    presence
        .map(|(p, z)| Change::Presence(p, z))
        .concat(eligible.map(|(p, r)| Change::Eligible(p, r)))
        .concat(occupancy.map(|(z, n)| Change::Occupancy(z, n)))
}
