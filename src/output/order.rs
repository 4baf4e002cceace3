//! The order of the output stream (docs/spec.md §6): one completed time's
//! changes consolidated (a change undone within the time produces nothing)
//! and turned into notifications — items by id, priorities from the hunt
//! version in effect (docs/spec.md §9) — sorted by the contract's order key,
//! which is the order of [`Notification`].

use std::cell::RefCell;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::dataflow::Change;
use crate::model::event::Id;
use crate::model::versions::{Item, Names, Versions};

/// One notification, docs/spec.md §6; its `Ord` is the contract's order
/// within a time: players before occupancy; players by priority
/// (descending), player, kind, item; occupancy by zone, then count. Ids
/// compare bytewise ([`cmp_ids`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl Ord for Notification {
    fn cmp(&self, other: &Self) -> Ordering {
        use Notification::{Occupancy, Player};
        match (self, other) {
            (
                Player {
                    rank_priority: pa,
                    player: a,
                    kind: ka,
                    item: ia,
                },
                Player {
                    rank_priority: pb,
                    player: b,
                    kind: kb,
                    item: ib,
                },
            ) => pa
                .cmp(pb)
                .then_with(|| cmp_ids(a, b))
                .then_with(|| ka.cmp(kb))
                .then_with(|| cmp_ids(ia, ib)),
            (Player { .. }, Occupancy { .. }) => Ordering::Less,
            (Occupancy { .. }, Player { .. }) => Ordering::Greater,
            (Occupancy { zone: a, count: ca }, Occupancy { zone: b, count: cb }) => {
                cmp_ids(a, b).then_with(|| ca.cmp(cb))
            }
        }
    }
}

impl PartialOrd for Notification {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The first eight bytes of `s`, zero-padded, as a big-endian number.
#[inline]
fn prefix(s: &[u8]) -> u64 {
    match s.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => s
            .iter()
            .enumerate()
            .fold(0, |v, (i, &b)| v | u64::from(b) << (56 - 8 * i)),
    }
}

/// The rest of the bytewise order of two ids whose [`prefix`]es are equal.
#[inline]
fn cmp_rest(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() <= 8 && b.len() <= 8 {
        a.len().cmp(&b.len())
    } else {
        a.cmp(b)
    }
}

/// The bytewise order of two ids, most often decided by their first eight
/// bytes as one number. Where those agree (zero-padded), two ids of at
/// most eight bytes differ only in trailing zero bytes, so the shorter is
/// first; longer ones are compared whole.
#[inline]
pub fn cmp_ids(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    prefix(a).cmp(&prefix(b)).then_with(|| cmp_rest(a, b))
}

/// A player change on its way to a notification: sorted by priority
/// (descending), player, item kind (zones first) and item id, so that
/// changes of one (player, item) are adjacent for consolidation and the
/// notifications come out in order.
struct Keyed {
    /// The priority, inverted, above the player's [`prefix`]: most
    /// comparisons end here.
    key: u128,
    priority: u8,
    player: Id,
    item: Item,
    n: u32,
    diff: isize,
}

impl Keyed {
    fn rank(&self) -> u8 {
        match self.item {
            Item::Zone => 0,
            Item::Reward => 1,
        }
    }

    fn new(priority: u8, player: Id, item: Item, n: u32, diff: isize) -> Self {
        let key = u128::from(u8::MAX - priority) << 64 | u128::from(prefix(player.as_bytes()));
        Keyed {
            key,
            priority,
            player,
            item,
            n,
            diff,
        }
    }

    fn cmp(&self, other: &Self, zones: &Names, rewards: &Names) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| cmp_rest(self.player.as_bytes(), other.player.as_bytes()))
            .then_with(|| self.rank().cmp(&other.rank()))
            .then_with(|| {
                if self.n == other.n {
                    return Ordering::Equal;
                }
                let names = match self.item {
                    Item::Zone => zones,
                    Item::Reward => rewards,
                };
                cmp_ids(names.id(self.n), names.id(other.n))
            })
    }

    /// The same change of the same player.
    fn same(&self, other: &Self) -> bool {
        self.n == other.n && self.item == other.item && self.player == other.player
    }

    /// Its notification: added (enter, eligible) or removed (exit,
    /// ineligible).
    fn notification(self, names: &Names) -> Notification {
        let kind = match (self.item, self.diff > 0) {
            (Item::Zone, true) => PlayerKind::Enter,
            (Item::Zone, false) => PlayerKind::Exit,
            (Item::Reward, true) => PlayerKind::Eligible,
            (Item::Reward, false) => PlayerKind::Ineligible,
        };
        Notification::Player {
            rank_priority: std::cmp::Reverse(self.priority),
            player: self.player,
            kind,
            item: names.id(self.n).clone(),
        }
    }
}

/// Turns the changes of time `time` into its notifications, in
/// docs/spec.md §6 order, leaving `changes` empty (its capacity kept for
/// the next time). A change and its undoing within the time cancel.
pub fn notifications(
    versions: &Versions,
    time: u64,
    changes: &mut Vec<(Change, isize)>,
) -> Vec<Notification> {
    SCRATCH.with_borrow_mut(|(keyed, counts)| {
        let out = in_order(versions, time, changes, keyed, counts);
        // A huge time (every position expiring at once) is not kept.
        keyed.shrink_to(SCRATCH_KEPT);
        counts.shrink_to(SCRATCH_KEPT);
        out
    })
}

/// The most changes of each kind the sorting buffers keep room for.
const SCRATCH_KEPT: usize = 1 << 14;

thread_local! {
    /// The buffers [`notifications`] sorts in, kept for the next time.
    static SCRATCH: RefCell<(Vec<Keyed>, Vec<Count>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A change of a zone's count: `((zone, count), diff)`.
type Count = ((u32, i64), isize);

/// [`notifications`], sorting in `keyed` and `counts` (left empty).
fn in_order(
    versions: &Versions,
    time: u64,
    changes: &mut Vec<(Change, isize)>,
    keyed: &mut Vec<Keyed>,
    counts: &mut Vec<Count>,
) -> Vec<Notification> {
    let dict = versions.dictionary();
    for (change, diff) in changes.drain(..) {
        let (player, item, n) = match change {
            Change::Presence(p, zone) => (p, Item::Zone, zone),
            Change::Eligible(p, reward) => (p, Item::Reward, reward),
            Change::Occupancy(zone, count) => {
                counts.push(((zone, count), diff));
                continue;
            }
        };
        let priority = versions.priority(item, n, time);
        keyed.push(Keyed::new(priority, player, item, n, diff));
    }
    keyed.sort_unstable_by(|a, b| a.cmp(b, &dict.zones, &dict.rewards));
    let mut out = Vec::with_capacity(keyed.len() + counts.len());
    // Where the current (priority, player, item kind) began in `out`.
    let mut group = 0;
    let mut changes = keyed.drain(..).peekable();
    while let Some(mut change) = changes.next() {
        while let Some(again) = changes.next_if(|c| c.same(&change)) {
            change.diff += again.diff;
        }
        let ends_group = changes.peek().is_none_or(|next| {
            next.priority != change.priority
                || next.item != change.item
                || next.player != change.player
        });
        if change.diff != 0 {
            let names = match change.item {
                Item::Zone => &dict.zones,
                Item::Reward => &dict.rewards,
            };
            out.push(change.notification(names));
        }
        if ends_group {
            // Removals before additions, each still by item (a stable
            // sort of a few).
            out[group..].sort_by_key(|n| match n {
                Notification::Player { kind, .. } => *kind,
                Notification::Occupancy { .. } => unreachable!("players only"),
            });
            group = out.len();
        }
    }
    out.extend(occupancy(&dict.zones, counts));
    out
}

/// The occupancy notifications of one time from the changes of
/// `(zone, count)`, by zone id: a zone whose counts changed has the count
/// added (none: it emptied, count 0).
fn occupancy(zones: &Names, counts: &mut Vec<Count>) -> Vec<Notification> {
    counts.sort_unstable();
    let mut by_zone: Vec<(u32, i64)> = Vec::new();
    let mut counts = counts.drain(..).peekable();
    while let Some(((zone, count), mut diff)) = counts.next() {
        while let Some((_, d)) = counts.next_if(|c| c.0 == (zone, count)) {
            diff += d;
        }
        if diff == 0 {
            continue;
        }
        match by_zone.last_mut() {
            Some(last) if last.0 == zone => {}
            _ => by_zone.push((zone, 0)),
        }
        if diff > 0 {
            by_zone.last_mut().expect("just pushed").1 = count;
        }
    }
    by_zone.sort_unstable_by(|a, b| cmp_ids(zones.id(a.0), zones.id(b.0)));
    by_zone
        .into_iter()
        .map(|(zone, count)| Notification::Occupancy {
            zone: zones.id(zone).clone(),
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Short ids over a tiny alphabet (with NUL) meet every case: equal
    /// prefixes, one a prefix of the other, trailing zero bytes, ids
    /// around eight bytes long.
    #[test]
    fn ids_compare_bytewise() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let alphabet = ['\0', 'a', 'b', 'é'];
        let id = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
            let len = rng.random_range(0..12);
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        };
        for _ in 0..200_000 {
            let (a, b) = (id(&mut rng), id(&mut rng));
            assert_eq!(
                cmp_ids(&a, &b),
                a.as_bytes().cmp(b.as_bytes()),
                "{a:?} {b:?}"
            );
            assert_eq!(cmp_ids(&a, &a), Ordering::Equal);
        }
    }
}
