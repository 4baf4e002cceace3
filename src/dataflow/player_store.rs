//! The per-player state of one worker's facts operator, kept where the
//! analysts' API can read it in place.
//!
//! Players are spread over stripes, each under its own lock. The operator
//! takes a stripe's lock for one player at a time (apply the events of a
//! time, settle), and a query for one player at a time (copy what it
//! shows), so neither waits long and nothing is copied per settle.
//!
//! A player's state after its latest settle at `t` is its state at every
//! time from `t` until its next settle. The operator handles complete times
//! only, in order, and publishes how far it got (`through`), so a query
//! answers at `max(t, through)`: a time that is complete, at which that
//! state holds exactly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

use rustc_hash::FxHashMap;

use super::facts::{player_hash, FactKind};
use super::player_state::{PlayerState, PlayerView};
use crate::model::event::Id;
use crate::model::hunt::Hunt;

const STRIPES: usize = 64;

/// One stripe, on its own cache lines: the two workers' operators write
/// different stripes without sharing a line.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(RwLock<Shard>);

/// The players of one stripe.
#[derive(Default)]
pub(crate) struct Shard {
    live: FxHashMap<Id, PlayerState>,
    /// Players forgotten (nothing live any more) and when, kept for the API
    /// so that a player it knew stays known.
    gone: FxHashMap<Id, u64>,
}

impl Shard {
    /// `player`'s state, created empty if it has none.
    pub(crate) fn entry(&mut self, player: &Id, keep_gone: bool) -> &mut PlayerState {
        if !self.live.contains_key(player.as_str()) {
            if keep_gone {
                self.gone.remove(player.as_str());
            }
            self.live.insert(player.clone(), PlayerState::default());
        }
        self.live.get_mut(player.as_str()).expect("just inserted")
    }

    /// Puts back a player saved in a snapshot.
    pub(crate) fn restore(&mut self, player: Id, state: PlayerState) {
        self.gone.remove(player.as_str());
        self.live.insert(player, state);
    }

    pub(crate) fn get_mut(&mut self, player: &str) -> Option<&mut PlayerState> {
        self.live.get_mut(player)
    }

    /// Drops `player`, which has nothing live since time `t`.
    pub(crate) fn forget(&mut self, player: &Id, t: u64, keep_gone: bool) {
        self.live.remove(player.as_str());
        if keep_gone {
            self.gone.insert(player.clone(), t);
        }
    }
}

/// One worker's players.
pub struct PlayerStore {
    stripes: Box<[Stripe]>,
    /// `t + 1`: every time up to `t` is final here (the latest time
    /// processed, or below the frontier); 0: none yet. Once the input
    /// ended, nothing changes after it.
    through: AtomicU64,
    /// Remember forgotten players (for the API).
    pub(crate) keep_gone: bool,
}

impl PlayerStore {
    pub fn new(keep_gone: bool) -> Self {
        PlayerStore {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            through: AtomicU64::new(0),
            keep_gone,
        }
    }

    fn stripe(&self, player: &str) -> &RwLock<Shard> {
        // The high bits: workers are chosen by the hash modulo their count.
        &self.stripes[(player_hash(player) >> 40) as usize % STRIPES].0
    }

    /// The stripe holding `player`, locked for the operator.
    pub(crate) fn lock(&self, player: &str) -> RwLockWriteGuard<'_, Shard> {
        self.stripe(player).write().expect("players lock")
    }

    /// Every time up to `t` is final.
    pub(crate) fn through(&self, t: u64) {
        self.through
            .fetch_max(t.saturating_add(1), Ordering::Release);
    }

    /// Every player's state, sorted by player.
    pub(crate) fn each_sorted(
        &self,
        mut f: impl FnMut(&Id, &PlayerState) -> std::io::Result<()>,
    ) -> std::io::Result<usize> {
        let guards: Vec<_> = self
            .stripes
            .iter()
            .map(|s| s.0.read().expect("players lock"))
            .collect();
        let mut all: Vec<(&Id, &PlayerState)> = guards.iter().flat_map(|g| g.live.iter()).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (p, s) in &all {
            f(p, s)?;
        }
        Ok(all.len())
    }

    /// Players with live state.
    pub fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.0.read().expect("players lock").live.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Players with live state, and of those with a position.
    pub fn sizes(&self) -> (usize, usize) {
        let (mut live, mut positions) = (0, 0);
        for s in self.stripes.iter() {
            let shard = s.0.read().expect("players lock");
            live += shard.live.len();
            positions += shard.live.values().filter(|p| p.position.is_some()).count();
        }
        (live, positions)
    }

    /// What the API shows of `player`, if this worker knows it.
    pub fn answer(&self, player: &str) -> Option<PlayerAnswer> {
        let shard = self.stripe(player).read().expect("players lock");
        // Read under the lock: `through` never trails the state read.
        let through = self.through.load(Ordering::Acquire);
        let at = |settled: u64| settled.max(through.saturating_sub(1));
        if let Some(state) = shard.live.get(player) {
            let mut view = PlayerView::default();
            let live = state.fill_view(&mut view);
            return Some(PlayerAnswer {
                as_of: at(state.settled),
                view: live.then_some(view),
                facts: state.emitted.clone(),
            });
        }
        shard.gone.get(player).map(|&t| PlayerAnswer {
            as_of: at(t),
            view: None,
            facts: Vec::new(),
        })
    }
}

/// One player at one complete time, `as_of`.
#[derive(Debug)]
pub struct PlayerAnswer {
    pub as_of: u64,
    /// `None`: nothing about the player is live.
    pub view: Option<PlayerView>,
    /// The player's facts, sorted.
    pub facts: Vec<(FactKind, u32)>,
}

impl PlayerAnswer {
    pub fn has(&self, kind: FactKind, n: u32) -> bool {
        self.facts.binary_search(&(kind, n)).is_ok()
    }

    /// The zones the player is in, in hunt order.
    pub fn zones(&self) -> impl Iterator<Item = u32> + '_ {
        self.facts
            .iter()
            .filter(|(k, _)| *k == FactKind::Presence)
            .map(|&(_, z)| z)
    }

    /// Whether the player is eligible for reward `r` at `as_of`: the rule
    /// the eligibility dataflow maintains, read off the player's facts.
    pub fn eligible(&self, hunt: &Hunt, r: u32) -> bool {
        let reward = &hunt.rewards[r as usize];
        reward.zone.is_none_or(|z| self.has(FactKind::Presence, z))
            && reward
                .requires
                .iter()
                .all(|&c| self.has(FactKind::Solved, c))
            && (reward.sensor.is_none() || self.has(FactKind::SensorOk, r))
            && reward
                .active
                .as_ref()
                .is_none_or(|w| w.contains(self.as_of))
            && !self.has(FactKind::Claimed, r)
    }
}
