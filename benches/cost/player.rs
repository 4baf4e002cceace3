//! One player's facts in the COST baseline: the current position, the latest
//! reading per sensor, the live solves and the claims, with the latest-wins
//! and expiry rules of docs/spec.md §5, and what was last derived from them
//! (presence, rewards met, eligibility).

use std::cmp::Ordering;

use huntflow::model::event::{self, Id};
use huntflow::model::hunt::Hunt;

/// An accepted event with the hunt's items resolved to their numbers and
/// its expiry set (the baseline runs one hunt, in effect throughout).
pub struct Event {
    pub ts: u64,
    pub player: Id,
    pub fact: Fact,
}

pub enum Fact {
    Position {
        id: Id,
        lat: f64,
        lon: f64,
        expires: u64,
    },
    Reading {
        id: Id,
        sensor: u32,
        value: f64,
        expires: u64,
    },
    Solve {
        clue: u32,
        expires: Option<u64>,
    },
    Claim {
        reward: u32,
    },
}

/// `e` under `hunt`, or `None` when it names a clue, reward or sensor the
/// hunt does not know (no effect).
pub fn resolve(e: event::Event, hunt: &Hunt) -> Option<Event> {
    let ts = e.ts;
    let expires = |ttl: Option<u64>, default: u64| ts.saturating_add(ttl.unwrap_or(default));
    let fact = match e.fact {
        event::Fact::Position { id, lat, lon, ttl } => Fact::Position {
            id,
            lat,
            lon,
            expires: expires(ttl, hunt.position_ttl_ms),
        },
        event::Fact::Reading {
            id,
            sensor,
            value,
            ttl,
        } => Fact::Reading {
            id,
            sensor: hunt.sensor_number(&sensor)?,
            value,
            expires: expires(ttl, hunt.sensor_ttl_ms),
        },
        event::Fact::Solve { clue, ttl } => Fact::Solve {
            clue: hunt.clue_number(&clue)?,
            expires: ttl.map(|t| ts.saturating_add(t)),
        },
        event::Fact::Claim { reward } => Fact::Claim {
            reward: hunt.reward_number(&reward)?,
        },
    };
    Some(Event {
        ts,
        player: e.player,
        fact,
    })
}

/// When and what a position or reading was: the latest one wins.
pub struct Stamp {
    pub ts: u64,
    pub id: Id,
    pub expires: u64,
}

/// Whether `a` (with values `av`) supersedes `b`: greater `(ts, id)`; events
/// sharing both (possible only across partitions) are ordered by their values
/// and then their expiry, so the winner never depends on arrival order.
fn supersedes(a: &Stamp, av: &[f64], b: &Stamp, bv: &[f64]) -> bool {
    let by_values = || {
        av.iter()
            .zip(bv)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    (a.ts, a.id.as_str())
        .cmp(&(b.ts, b.id.as_str()))
        .then_with(by_values)
        .then(a.expires.cmp(&b.expires))
        == Ordering::Greater
}

pub struct Position {
    pub at: Stamp,
    pub lat: f64,
    pub lon: f64,
}

pub struct Reading {
    pub sensor: u32,
    pub at: Stamp,
    pub value: f64,
}

#[derive(Default)]
pub struct Player {
    pub position: Option<Position>,
    /// The position changed since `presence` was computed.
    pub moved: bool,
    pub readings: Vec<Reading>,
    /// Live solves: clue and expiry (`None`: never).
    pub solves: Vec<(u32, Option<u64>)>,
    pub claims: Vec<u32>,
    /// presence(p, z): the zones of the current position, sorted.
    pub presence: Vec<u32>,
    /// Rewards whose player conditions hold and that are not claimed, sorted.
    pub met: Vec<u32>,
    /// eligible(p, r): `met` within each reward's active window, sorted.
    pub eligible: Vec<u32>,
    /// The expiry this player is queued for.
    pub timer: Option<u64>,
}

impl Player {
    pub fn expire(&mut self, t: u64) {
        if self.position.as_ref().is_some_and(|p| p.at.expires <= t) {
            self.position = None;
        }
        self.readings.retain(|r| r.at.expires > t);
        self.solves.retain(|&(_, e)| e.is_none_or(|e| e > t));
    }

    pub fn apply(&mut self, event: Event) {
        let ts = event.ts;
        match event.fact {
            Fact::Position {
                id,
                lat,
                lon,
                expires,
            } => {
                let at = Stamp { ts, id, expires };
                let newer = self
                    .position
                    .as_ref()
                    .is_none_or(|p| supersedes(&at, &[lat, lon], &p.at, &[p.lat, p.lon]));
                if newer {
                    self.position = Some(Position { at, lat, lon });
                    self.moved = true;
                }
            }
            Fact::Reading {
                id,
                sensor,
                value,
                expires,
            } => {
                let at = Stamp { ts, id, expires };
                match self.readings.iter_mut().find(|r| r.sensor == sensor) {
                    Some(r) if supersedes(&at, &[value], &r.at, &[r.value]) => {
                        r.at = at;
                        r.value = value;
                    }
                    Some(_) => {}
                    None => self.readings.push(Reading { sensor, at, value }),
                }
            }
            Fact::Solve { clue, expires } => {
                match self.solves.iter_mut().find(|(c, _)| *c == clue) {
                    // The later expiry wins; no expiry at all beats any.
                    Some((_, e)) => *e = e.zip(expires).map(|(a, b)| a.max(b)),
                    None => self.solves.push((clue, expires)),
                }
            }
            Fact::Claim { reward } => {
                if !self.claims.contains(&reward) {
                    self.claims.push(reward);
                }
            }
        }
    }

    pub fn next_expiry(&self) -> Option<u64> {
        let p = self.position.iter().map(|p| p.at.expires);
        let r = self.readings.iter().map(|r| r.at.expires);
        let s = self.solves.iter().filter_map(|&(_, e)| e);
        p.chain(r).chain(s).min()
    }

    /// Whether every player condition of `reward` holds.
    pub fn meets(&self, hunt: &Hunt, reward: u32) -> bool {
        let r = &hunt.rewards[reward as usize];
        r.zone
            .is_none_or(|z| self.presence.binary_search(&z).is_ok())
            && r.requires
                .iter()
                .all(|c| self.solves.iter().any(|(s, _)| s == c))
            && r.sensor.is_none_or(|cond| {
                self.readings
                    .iter()
                    .find(|x| x.sensor == cond.sensor)
                    .is_some_and(|x| cond.holds(x.value))
            })
    }

    pub fn is_empty(&self) -> bool {
        self.position.is_none()
            && self.readings.is_empty()
            && self.solves.is_empty()
            && self.claims.is_empty()
            && self.presence.is_empty()
            && self.met.is_empty()
            && self.eligible.is_empty()
    }
}
