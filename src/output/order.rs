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

/// A player change on its way to a notification.
struct Keyed {
    priority: u8,
    player: Id,
    item: Item,
    n: u32,
    diff: isize,
}

impl Keyed {
    /// Its notification: added (enter, eligible) or removed (exit,
    /// ineligible).
    fn notification(&mut self, diff: isize, names: &Names) -> Notification {
        let kind = match (self.item, diff > 0) {
            (Item::Zone, true) => PlayerKind::Enter,
            (Item::Zone, false) => PlayerKind::Exit,
            (Item::Reward, true) => PlayerKind::Eligible,
            (Item::Reward, false) => PlayerKind::Ineligible,
        };
        Notification::Player {
            rank_priority: std::cmp::Reverse(self.priority),
            player: std::mem::take(&mut self.player),
            kind,
            item: names.id(self.n).clone(),
        }
    }
}

/// Where a player change sorts: by priority (descending), player, item
/// kind (zones first) and item id. `hi` is the inverted priority above the
/// player's first seven bytes; `lo` the player's length (8: longer) above
/// the item kind and the item's rank among the ids of its kind. Most
/// comparisons end at `hi`; only two long players that share their first
/// seven bytes are compared whole.
#[derive(Clone, Copy)]
struct SortKey {
    hi: u64,
    lo: u64,
    /// The change's place among the keyed changes.
    at: u32,
}

/// `lo`'s length field of a player longer than seven bytes.
const LONG: u64 = 8;

impl SortKey {
    fn new(at: usize, c: &Keyed, names: &Names) -> Self {
        let bytes = c.player.as_bytes();
        let hi = u64::from(u8::MAX - c.priority) << 56 | prefix(bytes) >> 8;
        let kind = match c.item {
            Item::Zone => 0,
            Item::Reward => 1,
        };
        let len = (bytes.len() as u64).min(LONG);
        let lo = len << 56 | kind << 55 | u64::from(names.rank(c.n));
        let at = u32::try_from(at).expect("fewer than 2^32 changes a time");
        SortKey { hi, lo, at }
    }

    fn long(&self) -> bool {
        self.lo >> 56 == LONG
    }

    /// Two short players with equal first seven bytes (zero-padded) differ
    /// in trailing zero bytes, so their lengths order them; a short one
    /// before a long one is a prefix of it.
    fn cmp(&self, other: &Self, keyed: &[Keyed]) -> Ordering {
        self.hi.cmp(&other.hi).then_with(|| {
            if self.long() && other.long() {
                let a = keyed[self.at as usize].player.as_bytes();
                let b = keyed[other.at as usize].player.as_bytes();
                a.cmp(b).then(self.lo.cmp(&other.lo))
            } else {
                self.lo.cmp(&other.lo)
            }
        })
    }

    /// The same priority, player and item kind as `other`.
    fn same_group(&self, other: &Self, keyed: &[Keyed]) -> bool {
        self.hi == other.hi
            && self.lo >> 55 == other.lo >> 55
            && (!self.long() || keyed[self.at as usize].player == keyed[other.at as usize].player)
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
    SCRATCH.with_borrow_mut(|scratch| {
        let out = scratch.in_order(versions, time, changes);
        scratch.shrink();
        out
    })
}

/// The most changes of each kind the sorting buffers keep room for.
const SCRATCH_KEPT: usize = 1 << 14;

thread_local! {
    /// The buffers [`notifications`] sorts in, kept for the next time.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A change of a zone's count: `((zone, count), diff)`.
type Count = ((u32, i64), isize);

#[derive(Default)]
struct Scratch {
    keyed: Vec<Keyed>,
    keys: Vec<SortKey>,
    counts: Vec<Count>,
}

impl Scratch {
    /// A huge time (every position expiring at once) is not kept.
    fn shrink(&mut self) {
        self.keyed.shrink_to(SCRATCH_KEPT);
        self.keys.shrink_to(SCRATCH_KEPT);
        self.counts.shrink_to(SCRATCH_KEPT);
    }

    /// [`notifications`], the buffers left empty.
    fn in_order(
        &mut self,
        versions: &Versions,
        time: u64,
        changes: &mut Vec<(Change, isize)>,
    ) -> Vec<Notification> {
        let dict = versions.dictionary();
        let Scratch {
            keyed,
            keys,
            counts,
        } = self;
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
            keyed.push(Keyed {
                priority,
                player,
                item,
                n,
                diff,
            });
        }
        keys.extend(
            keyed
                .iter()
                .enumerate()
                .map(|(at, c)| SortKey::new(at, c, dict.names(c.item))),
        );
        keys.sort_unstable_by(|a, b| a.cmp(b, keyed));
        let mut out = Vec::with_capacity(keys.len() + counts.len());
        // Where the current (priority, player, item kind) began in `out`.
        let mut group = 0;
        let mut i = 0;
        while i < keys.len() {
            let key = keys[i];
            let mut diff = keyed[key.at as usize].diff;
            i += 1;
            while i < keys.len() && keys[i].cmp(&key, keyed) == Ordering::Equal {
                diff += keyed[keys[i].at as usize].diff;
                i += 1;
            }
            let ends_group = keys.get(i).is_none_or(|next| !next.same_group(&key, keyed));
            if diff != 0 {
                let change = &mut keyed[key.at as usize];
                out.push(change.notification(diff, dict.names(change.item)));
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
        keyed.clear();
        keys.clear();
        out.extend(occupancy(&dict.zones, counts));
        out
    }
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
    use crate::model::hunt::{Hunt, HuntText};
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// The contract's order by its definition: consolidate, name, sort by
    /// the full notification order.
    fn naive(versions: &Versions, time: u64, changes: &[(Change, isize)]) -> Vec<Notification> {
        let dict = versions.dictionary();
        let mut net: BTreeMap<Change, isize> = BTreeMap::new();
        for (c, d) in changes {
            *net.entry(c.clone()).or_default() += d;
        }
        let mut players = Vec::new();
        let mut zones: BTreeMap<Vec<u8>, (Id, i64)> = BTreeMap::new();
        for (c, d) in net.into_iter().filter(|(_, d)| *d != 0) {
            let (player, item, n, kind) = match c {
                Change::Presence(p, z) => {
                    let kind = if d > 0 {
                        PlayerKind::Enter
                    } else {
                        PlayerKind::Exit
                    };
                    (p, Item::Zone, z, kind)
                }
                Change::Eligible(p, r) => {
                    let kind = if d > 0 {
                        PlayerKind::Eligible
                    } else {
                        PlayerKind::Ineligible
                    };
                    (p, Item::Reward, r, kind)
                }
                Change::Occupancy(z, count) => {
                    let id = dict.zones.id(z).clone();
                    let slot = zones.entry(id.as_bytes().to_vec()).or_insert((id, 0));
                    if d > 0 {
                        slot.1 = count;
                    }
                    continue;
                }
            };
            players.push(Notification::Player {
                rank_priority: std::cmp::Reverse(versions.priority(item, n, time)),
                player,
                kind,
                item: dict.names(item).id(n).clone(),
            });
        }
        players.sort();
        players.extend(
            zones
                .into_values()
                .map(|(zone, count)| Notification::Occupancy { zone, count }),
        );
        players
    }

    /// A hunt whose ids share long prefixes and differ in trailing zeros,
    /// with priorities that tie.
    fn hunt() -> Hunt {
        let mut toml = String::new();
        for (i, id) in ["a", "a0", "aaaaaaaaZ", "aaaaaaaaY", "b\\u0000", "b", "zz"]
            .iter()
            .enumerate()
        {
            toml += &format!(
                "[[zones]]\nid = \"{id}\"\npriority = {}\ncircle = {{ lat = 1.0, lon = 1.0, radius_m = 10.0 }}\n",
                i % 3
            );
            toml += &format!(
                "[[rewards]]\nid = \"r{id}\"\npriority = {}\nzone = \"{id}\"\n",
                i % 2
            );
        }
        let text = HuntText {
            toml,
            geojson: None,
        };
        Hunt::parse(std::path::Path::new("t.toml"), text).expect("hunt loads")
    }

    #[test]
    fn notifications_follow_the_contract_order() {
        let versions = Versions::new(hunt());
        let players = [
            "p",
            "p\0",
            "p\0\0\0\0\0\0\0",
            "pppppppA",
            "pppppppB",
            "pppppppAx",
            "ppppppp",
            "pppppppp",
            "q",
            "é",
            "",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for round in 0..2_000 {
            let n = rng.random_range(0..60);
            let zones = versions.dictionary().zones.len() as u32;
            let changes: Vec<(Change, isize)> = (0..n)
                .map(|_| {
                    let p = Id::from(players[rng.random_range(0..players.len())]);
                    let item = rng.random_range(0..zones);
                    let diff = if rng.random_bool(0.5) { 1 } else { -1 };
                    let change = match rng.random_range(0..3) {
                        0 => Change::Presence(p, item),
                        1 => Change::Eligible(p, item),
                        _ => Change::Occupancy(item, rng.random_range(0..3)),
                    };
                    (change, diff)
                })
                .collect();
            let mut given = changes.clone();
            let got = notifications(&versions, round, &mut given);
            assert!(given.is_empty());
            assert_eq!(got, naive(&versions, round, &changes), "{changes:?}");
        }
    }

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
