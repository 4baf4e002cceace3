//! One player's state as the facts operator keeps it (latest position,
//! latest reading per sensor, live solves, claims, the facts last
//! emitted), how events change it under the hunt version in effect at their
//! time and how it expires, its facts under a version, how a snapshot saves
//! it (items by id), and the view of it the analysts' API shows.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::facts::FactKind;
use crate::model::event::{Event, Fact, Id};
use crate::model::versions::{Dictionary, Version};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Latest {
    pub(crate) ts: u64,
    pub(crate) id: Id,
    pub(crate) expires: u64,
}

impl Latest {
    /// Orders by `(ts, id)` and then, for events that share both (possible
    /// only across partitions), by content, so the winner never depends on
    /// arrival order.
    fn cmp_with(&self, a: &[f64], other: &Latest, b: &[f64]) -> Ordering {
        (self.ts, self.id.as_str())
            .cmp(&(other.ts, other.id.as_str()))
            .then_with(|| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| x.total_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then(self.expires.cmp(&other.expires))
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Position {
    pub(crate) at: Latest,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    /// The `seq` of the version under which the presence facts last
    /// emitted are the zones at `(lat, lon)`: until the position or the
    /// version changes, they need not be looked up again.
    pub(crate) zones_of: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Reading {
    pub(crate) sensor: u32,
    pub(crate) at: Latest,
    pub(crate) value: f64,
}

/// One player's state. What most players have (a position, the facts
/// emitted, a timer) is inline; what few have (readings, solves, claims, the
/// position's recent changes while the API serves) is boxed apart, so that
/// a million players cost as little as their positions need: 136 bytes
/// here, plus the fact list's heap block (8 bytes a fact).
#[derive(Clone, Debug, Default)]
pub(crate) struct PlayerState {
    pub(crate) position: Option<Position>,
    /// Readings, solves, claims and moves, when the player has any.
    rare: Option<Box<Rare>>,
    /// The facts as last emitted, sorted.
    pub(crate) emitted: Vec<(FactKind, u32)>,
    /// The earliest timer queued for this player, if any.
    pub(crate) timer: Option<u64>,
    /// The time of the player's latest settle: the state is its state at
    /// every later time until the next settle.
    pub(crate) settled: u64,
    /// The time `position` last changed (appeared, moved or expired); 0:
    /// never.
    pub(crate) moved: u64,
}

/// The parts of a player's state few players have.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// The latest reading of each sensor (a dictionary number).
    readings: Vec<Reading>,
    /// Live solves: clue (a dictionary number) and expiry (`None`: never).
    solves: Vec<(u32, Option<u64>)>,
    /// Rewards claimed (dictionary numbers).
    claims: Vec<u32>,
    /// While the API serves: what `position` was before each change at a
    /// time not final on every worker yet, oldest first
    /// ([`super::player_store`]).
    moves: Option<Vec<Move>>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.solves.is_empty()
            && self.claims.is_empty()
            && self.moves.is_none()
    }
}

/// Buffers a settle reuses: the zones at a position, in dictionary and in
/// the hunt's own numbers.
#[derive(Default)]
pub(crate) struct Scratch {
    zones: Vec<u32>,
    local: Vec<u32>,
}

/// Pushes onto a list most players keep one or two entries in: the first
/// push makes room for one (a vector's own first growth makes room for
/// four), later ones grow it as usual.
fn push_small<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

/// A position as the API lists it: `(lat, lon, ts)`.
pub type Spot = (f64, f64, u64);

/// A change of a player's position at `at`: what it was before, and since
/// when.
#[derive(Clone, Debug)]
pub(crate) struct Move {
    pub(crate) at: u64,
    pub(crate) before: Option<Spot>,
    pub(crate) before_moved: u64,
}

/// What an event means under the version in effect at its `ts`: its names
/// resolved, its expiry set; `None` when it has no effect under it.
fn interpret(event: Event, v: &Version) -> Option<Interpreted> {
    let ts = event.ts;
    let expires = |ttl: Option<u64>, default: u64| ts.saturating_add(ttl.unwrap_or(default));
    Some(match event.fact {
        Fact::Position { id, lat, lon, ttl } => Interpreted::Position {
            at: Latest {
                ts,
                id,
                expires: expires(ttl, v.hunt.position_ttl_ms),
            },
            lat,
            lon,
        },
        Fact::Reading {
            id,
            sensor,
            value,
            ttl,
        } => Interpreted::Reading {
            sensor: v.sensor(&sensor)?,
            at: Latest {
                ts,
                id,
                expires: expires(ttl, v.hunt.sensor_ttl_ms),
            },
            value,
        },
        Fact::Solve { clue, ttl } => Interpreted::Solve {
            clue: v.clue(&clue)?,
            expires: ttl.map(|t| ts.saturating_add(t)),
        },
        Fact::Claim { reward } => Interpreted::Claim {
            reward: v.reward(&reward)?,
        },
    })
}

/// An event as it applies to a player's state.
pub(crate) enum Interpreted {
    Position { at: Latest, lat: f64, lon: f64 },
    Reading { sensor: u32, at: Latest, value: f64 },
    Solve { clue: u32, expires: Option<u64> },
    Claim { reward: u32 },
}

impl Interpreted {
    /// `event` under version `v`, or `None` when it has no effect there.
    pub(crate) fn of(event: Event, v: &Version) -> Option<Self> {
        interpret(event, v)
    }
}

impl PlayerState {
    /// The latest reading of each sensor (a dictionary number).
    pub(crate) fn readings(&self) -> &[Reading] {
        self.rare.as_ref().map_or(&[], |r| &r.readings)
    }

    /// Live solves: clue (a dictionary number) and expiry (`None`: never).
    pub(crate) fn solves(&self) -> &[(u32, Option<u64>)] {
        self.rare.as_ref().map_or(&[], |r| &r.solves)
    }

    /// Rewards claimed (dictionary numbers).
    pub(crate) fn claims(&self) -> &[u32] {
        self.rare.as_ref().map_or(&[], |r| &r.claims)
    }

    /// The position's recent changes, while the API serves.
    pub(crate) fn moves(&self) -> Option<&[Move]> {
        self.rare.as_ref().and_then(|r| r.moves.as_deref())
    }

    /// The position's recent changes, to set or trim.
    pub(crate) fn moves_mut(&mut self) -> &mut Option<Vec<Move>> {
        &mut self.rare_mut().moves
    }

    /// Takes the position's recent changes out.
    pub(crate) fn take_moves(&mut self) -> Option<Vec<Move>> {
        self.rare.as_mut().and_then(|r| r.moves.take())
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// `position` changes at `t`: the first change at `t` keeps what it was.
    fn moving(&mut self, t: u64) {
        if self
            .moves()
            .is_some_and(|m| m.last().is_none_or(|m| m.at != t))
        {
            let m = Move {
                at: t,
                before: self.spot(),
                before_moved: self.moved,
            };
            self.moves_mut().as_mut().expect("checked").push(m);
        }
        self.moved = t;
    }

    /// The current position, as the API lists it.
    pub(crate) fn spot(&self) -> Option<Spot> {
        self.position.as_ref().map(|p| (p.lat, p.lon, p.at.ts))
    }

    pub(crate) fn expire(&mut self, t: u64) {
        if self.position.as_ref().is_some_and(|p| p.at.expires <= t) {
            self.moving(t);
            self.position = None;
        }
        if let Some(rare) = self.rare.as_mut() {
            rare.readings.retain(|r| r.at.expires > t);
            rare.solves.retain(|(_, e)| e.is_none_or(|e| e > t));
            if rare.is_empty() {
                self.rare = None;
            }
        }
    }

    pub(crate) fn apply(&mut self, event: Interpreted) {
        match event {
            Interpreted::Position { at, lat, lon } => {
                if self.position.as_ref().is_none_or(|p| {
                    at.cmp_with(&[lat, lon], &p.at, &[p.lat, p.lon]) == Ordering::Greater
                }) {
                    self.moving(at.ts);
                    self.position = Some(Position {
                        at,
                        lat,
                        lon,
                        zones_of: None,
                    });
                }
            }
            Interpreted::Reading { sensor, at, value } => {
                let readings = &mut self.rare_mut().readings;
                match readings.iter_mut().find(|r| r.sensor == sensor) {
                    Some(r) => {
                        if at.cmp_with(&[value], &r.at, &[r.value]) == Ordering::Greater {
                            r.at = at;
                            r.value = value;
                        }
                    }
                    None => push_small(readings, Reading { sensor, at, value }),
                }
            }
            Interpreted::Solve { clue, expires } => {
                let solves = &mut self.rare_mut().solves;
                match solves.iter_mut().find(|(c, _)| *c == clue) {
                    Some((_, e)) => {
                        *e = match (*e, expires) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        }
                    }
                    None => push_small(solves, (clue, expires)),
                }
            }
            Interpreted::Claim { reward } => {
                let claims = &mut self.rare_mut().claims;
                if !claims.contains(&reward) {
                    push_small(claims, reward);
                }
            }
        }
    }

    /// The facts that hold now under version `v`, sorted: the zones the
    /// player is in, and the rewards whose player conditions hold and which
    /// the player has not claimed. `scratch` holds the zones meanwhile; the
    /// caller makes `out` the facts emitted.
    pub(crate) fn facts(
        &mut self,
        v: &Version,
        scratch: &mut Scratch,
        out: &mut Vec<(FactKind, u32)>,
    ) {
        out.clear();
        let zones = &mut scratch.zones;
        zones.clear();
        if let Some(p) = self.position.as_mut() {
            if p.zones_of == Some(v.seq) {
                let presence = self
                    .emitted
                    .iter()
                    .take_while(|(k, _)| *k == FactKind::Presence);
                zones.extend(presence.map(|&(_, z)| z));
            } else {
                v.zones_at(p.lat, p.lon, &mut scratch.local, zones);
                p.zones_of = Some(v.seq);
            }
        }
        let zones: &[u32] = zones;
        out.extend(zones.iter().map(|&z| (FactKind::Presence, z)));
        let rare = self.rare.as_deref();
        let readings = rare.map_or(&[][..], |r| &r.readings);
        let solves = rare.map_or(&[][..], |r| &r.solves);
        let claims = rare.map_or(&[][..], |r| &r.claims);
        let in_zone = |z: u32| zones.binary_search(&z).is_ok();
        let solved = |c: u32| solves.iter().any(|&(s, _)| s == c);
        let reading = |s: u32| readings.iter().find(|r| r.sensor == s).map(|r| r.value);
        let candidates = zones
            .iter()
            .flat_map(|&z| v.rewards_in(z).iter())
            .chain(v.zoneless.iter());
        for &i in candidates {
            let rule = &v.rules[i as usize];
            if !claims.contains(&rule.reward) && rule.met(in_zone, solved, reading) {
                out.push((FactKind::Met, rule.reward));
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    pub(crate) fn next_expiry(&self) -> Option<u64> {
        let p = self.position.iter().map(|p| p.at.expires);
        let r = self.readings().iter().map(|r| r.at.expires);
        let s = self.solves().iter().filter_map(|&(_, e)| e);
        p.chain(r).chain(s).min()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position.is_none()
            && self.readings().is_empty()
            && self.solves().is_empty()
            && self.claims().is_empty()
            && self.emitted.is_empty()
    }
}

/// One player's state as a snapshot saves it: hunt items by id.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedState {
    position: Option<SavedPosition>,
    readings: Vec<(Id, Latest, f64)>,
    solves: Vec<(Id, Option<u64>)>,
    claims: Vec<Id>,
    emitted: Vec<(FactKind, Id)>,
    timer: Option<u64>,
    settled: u64,
    #[serde(default)]
    moved: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedPosition {
    at: Latest,
    lat: f64,
    lon: f64,
}

impl PlayerState {
    /// This state with its items named by id.
    pub(crate) fn save(&self, dict: &Dictionary) -> SavedState {
        let fact_id = |(kind, n): &(FactKind, u32)| {
            let names = match kind {
                FactKind::Presence => &dict.zones,
                FactKind::Met => &dict.rewards,
            };
            (*kind, names.id(*n).clone())
        };
        SavedState {
            position: self.position.as_ref().map(|p| SavedPosition {
                at: p.at.clone(),
                lat: p.lat,
                lon: p.lon,
            }),
            readings: self
                .readings()
                .iter()
                .map(|r| (dict.sensors.id(r.sensor).clone(), r.at.clone(), r.value))
                .collect(),
            solves: self
                .solves()
                .iter()
                .map(|&(c, e)| (dict.clues.id(c).clone(), e))
                .collect(),
            claims: self
                .claims()
                .iter()
                .map(|&r| dict.rewards.id(r).clone())
                .collect(),
            emitted: self.emitted.iter().map(fact_id).collect(),
            timer: self.timer,
            settled: self.settled,
            moved: self.moved,
        }
    }
}

impl SavedState {
    /// The state again, its items numbered by `dict`; an error names an id
    /// that no version has.
    pub(crate) fn restore(self, dict: &Dictionary) -> Result<PlayerState, String> {
        let number = |names: &crate::model::versions::Names, id: &Id, what: &str| {
            names.number(id).ok_or_else(|| {
                format!("the snapshot names {what} {id:?}, which no hunt version has")
            })
        };
        let mut emitted = Vec::with_capacity(self.emitted.len());
        for (kind, id) in &self.emitted {
            let n = match kind {
                FactKind::Presence => number(&dict.zones, id, "zone")?,
                FactKind::Met => number(&dict.rewards, id, "reward")?,
            };
            emitted.push((*kind, n));
        }
        emitted.sort_unstable();
        let mut readings = Vec::with_capacity(self.readings.len());
        for (s, at, value) in self.readings {
            readings.push(Reading {
                sensor: number(&dict.sensors, &s, "sensor")?,
                at,
                value,
            });
        }
        let mut solves = Vec::with_capacity(self.solves.len());
        for (c, e) in &self.solves {
            solves.push((number(&dict.clues, c, "clue")?, *e));
        }
        let mut claims = Vec::with_capacity(self.claims.len());
        for r in &self.claims {
            claims.push(number(&dict.rewards, r, "reward")?);
        }
        Ok(PlayerState {
            position: self.position.map(|p| Position {
                at: p.at,
                lat: p.lat,
                lon: p.lon,
                zones_of: None,
            }),
            rare: Some(Box::new(Rare {
                readings,
                solves,
                claims,
                moves: None,
            }))
            .filter(|r| !r.is_empty()),
            emitted,
            timer: self.timer,
            settled: self.settled,
            moved: self.moved,
        })
    }
}

/// A player's current state as the analysts' API shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlayerView {
    pub position: Option<PositionView>,
    pub readings: Vec<ReadingView>,
    /// Live solves: clue number and expiry (`None`: never).
    pub solves: Vec<(u32, Option<u64>)>,
    /// Rewards claimed.
    pub claims: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    pub id: Id,
    pub ts: u64,
    pub lat: f64,
    pub lon: f64,
    pub expires: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadingView {
    /// Sensor number.
    pub sensor: u32,
    pub id: Id,
    pub ts: u64,
    pub value: f64,
    pub expires: u64,
}

impl PlayerState {
    /// Sets `view` (reusing its buffers) to this state; false when nothing
    /// about the player is live.
    pub(crate) fn fill_view(&self, view: &mut PlayerView) -> bool {
        view.solves.clear();
        view.solves.extend_from_slice(self.solves());
        view.solves.sort_unstable();
        view.claims.clear();
        view.claims.extend_from_slice(self.claims());
        view.claims.sort_unstable();
        view.readings.clear();
        view.readings
            .extend(self.readings().iter().map(|r| ReadingView {
                sensor: r.sensor,
                id: r.at.id.clone(),
                ts: r.at.ts,
                value: r.value,
                expires: r.at.expires,
            }));
        view.readings.sort_unstable_by_key(|r| r.sensor);
        view.position = self.position.as_ref().map(|p| PositionView {
            id: p.at.id.clone(),
            ts: p.at.ts,
            lat: p.lat,
            lon: p.lon,
            expires: p.at.expires,
        });
        view.position.is_some()
            || !view.readings.is_empty()
            || !view.solves.is_empty()
            || !view.claims.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-player budget of docs/performance.md ("At scale").
    #[test]
    fn a_player_is_small() {
        assert!(
            std::mem::size_of::<PlayerState>() <= 136,
            "{}",
            std::mem::size_of::<PlayerState>()
        );
    }
}
