//! Per-player facts: the latest-with-TTL state of each player, turned into the
//! exact changes of the facts the rest of the dataflow combines.
//!
//! Events are exchanged by player. The operator buffers them by event time and
//! processes each time once it is complete (the input frontier has passed it),
//! in time order, together with the expiry timers due at that time. For every
//! player touched at time `t` it recomputes the player's facts at `t` and emits
//! the difference with what it emitted before, so the output is already
//! consolidated: a player moving inside the same zones produces nothing.
//!
//! State per player is O(1) in the number of events: the current position, the
//! latest reading per hunt sensor, the live solves per hunt clue and the claims,
//! plus the facts last emitted. Superseded positions and readings are dropped,
//! and a player with nothing live is forgotten.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::player_state::{sensor_rewards, PlayerState, SensorRewards};
use super::player_store::PlayerStore;
use crate::model::event::{Event, Id};
use crate::model::hunt::Hunt;

/// The kinds of per-player fact the operator maintains, each with a number:
/// a zone (presence), a reward (its sensor condition holds), a clue (solved)
/// or a reward (claimed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FactKind {
    Presence,
    SensorOk,
    Solved,
    Claimed,
}

/// One per-player fact: `(kind, player, number)`.
pub type PlayerFact = (FactKind, Id, u32);

/// A stable hash of a player id, used to route a player's data to one worker.
pub fn player_hash(player: &str) -> u64 {
    let mut h = FxHasher::default();
    player.hash(&mut h);
    h.finish()
}

/// The per-worker state of the facts operator.
struct Facts {
    hunt: Arc<Hunt>,
    conditions: SensorRewards,
    players: Arc<PlayerStore>,
    /// Events whose time is not complete yet, in arrival order.
    pending: Vec<Event>,
    /// Events whose time is complete, sorted by time and player, waiting for
    /// their turn (work is done in bounded slices).
    ready: VecDeque<Event>,
    /// The least `ts` in `pending`.
    pending_min: Option<u64>,
    timers: BinaryHeap<Reverse<(u64, Id)>>,
    scratch: Vec<(FactKind, u32)>,
}

impl Facts {
    fn push(&mut self, event: Event) {
        self.pending_min = Some(self.pending_min.map_or(event.ts, |m| m.min(event.ts)));
        self.pending.push(event);
    }

    /// The least time with work left: a pending event or a timer.
    fn next_time(&self) -> Option<u64> {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        let r = self.ready.front().map(|e| e.ts);
        [self.pending_min, t, r].into_iter().flatten().min()
    }

    /// Processes, in time order, the times below `limit` (all when `None`):
    /// the events at each time and the timers due then, stopping after the
    /// first time at which `budget` events and timers have been handled.
    /// Returns true when work below `limit` is left for another call.
    fn process_until(
        &mut self,
        limit: Option<u64>,
        budget: usize,
        out: &mut Vec<(PlayerFact, u64, isize)>,
    ) -> bool {
        let below = |t: u64| limit.is_none_or(|f| t < f);
        if self.pending_min.is_some_and(below) {
            // Events arriving later have times at or above every time that
            // was complete before, so appending keeps `ready` sorted.
            let mut fresh: Vec<Event> = match limit {
                None => std::mem::take(&mut self.pending),
                Some(f) => self.pending.extract_if(.., |e| e.ts < f).collect(),
            };
            self.pending_min = self.pending.iter().map(|e| e.ts).min();
            fresh.sort_unstable_by(|a, b| (a.ts, &a.player).cmp(&(b.ts, &b.player)));
            self.ready.extend(fresh);
        }
        let Facts {
            hunt,
            conditions,
            players,
            timers,
            scratch,
            ready,
            ..
        } = self;
        let keep_gone = players.keep_gone;
        let mut ctx = Settle {
            hunt,
            conditions,
            scratch,
            timers,
        };
        let mut done = 0;
        while done < budget {
            let event_time = ready.front().map(|e| e.ts);
            let timer_time = ctx
                .timers
                .peek()
                .map(|Reverse((t, _))| *t)
                .filter(|t| below(*t));
            let Some(t) = [event_time, timer_time].into_iter().flatten().min() else {
                break;
            };
            while let Some(first) = ready.pop_front_if(|e| e.ts == t) {
                let player = first.player.clone();
                let mut shard = players.lock(&player);
                let state = shard.entry(&player, keep_gone);
                state.expire(t);
                state.apply(first);
                done += 1;
                while let Some(next) = ready.pop_front_if(|e| e.ts == t && e.player == player) {
                    state.apply(next);
                    done += 1;
                }
                if ctx.settle(state, t, &player, out) {
                    shard.forget(&player, t, keep_gone);
                }
            }
            // Players whose timer is due; one that also had events at `t` is
            // settled again, which changes nothing.
            while ctx
                .timers
                .peek()
                .is_some_and(|Reverse((time, _))| *time == t)
            {
                let Reverse((_, player)) = ctx.timers.pop().expect("peeked");
                done += 1;
                let mut shard = players.lock(&player);
                if let Some(state) = shard.get_mut(&player) {
                    if state.timer == Some(t) {
                        state.timer = None;
                        state.expire(t);
                        if ctx.settle(state, t, &player, out) {
                            shard.forget(&player, t, keep_gone);
                        }
                    }
                }
            }
            players.through(t);
        }
        let more = !ready.is_empty() || ctx.timers.peek().is_some_and(|Reverse((t, _))| below(*t));
        if !more {
            // Nothing happens here below the limit: every time below it is
            // final (and with no limit, the times processed are the last).
            if let Some(f) = limit.filter(|&f| f > 0) {
                players.through(f - 1);
            }
        }
        more
    }
}

/// What settling a player needs besides the player's state.
struct Settle<'a> {
    hunt: &'a Hunt,
    conditions: &'a SensorRewards,
    scratch: &'a mut Vec<(FactKind, u32)>,
    timers: &'a mut BinaryHeap<Reverse<(u64, Id)>>,
}

impl Settle<'_> {
    /// Emits the change of `player`'s facts at `t` and queues its next
    /// expiry. Returns true when nothing about the player is live any more.
    fn settle(
        &mut self,
        state: &mut PlayerState,
        t: u64,
        player: &Id,
        out: &mut Vec<(PlayerFact, u64, isize)>,
    ) -> bool {
        state.facts(self.hunt, self.conditions, self.scratch);
        diff(&state.emitted, self.scratch, |fact, delta| {
            out.push(((fact.0, player.clone(), fact.1), t, delta));
        });
        state.settled = t;
        std::mem::swap(&mut state.emitted, self.scratch);
        if state.timer.is_some_and(|at| at <= t) {
            state.timer = None;
        }
        if let Some(next) = state.next_expiry() {
            if state.timer.is_none_or(|at| next < at) {
                state.timer = Some(next);
                self.timers.push(Reverse((next, player.clone())));
            }
        }
        state.is_empty()
    }
}

/// Calls `emit(fact, ±1)` for each fact only in `old` (-1) or only in `new` (+1).
fn diff(
    old: &[(FactKind, u32)],
    new: &[(FactKind, u32)],
    mut emit: impl FnMut((FactKind, u32), isize),
) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                emit(*a, -1);
                i += 1;
            }
            (Some(_), Some(b)) => {
                emit(*b, 1);
                j += 1;
            }
            (Some(a), None) => {
                emit(*a, -1);
                i += 1;
            }
            (None, Some(b)) => {
                emit(*b, 1);
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
}

/// One player's state as saved in a snapshot: a JSON array
/// `[player, state]`, opaque outside this module.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlayer(Id, PlayerState);

impl SavedPlayer {
    pub fn player(&self) -> &str {
        &self.0
    }
}

/// Where a restarted operator starts: the players saved in a snapshot taken
/// at a completed frontier, whose current facts are announced at `time`,
/// a time below that frontier (the sinks drop everything below it, so the
/// restored state does not reappear as notifications).
pub struct Restore {
    pub players: Vec<SavedPlayer>,
    pub time: u64,
}

/// A worker's facts state, reachable from outside the dataflow for
/// snapshots.
#[derive(Clone)]
pub struct FactsHandle(Rc<RefCell<Facts>>);

impl FactsHandle {
    /// Writes every player's state, one JSON line each. Meaningful when the
    /// times below the snapshot frontier are all processed and the sources
    /// are paused there: events at later times are not part of it (the
    /// sources keep those).
    pub fn save(&self, out: &mut dyn Write) -> std::io::Result<usize> {
        let facts = self.0.borrow();
        debug_assert!(facts.ready.is_empty(), "a snapshot between slices");
        facts.players.each_sorted(|player, state| {
            serde_json::to_writer(&mut *out, &(player, state))?;
            out.write_all(b"\n")
        })
    }

    /// Players with live state on this worker.
    pub fn players(&self) -> usize {
        self.0.borrow().players.len()
    }
}

/// The default `slice` of [`build`].
pub const DEFAULT_SLICE: usize = 50_000;

/// The facts operator's output: fact changes at their times.
pub type FactsStream<'scope> = Stream<'scope, u64, Vec<(PlayerFact, u64, isize)>>;

/// Builds the facts operator over the accepted events, starting from
/// restored state when given, keeping the players in `players` (which the
/// API reads); returns its changes and a handle on its state for snapshots.
///
/// Each activation handles about `slice` events and timers at most (a
/// slice ends at a time boundary), so that a large jump of the frontier —
/// the end of a backfill — flows downstream in slices the next operators
/// can digest and compact, instead of one burst.
pub(crate) fn build<'scope>(
    events: Stream<'scope, u64, Vec<Event>>,
    hunt: Arc<Hunt>,
    slice: usize,
    restore: Option<Restore>,
    players: Arc<PlayerStore>,
) -> (FactsStream<'scope>, FactsHandle) {
    let slice = slice.max(1);
    let exchange = Exchange::new(|e: &Event| player_hash(&e.player));
    let scope = events.scope();
    let facts = Rc::new(RefCell::new(Facts {
        conditions: sensor_rewards(&hunt),
        hunt,
        players,
        pending: Vec::new(),
        pending_min: None,
        ready: VecDeque::new(),
        timers: BinaryHeap::new(),
        scratch: Vec::new(),
    }));
    let handle = FactsHandle(facts.clone());
    let stream = events.unary_frontier(exchange, "Facts", move |initial, info| {
        let activator = scope.activator_for(info.address);
        let mut held: Option<Capability<u64>> = None;
        let mut changes = Vec::new();
        if let Some(restore) = restore {
            let mut f = facts.borrow_mut();
            for SavedPlayer(player, state) in restore.players {
                for &(kind, n) in &state.emitted {
                    changes.push(((kind, player.clone(), n), restore.time, 1));
                }
                if let Some(t) = state.timer {
                    f.timers.push(Reverse((t, player.clone())));
                }
                f.players.lock(&player).restore(player, state);
            }
            f.players.through(restore.time);
            held = Some(initial.delayed(&restore.time));
            activator.activate();
        }
        move |(input, frontier), output| {
            let mut facts = facts.borrow_mut();
            input.for_each(|cap, data| {
                if let Some(time) = cap.least() {
                    if held.as_ref().is_none_or(|h| time < h.time()) {
                        held = Some(cap.delayed(time, 0));
                    }
                }
                for event in data.drain(..) {
                    facts.push(event);
                }
            });
            let more =
                facts.process_until(frontier.frontier().first().copied(), slice, &mut changes);
            if let Some(cap) = held.as_mut() {
                if !changes.is_empty() {
                    output.session(&*cap).give_container(&mut changes);
                    changes.clear();
                }
                match facts.next_time() {
                    Some(next) => cap.downgrade(&next),
                    None => held = None,
                }
            }
            if more {
                activator.activate();
            }
        }
    });
    (stream, handle)
}
