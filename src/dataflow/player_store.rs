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
//!
//! Positions are listed at one time for all players, the least time every
//! worker has got through ([`Peers`]). A worker ahead of it may have moved
//! some of its players since: while the API serves, each player keeps what
//! its position was before each change at a time that is not final on every
//! worker yet (a short list, trimmed as the workers go on), so that its
//! position at that time can be read back. Each player also keeps the time
//! its position last changed, which tells who changed since a given time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::facts::{player_hash, FactKind};
use super::player_state::{Move, PlayerState, PlayerView, Spot};
use crate::model::event::Id;
use crate::model::versions::Version;

const STRIPES: usize = 64;

/// One stripe, on its own cache lines: the two workers' operators write
/// different stripes without sharing a line.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(RwLock<Shard>);

/// The players of one stripe.
#[derive(Default)]
pub(crate) struct Shard {
    /// Each player's state boxed: a map's slots are between half and
    /// seven eighths full, and an empty slot of a box costs 8 bytes where
    /// one of a whole state would cost its size.
    live: hashbrown::HashMap<Id, Box<PlayerState>, FxBuildHasher>,
    /// Players forgotten (nothing live any more), kept for the API so that
    /// a player it knew stays known.
    gone: FxHashMap<Id, Gone>,
    /// While the API serves: position changes before this time are final
    /// on every worker and need not be kept (set when the stripe is locked).
    floor: Option<u64>,
}

/// A forgotten player: when, and its position's last changes.
struct Gone {
    at: u64,
    moved: u64,
    moves: Vec<Move>,
}

/// Drops the changes every worker is past, and starts keeping them while
/// the API serves.
fn trim(state: &mut PlayerState, floor: Option<u64>) {
    if let Some(floor) = floor {
        state
            .moves_mut()
            .get_or_insert_with(Vec::new)
            .retain(|m| m.at >= floor);
    }
}

impl Shard {
    /// `player`'s state, created empty if it has none.
    pub(crate) fn entry(&mut self, player: &Id, keep_gone: bool) -> &mut PlayerState {
        let gone = &mut self.gone;
        let state = self.live.entry_ref(player.as_str()).or_insert_with(|| {
            let mut state = Box::<PlayerState>::default();
            if let Some(gone) = keep_gone.then(|| gone.remove(player.as_str())).flatten() {
                state.moved = gone.moved;
                *state.moves_mut() = Some(gone.moves);
            }
            state
        });
        trim(state, self.floor);
        state
    }

    /// Puts back a player saved in a snapshot.
    pub(crate) fn restore(&mut self, player: Id, mut state: PlayerState) {
        self.gone.remove(player.as_str());
        trim(&mut state, self.floor);
        self.live.insert(player, Box::new(state));
    }

    pub(crate) fn get_mut(&mut self, player: &str) -> Option<&mut PlayerState> {
        let state = self.live.get_mut(player)?;
        trim(state, self.floor);
        Some(state)
    }

    /// Every player with live state, to change in place.
    pub(crate) fn live_mut(&mut self) -> impl Iterator<Item = (&Id, &mut PlayerState)> {
        self.live.iter_mut().map(|(p, s)| (p, &mut **s))
    }

    /// Players with live state in this stripe.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Drops `player`, which has nothing live since time `t`.
    pub(crate) fn forget(&mut self, player: &Id, t: u64, keep_gone: bool) {
        let Some(mut state) = self.live.remove(player.as_str()) else {
            return;
        };
        if keep_gone {
            trim(&mut state, self.floor);
            let moves = state.take_moves();
            self.gone.insert(
                player.clone(),
                Gone {
                    at: t,
                    moved: state.moved,
                    moves: moves.unwrap_or_default(),
                },
            );
        }
    }
}

/// A position at time `at`, from the current one (set at `moved`) and the
/// changes kept: before the first change after `at`, what it was then.
fn spot_at(current: Option<Spot>, moved: u64, moves: &[Move], at: u64) -> (Option<Spot>, u64) {
    if moved <= at {
        return (current, moved);
    }
    match moves.iter().find(|m| m.at > at) {
        Some(m) => (m.before, m.before_moved),
        None => (current, moved),
    }
}

/// The stores of one process's workers while the API serves: how far each
/// has got, and so which position changes no reader can need any more.
#[derive(Default)]
pub struct Peers {
    throughs: RwLock<Vec<Arc<AtomicU64>>>,
    /// A listing in progress at time `t` holds `t + 1` here (`u64::MAX`:
    /// none), and the floor stays at or below it.
    pin: Mutex<u64>,
    /// Changes before this time are final everywhere: the least `through`
    /// (and pin).
    floor: AtomicU64,
}

impl Peers {
    pub fn new() -> Self {
        Peers {
            pin: Mutex::new(u64::MAX),
            ..Peers::default()
        }
    }

    /// Forgets the stores (a restarted job makes new ones).
    pub fn clear(&self) {
        if let Ok(mut t) = self.throughs.write() {
            t.clear();
        }
        self.floor.store(0, Ordering::Release);
    }

    fn least_through_of(&self, throughs: &[Arc<AtomicU64>]) -> u64 {
        throughs
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    fn refresh(&self) {
        let pin = self.pin.lock().expect("pin lock");
        let throughs = self.throughs.read().expect("peers lock");
        let least = self.least_through_of(&throughs);
        self.floor.store(least.min(*pin), Ordering::Release);
    }

    /// Pins the floor where it is, for a listing at a time chosen with the
    /// other processes of a cluster (see [`crate::serve::cluster`]): changes
    /// from the least `through` on stay readable until [`Peers::unpin`].
    /// Returns the least and the greatest `through` of the stores.
    pub fn pin(&self) -> (u64, u64) {
        let mut pin = self.pin.lock().expect("pin lock");
        let throughs = self.throughs.read().expect("peers lock");
        let least = self.least_through_of(&throughs);
        let most = throughs
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        *pin = least;
        (least, most)
    }

    /// Ends what [`Peers::pin`] started.
    pub fn unpin(&self) {
        let mut pin = self.pin.lock().expect("pin lock");
        *pin = u64::MAX;
        drop(pin);
        self.refresh();
    }

    /// The least `through` of the stores: every time below it is final in
    /// every one.
    pub fn least_through(&self) -> u64 {
        let throughs = self.throughs.read().expect("peers lock");
        self.least_through_of(&throughs)
    }

    /// Runs `read` with the latest time every store has got through (none
    /// before the first), which stays readable in every store meanwhile.
    /// Once the input ended (`ended`), nothing changes any more: the latest
    /// time any store got through.
    pub fn pinned<R>(&self, ended: bool, read: impl FnOnce(Option<u64>) -> R) -> R {
        let at = {
            let mut pin = self.pin.lock().expect("pin lock");
            let throughs = self.throughs.read().expect("peers lock");
            let each = throughs.iter().map(|t| t.load(Ordering::Acquire));
            let at = if ended { each.max() } else { each.min() }.unwrap_or(0);
            *pin = self.least_through_of(&throughs);
            at.checked_sub(1)
        };
        let r = read(at);
        let mut pin = self.pin.lock().expect("pin lock");
        *pin = u64::MAX;
        drop(pin);
        self.refresh();
        r
    }
}

/// One worker's players.
pub struct PlayerStore {
    stripes: Box<[Stripe]>,
    /// `t + 1`: every time up to `t` is final here (the latest time
    /// processed, or below the frontier); 0: none yet. Once the input
    /// ended, nothing changes after it.
    through: Arc<AtomicU64>,
    /// Remember forgotten players (for the API).
    pub(crate) keep_gone: bool,
    /// The other workers' stores, when the API lists positions.
    peers: Option<Arc<Peers>>,
}

impl PlayerStore {
    pub fn new(keep_gone: bool) -> Self {
        PlayerStore {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            through: Arc::new(AtomicU64::new(0)),
            keep_gone,
            peers: None,
        }
    }

    /// A store the API reads, listing positions with those of `peers`.
    pub fn serving(peers: &Arc<Peers>) -> Self {
        let players = PlayerStore {
            peers: Some(peers.clone()),
            ..PlayerStore::new(true)
        };
        if let Ok(mut t) = peers.throughs.write() {
            t.push(players.through.clone());
        }
        players
    }

    fn stripe(&self, player: &str) -> &RwLock<Shard> {
        // The high bits: workers are chosen by the hash modulo their count.
        &self.stripes[(player_hash(player) >> 40) as usize % STRIPES].0
    }

    /// The stripe holding `player`, locked for the operator.
    pub(crate) fn lock(&self, player: &str) -> RwLockWriteGuard<'_, Shard> {
        let mut shard = self.stripe(player).write().expect("players lock");
        shard.floor = self.peers.as_ref().map(|p| p.floor.load(Ordering::Acquire));
        shard
    }

    /// Calls `f` on every stripe in turn, locked for the operator; returns
    /// the sum of what `f` returns.
    pub(crate) fn each_stripe(&self, mut f: impl FnMut(&mut Shard) -> usize) -> usize {
        self.stripes
            .iter()
            .map(|s| f(&mut s.0.write().expect("players lock")))
            .sum()
    }

    /// Every time up to `t` is final.
    pub(crate) fn through(&self, t: u64) {
        let was = self
            .through
            .fetch_max(t.saturating_add(1), Ordering::Release);
        // Only the store that holds the floor back can raise it.
        if let Some(peers) = &self.peers {
            if was <= peers.floor.load(Ordering::Acquire) {
                peers.refresh();
            }
        }
    }

    /// Every player whose position at `at` changed after `since` (every
    /// player with a position at `at` when `None`): `f(player, position at
    /// at, when it last changed)`. `at` must be final here, and pinned
    /// ([`Peers::pinned`]).
    pub fn positions_at(
        &self,
        at: u64,
        since: Option<u64>,
        mut f: impl FnMut(&Id, Option<Spot>, u64),
    ) {
        let wanted = |spot: &Option<Spot>, moved: u64| match since {
            None => spot.is_some(),
            Some(s) => moved > s,
        };
        for stripe in self.stripes.iter() {
            let shard = stripe.0.read().expect("players lock");
            for (player, state) in &shard.live {
                let moves = state.moves().unwrap_or_default();
                let (spot, moved) = spot_at(state.spot(), state.moved, moves, at);
                if wanted(&spot, moved) {
                    f(player, spot, moved);
                }
            }
            for (player, gone) in &shard.gone {
                let (spot, moved) = spot_at(None, gone.moved, &gone.moves, at);
                if wanted(&spot, moved) {
                    f(player, spot, moved);
                }
            }
        }
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
        let mut all: Vec<(&Id, &PlayerState)> = guards
            .iter()
            .flat_map(|g| g.live.iter().map(|(p, s)| (p, &**s)))
            .collect();
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
        shard.gone.get(player).map(|g| PlayerAnswer {
            as_of: at(g.at),
            view: None,
            facts: Vec::new(),
        })
    }
}

/// One player at one complete time, `as_of`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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

    /// The zones the player is in (dictionary numbers, ascending).
    pub fn zones(&self) -> impl Iterator<Item = u32> + '_ {
        self.facts
            .iter()
            .filter(|(k, _)| *k == FactKind::Presence)
            .map(|&(_, z)| z)
    }

    /// Whether the player is eligible for reward `r` (a dictionary number)
    /// at `as_of` under version `v`, the version in effect then: the rule
    /// the eligibility dataflow maintains, read off the player's facts.
    pub fn eligible(&self, v: &Version, r: u32) -> bool {
        v.rule(r).is_some_and(|rule| {
            self.has(FactKind::Met, r) && rule.window.is_none_or(|w| w.contains(self.as_of))
        })
    }
}
