//! The order of the output stream (docs/spec.md §6): one completed time's
//! changes consolidated (a change undone within the time produces nothing)
//! and turned into notifications — items by id, priorities from the hunt
//! version in effect (docs/spec.md §9) — sorted by the contract's order key,
//! which is the order of [`Notification`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dataflow::Change;
use crate::model::event::Id;
use crate::model::versions::{Item, Versions};

/// One notification, docs/spec.md §6; its `Ord` is the contract's order
/// within a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Notification {
    /// Player notifications: priority (for descending order), player, kind
    /// rank, item id (a zone's for exit and enter, else a reward's).
    Player {
        rank_priority: std::cmp::Reverse<u8>,
        player: Id,
        kind: PlayerKind,
        item: Id,
    },
    Occupancy {
        zone: Id,
        count: i64,
    },
}

/// Kinds of player notification, in their order within a player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

impl PlayerKind {
    /// Whether the item is a zone (exit, enter) or a reward.
    pub fn is_zone(self) -> bool {
        matches!(self, PlayerKind::Exit | PlayerKind::Enter)
    }
}

/// Turns the changes of time `time` into its notifications, in
/// docs/spec.md §6 order.
pub fn notifications(
    versions: &Versions,
    time: u64,
    mut changes: Vec<(Change, isize)>,
) -> Vec<Notification> {
    changes.sort_unstable();
    let mut consolidated: Vec<(Change, isize)> = Vec::with_capacity(changes.len());
    for (change, diff) in changes {
        match consolidated.last_mut() {
            Some((last, d)) if *last == change => *d += diff,
            _ => consolidated.push((change, diff)),
        }
    }
    consolidated.retain(|(_, d)| *d != 0);

    let dict = versions.dictionary();
    let player = |player: Id, item: Item, n: u32, kind: PlayerKind| {
        let names = match item {
            Item::Zone => &dict.zones,
            Item::Reward => &dict.rewards,
        };
        Notification::Player {
            rank_priority: std::cmp::Reverse(versions.priority(item, n, time)),
            player,
            kind,
            item: names.id(n).clone(),
        }
    };
    let mut out = Vec::with_capacity(consolidated.len());
    let mut occupancy: BTreeMap<&Id, i64> = BTreeMap::new();
    for (change, diff) in consolidated {
        match change {
            Change::Presence(p, zone) => {
                let kind = if diff > 0 {
                    PlayerKind::Enter
                } else {
                    PlayerKind::Exit
                };
                out.push(player(p, Item::Zone, zone, kind));
            }
            Change::Eligible(p, reward) => {
                let kind = if diff > 0 {
                    PlayerKind::Eligible
                } else {
                    PlayerKind::Ineligible
                };
                out.push(player(p, Item::Reward, reward, kind));
            }
            Change::Occupancy(zone, count) => {
                let slot = occupancy.entry(dict.zones.id(zone)).or_insert(0);
                if diff > 0 {
                    *slot = count;
                }
            }
        }
    }
    out.sort_unstable();
    out.extend(
        occupancy
            .into_iter()
            .map(|(zone, count)| Notification::Occupancy {
                zone: zone.clone(),
                count,
            }),
    );
    out
}
