//! The order of the output stream (docs/spec.md §6): one completed time's
//! changes consolidated (a change undone within the time produces nothing)
//! and turned into notifications, sorted by the contract's order key.

use std::collections::BTreeMap;

use crate::dataflow::Change;
use crate::model::event::Id;
use crate::model::hunt::Hunt;

/// One notification, docs/spec.md §6.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Notification {
    /// Player notifications: priority (for descending order), player, kind rank, item.
    Player {
        rank_priority: std::cmp::Reverse<u8>,
        player: Id,
        kind: PlayerKind,
        item: u32,
    },
    Occupancy {
        zone: u32,
        count: i64,
    },
}

/// Kinds of player notification, in their order within a player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlayerKind {
    Exit,
    Enter,
    Ineligible,
    Eligible,
}

impl PlayerKind {
    /// The `kind` a notification of this kind has.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerKind::Exit => "exit",
            PlayerKind::Enter => "enter",
            PlayerKind::Ineligible => "ineligible",
            PlayerKind::Eligible => "eligible",
        }
    }
}

/// Turns the changes of one time into its notifications, in docs/spec.md §6 order.
pub fn notifications(hunt: &Hunt, mut changes: Vec<(Change, isize)>) -> Vec<Notification> {
    changes.sort_unstable();
    let mut consolidated: Vec<(Change, isize)> = Vec::with_capacity(changes.len());
    for (change, diff) in changes {
        match consolidated.last_mut() {
            Some((last, d)) if *last == change => *d += diff,
            _ => consolidated.push((change, diff)),
        }
    }
    consolidated.retain(|(_, d)| *d != 0);

    let mut out = Vec::with_capacity(consolidated.len());
    let mut occupancy: BTreeMap<u32, i64> = BTreeMap::new();
    for (change, diff) in consolidated {
        match change {
            Change::Presence(player, zone) => out.push(Notification::Player {
                rank_priority: std::cmp::Reverse(hunt.zones[zone as usize].priority),
                player,
                kind: if diff > 0 {
                    PlayerKind::Enter
                } else {
                    PlayerKind::Exit
                },
                item: zone,
            }),
            Change::Eligible(player, reward) => out.push(Notification::Player {
                rank_priority: std::cmp::Reverse(hunt.rewards[reward as usize].priority),
                player,
                kind: if diff > 0 {
                    PlayerKind::Eligible
                } else {
                    PlayerKind::Ineligible
                },
                item: reward,
            }),
            Change::Occupancy(zone, count) => {
                let slot = occupancy.entry(zone).or_insert(0);
                if diff > 0 {
                    *slot = count;
                }
            }
        }
    }
    out.extend(
        occupancy
            .into_iter()
            .map(|(zone, count)| Notification::Occupancy { zone, count }),
    );
    // Zones and rewards are numbered in id order, so numbers order as ids do.
    out.sort_unstable();
    out
}
