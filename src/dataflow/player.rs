//! One player's state as the facts operator keeps it (latest position,
//! latest reading per sensor, live solves, claims, the facts last
//! emitted), how events and expiry change it, and the view of it the
//! analysts' API shows.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::facts::FactKind;
use crate::event::{Event, Fact, Id};
use crate::hunt::Hunt;

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Position {
    pub(crate) at: Latest,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    /// The zones at `(lat, lon)`, computed when first needed.
    #[serde(skip)]
    pub(crate) zones: Option<Vec<u32>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reading {
    pub(crate) sensor: u32,
    pub(crate) at: Latest,
    pub(crate) value: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PlayerState {
    pub(crate) position: Option<Position>,
    pub(crate) readings: Vec<Reading>,
    /// Live solves: clue and expiry (`None`: never).
    pub(crate) solves: Vec<(u32, Option<u64>)>,
    pub(crate) claims: Vec<u32>,
    /// The facts as last emitted, sorted.
    pub(crate) emitted: Vec<(FactKind, u32)>,
    /// The earliest timer queued for this player, if any.
    pub(crate) timer: Option<u64>,
    /// The time of the player's latest settle: the state is its state at
    /// every later time until the next settle.
    #[serde(default)]
    pub(crate) settled: u64,
    /// The time `position` last changed (appeared, moved or expired); 0:
    /// never.
    #[serde(default)]
    pub(crate) moved: u64,
    /// While the API serves: what `position` was before each change at a
    /// time not final on every worker yet, oldest first
    /// ([`super::players`]).
    #[serde(skip)]
    pub(crate) moves: Option<Vec<Move>>,
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

impl PlayerState {
    /// `position` changes at `t`: the first change at `t` keeps what it was.
    fn moving(&mut self, t: u64) {
        if self
            .moves
            .as_ref()
            .is_some_and(|m| m.last().is_none_or(|m| m.at != t))
        {
            let m = Move {
                at: t,
                before: self.spot(),
                before_moved: self.moved,
            };
            self.moves.as_mut().expect("checked").push(m);
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
        self.readings.retain(|r| r.at.expires > t);
        self.solves.retain(|(_, e)| e.is_none_or(|e| e > t));
    }

    pub(crate) fn apply(&mut self, event: Event) {
        let ts = event.ts;
        match event.fact {
            Fact::Position {
                id,
                lat,
                lon,
                expires,
            } => {
                let at = Latest { ts, id, expires };
                if self.position.as_ref().is_none_or(|p| {
                    at.cmp_with(&[lat, lon], &p.at, &[p.lat, p.lon]) == Ordering::Greater
                }) {
                    self.moving(ts);
                    self.position = Some(Position {
                        at,
                        lat,
                        lon,
                        zones: None,
                    });
                }
            }
            Fact::Reading {
                id,
                sensor,
                value,
                expires,
            } => {
                let at = Latest { ts, id, expires };
                match self.readings.iter_mut().find(|r| r.sensor == sensor) {
                    Some(r) => {
                        if at.cmp_with(&[value], &r.at, &[r.value]) == Ordering::Greater {
                            r.at = at;
                            r.value = value;
                        }
                    }
                    None => self.readings.push(Reading { sensor, at, value }),
                }
            }
            Fact::Solve { clue, expires } => {
                match self.solves.iter_mut().find(|(c, _)| *c == clue) {
                    Some((_, e)) => {
                        *e = match (*e, expires) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        }
                    }
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

    /// The facts that hold now, sorted.
    pub(crate) fn facts(
        &mut self,
        hunt: &Hunt,
        conditions: &SensorRewards,
        out: &mut Vec<(FactKind, u32)>,
    ) {
        out.clear();
        if let Some(p) = self.position.as_mut() {
            let zones = p.zones.get_or_insert_with(|| {
                let mut zones = Vec::new();
                hunt.zones_at(p.lat, p.lon, &mut zones);
                zones
            });
            out.extend(zones.iter().map(|&z| (FactKind::Presence, z)));
        }
        for r in &self.readings {
            for &(reward, ref cond) in &conditions[r.sensor as usize] {
                if cond.holds(r.value) {
                    out.push((FactKind::SensorOk, reward));
                }
            }
        }
        out.extend(self.solves.iter().map(|&(c, _)| (FactKind::Solved, c)));
        out.extend(self.claims.iter().map(|&r| (FactKind::Claimed, r)));
        out.sort_unstable();
        out.dedup();
    }

    pub(crate) fn next_expiry(&self) -> Option<u64> {
        let p = self.position.iter().map(|p| p.at.expires);
        let r = self.readings.iter().map(|r| r.at.expires);
        let s = self.solves.iter().filter_map(|&(_, e)| e);
        p.chain(r).chain(s).min()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position.is_none()
            && self.readings.is_empty()
            && self.solves.is_empty()
            && self.claims.is_empty()
            && self.emitted.is_empty()
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
        view.solves.extend_from_slice(&self.solves);
        view.solves.sort_unstable();
        view.claims.clear();
        view.claims.extend_from_slice(&self.claims);
        view.claims.sort_unstable();
        view.readings.clear();
        view.readings
            .extend(self.readings.iter().map(|r| ReadingView {
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

/// For each hunt sensor, the rewards whose condition reads it.
pub(crate) type SensorRewards = Vec<Vec<(u32, crate::hunt::SensorCondition)>>;

pub(crate) fn sensor_rewards(hunt: &Hunt) -> SensorRewards {
    let mut out: SensorRewards = vec![Vec::new(); hunt.sensors.len()];
    for (r, reward) in hunt.rewards.iter().enumerate() {
        if let Some(cond) = &reward.sensor {
            out[cond.sensor as usize].push((r as u32, *cond));
        }
    }
    out
}
