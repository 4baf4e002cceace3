//! The COST baseline's derived state (docs/spec.md §5) at the latest processed time:
//! per player the current position and its zones, the latest reading per
//! sensor, the live solves, the claims, the rewards whose conditions hold and
//! the rewards it is eligible for; per zone the occupancy; the expiry timers
//! and the reward window boundaries still ahead. [`World::advance`] processes
//! every complete time in order and hands out each time's notifications in
//! docs/spec.md §6 order.
//!
//! Plain hash maps and a time-ordered loop: no dataflow. Superseded positions
//! and readings are dropped, expired solves are removed, and a player with
//! nothing live is forgotten, so memory follows the live players and the
//! events waiting for their time to complete.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::iter::Peekable;

use huntflow::model::event::Id;
use huntflow::model::hunt::Hunt;
use huntflow::output::order::{Notification, PlayerKind};
use rustc_hash::{FxHashMap, FxHashSet};

use super::player::{Event, Player};

/// Calls `f(item, true)` for items only in `new`, `f(item, false)` for items
/// only in `old` (both sorted).
fn diff_sorted(old: &[u32], new: &[u32], mut f: impl FnMut(u32, bool)) {
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (None, None) => return,
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(&a), Some(&b)) if a < b => {
                f(a, false);
                i += 1;
            }
            (Some(&a), None) => {
                f(a, false);
                i += 1;
            }
            (_, Some(&b)) => {
                f(b, true);
                j += 1;
            }
        }
    }
}

/// What the notifications of the time being processed are made of.
struct Effects<'h> {
    hunt: &'h Hunt,
    /// Rewards naming each zone, clue and sensor.
    zone_rewards: Vec<Vec<u32>>,
    clue_rewards: Vec<Vec<u32>>,
    sensor_rewards: Vec<Vec<u32>>,
    /// For each reward with an active window, the players in its `met`.
    waiting: Vec<FxHashSet<Id>>,
    occupancy: Vec<i64>,
    /// Zones whose count changed at this time, with the count before it.
    occupancy_before: BTreeMap<u32, i64>,
    out: Vec<Notification>,
    zones: Vec<u32>,
    rewards: Vec<u32>,
}

impl Effects<'_> {
    fn note(&mut self, player: &Id, priority: u8, kind: PlayerKind, item: u32) {
        let item = if kind.is_zone() {
            &self.hunt.zones[item as usize].id
        } else {
            &self.hunt.rewards[item as usize].id
        };
        self.out.push(Notification::Player {
            rank_priority: Reverse(priority),
            player: player.clone(),
            kind,
            item: item.as_str().into(),
        });
    }

    /// Recomputes the presence and eligibility of `p` at `t` and notes what changed.
    fn settle(&mut self, t: u64, id: &Id, p: &mut Player) {
        let hunt = self.hunt;
        let mut zones = std::mem::take(&mut self.zones);
        let zones_changed = match &p.position {
            Some(pos) if p.moved => {
                hunt.zones_at(pos.lat, pos.lon, &mut zones);
                zones != p.presence
            }
            Some(_) => false,
            None => {
                zones.clear();
                !p.presence.is_empty()
            }
        };
        p.moved = false;
        if zones_changed {
            diff_sorted(&p.presence, &zones, |z, entered| {
                let before = self.occupancy[z as usize];
                self.occupancy_before.entry(z).or_insert(before);
                self.occupancy[z as usize] += if entered { 1 } else { -1 };
                let kind = if entered {
                    PlayerKind::Enter
                } else {
                    PlayerKind::Exit
                };
                self.note(id, hunt.zones[z as usize].priority, kind, z);
            });
            std::mem::swap(&mut p.presence, &mut zones);
        }
        self.zones = zones;

        // Only rewards naming one of the player's live facts can be met.
        let mut met = std::mem::take(&mut self.rewards);
        met.clear();
        for &z in &p.presence {
            met.extend(&self.zone_rewards[z as usize]);
        }
        for &(c, _) in &p.solves {
            met.extend(&self.clue_rewards[c as usize]);
        }
        for r in &p.readings {
            met.extend(&self.sensor_rewards[r.sensor as usize]);
        }
        met.sort_unstable();
        met.dedup();
        met.retain(|&r| p.meets(hunt, r) && !p.claims.contains(&r));
        if met != p.met {
            diff_sorted(&p.met, &met, |r, joined| {
                if hunt.rewards[r as usize].active.is_some() {
                    if joined {
                        self.waiting[r as usize].insert(id.clone());
                    } else {
                        self.waiting[r as usize].remove(id);
                    }
                }
            });
            std::mem::swap(&mut p.met, &mut met);
        }
        met.clear();
        met.extend(p.met.iter().copied().filter(|&r| {
            hunt.rewards[r as usize]
                .active
                .is_none_or(|w| w.contains(t))
        }));
        if met != p.eligible {
            diff_sorted(&p.eligible, &met, |r, now| {
                let kind = if now {
                    PlayerKind::Eligible
                } else {
                    PlayerKind::Ineligible
                };
                self.note(id, hunt.rewards[r as usize].priority, kind, r);
            });
            std::mem::swap(&mut p.eligible, &mut met);
        }
        self.rewards = met;
    }
}

/// Settles `p` at `t` (after its expiries and events), queues its next
/// expiry, and returns whether nothing about it is live any more.
fn settle(
    fx: &mut Effects,
    timers: &mut BinaryHeap<Reverse<(u64, Id)>>,
    t: u64,
    id: &Id,
    p: &mut Player,
) -> bool {
    fx.settle(t, id, p);
    // One queued timer per player, at or before its next expiry: a timer
    // that turns out early just settles the player again, which changes
    // nothing, and queues the next one.
    if p.timer.is_some_and(|at| at <= t) {
        p.timer = None;
    }
    if let Some(next) = p.next_expiry() {
        if p.timer.is_none_or(|at| next < at) {
            p.timer = Some(next);
            timers.push(Reverse((next, id.clone())));
        }
    }
    p.is_empty()
}

/// The whole derived state, the events waiting for their time to complete,
/// and the times at which something is due.
pub struct World<'h> {
    fx: Effects<'h>,
    players: FxHashMap<Id, Player>,
    /// Accepted events whose time is not complete yet.
    pending: Vec<Event>,
    /// (time, player) expiry timers; an entry is live when it matches the player's `timer`.
    timers: BinaryHeap<Reverse<(u64, Id)>>,
    /// Window boundaries (`from`, `until`) and their reward, by time.
    boundaries: Vec<(u64, u32)>,
    next_boundary: usize,
}

impl<'h> World<'h> {
    pub fn new(hunt: &'h Hunt) -> Self {
        let mut zone_rewards = vec![Vec::new(); hunt.zones.len()];
        let mut clue_rewards = vec![Vec::new(); hunt.clues.len()];
        let mut sensor_rewards = vec![Vec::new(); hunt.sensors.len()];
        let mut boundaries = Vec::new();
        for (r, reward) in hunt.rewards.iter().enumerate() {
            let r = r as u32;
            if let Some(z) = reward.zone {
                zone_rewards[z as usize].push(r);
            }
            for &c in &reward.requires {
                clue_rewards[c as usize].push(r);
            }
            if let Some(cond) = &reward.sensor {
                sensor_rewards[cond.sensor as usize].push(r);
            }
            if let Some(w) = &reward.active {
                boundaries.extend(w.from.iter().chain(&w.until).map(|&at| (at, r)));
            }
        }
        boundaries.sort_unstable();
        World {
            fx: Effects {
                hunt,
                zone_rewards,
                clue_rewards,
                sensor_rewards,
                waiting: vec![FxHashSet::default(); hunt.rewards.len()],
                occupancy: vec![0; hunt.zones.len()],
                occupancy_before: BTreeMap::new(),
                out: Vec::new(),
                zones: Vec::new(),
                rewards: Vec::new(),
            },
            players: FxHashMap::default(),
            pending: Vec::new(),
            timers: BinaryHeap::new(),
            boundaries,
            next_boundary: 0,
        }
    }

    /// Buffers an accepted event until its time is complete.
    pub fn push(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// Events buffered, waiting for their time to complete.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Processes every time below `frontier` (every time at all when `None`,
    /// the input being closed), calling `emit(t, notifications)` for each
    /// time that has any.
    pub fn advance(&mut self, frontier: Option<u64>, mut emit: impl FnMut(u64, &[Notification])) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by(|a, b| (a.ts, &a.player).cmp(&(b.ts, &b.player)));
        let complete = match frontier {
            Some(f) => pending.partition_point(|e| e.ts < f),
            None => pending.len(),
        };
        let mut ready = pending.drain(..complete).peekable();
        loop {
            let e = ready.peek().map(|e| e.ts);
            let x = self.timers.peek().map(|Reverse((t, _))| *t);
            let w = self.boundaries.get(self.next_boundary).map(|&(t, _)| t);
            let Some(t) = e.into_iter().chain(x).chain(w).min() else {
                break;
            };
            if frontier.is_some_and(|f| t >= f) {
                break;
            }
            self.process(t, &mut ready);
            if !self.fx.out.is_empty() {
                emit(t, &self.fx.out);
            }
        }
        drop(ready);
        self.pending = pending;
    }

    /// Processes time `t`: expiries due, the events at `t` (at the front of
    /// `ready`, sorted by player), window boundaries at `t`; leaves `t`'s
    /// notifications, in docs/spec.md §6 order, in `fx.out`.
    fn process(&mut self, t: u64, ready: &mut Peekable<impl Iterator<Item = Event>>) {
        self.fx.out.clear();
        self.fx.occupancy_before.clear();

        while let Some(first) = ready.next_if(|e| e.ts == t) {
            let id = first.player.clone();
            let p = self.players.entry(id.clone()).or_default();
            p.expire(t);
            p.apply(first);
            while let Some(next) = ready.next_if(|e| e.ts == t && e.player == id) {
                p.apply(next);
            }
            if settle(&mut self.fx, &mut self.timers, t, &id, p) {
                self.players.remove(&id);
            }
        }

        // Expiries of players without events at `t` (those were settled
        // above and queued for a later time).
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at != t {
                break;
            }
            let Reverse((_, id)) = self.timers.pop().expect("peeked");
            let Some(p) = self.players.get_mut(&id) else {
                continue;
            };
            if p.timer == Some(t) {
                p.expire(t);
                if settle(&mut self.fx, &mut self.timers, t, &id, p) {
                    self.players.remove(&id);
                }
            }
        }

        // A window opening or closing changes eligibility for every player
        // whose conditions hold; those settled above already agree.
        let hunt = self.fx.hunt;
        while let Some(&(at, r)) = self.boundaries.get(self.next_boundary) {
            if at != t {
                break;
            }
            self.next_boundary += 1;
            let reward = &hunt.rewards[r as usize];
            let open = reward.active.is_some_and(|w| w.contains(t));
            for id in &self.fx.waiting[r as usize] {
                let p = self.players.get_mut(id).expect("waiting players are live");
                let at = p.eligible.binary_search(&r);
                match (at, open) {
                    (Err(i), true) => p.eligible.insert(i, r),
                    (Ok(i), false) => {
                        p.eligible.remove(i);
                    }
                    _ => continue,
                }
                let kind = if open {
                    PlayerKind::Eligible
                } else {
                    PlayerKind::Ineligible
                };
                self.fx.out.push(Notification::Player {
                    rank_priority: Reverse(reward.priority),
                    player: id.clone(),
                    kind,
                    item: reward.id.as_str().into(),
                });
            }
        }

        let fx = &mut self.fx;
        for (&z, &before) in &fx.occupancy_before {
            let count = fx.occupancy[z as usize];
            if count != before {
                let zone = fx.hunt.zones[z as usize].id.as_str().into();
                fx.out.push(Notification::Occupancy { zone, count });
            }
        }
        fx.out.sort_unstable();
    }
}
