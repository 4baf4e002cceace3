//! Per-player facts: the latest-with-TTL state of each player, turned into the
//! exact changes of the facts the rest of the dataflow combines: presence
//! in a zone, and rewards whose player conditions hold (docs/spec.md §5).
//!
//! Events are exchanged by player. The operator buffers them by event time and
//! processes each time once it is complete (the input frontier has passed it),
//! in time order, together with the expiry timers due at that time. For every
//! player touched at time `t` it recomputes the player's facts at `t` and emits
//! the difference with what it emitted before, so the output is already
//! consolidated: a player moving inside the same zones produces nothing.
//!
//! Hunt versions (docs/spec.md §9) reach every worker as notices at their
//! effective time. Events are interpreted by the version in effect at their
//! time; when a version takes effect at `T`, every player with live state is
//! settled again at `T` under it, which emits exactly the changes the new
//! version makes.
//!
//! State per player is O(1) in the number of events: the current position, the
//! latest reading per sensor, the live solves per clue and the claims,
//! plus the facts last emitted. Superseded positions and readings are dropped,
//! and a player with nothing live is forgotten.

use crate::model::versions::Dictionary;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Stream};

use super::pending::Pending;
use super::player_state::{self, Interpreted, PlayerState, SavedState};
use super::player_store::PlayerStore;
use super::Control;
use crate::model::event::{Event, Id};
use crate::model::versions::{SharedVersions, Version};

/// The kinds of per-player fact the operator maintains, each with a
/// dictionary number: presence in a zone, or a reward whose player
/// conditions (zone, clues, sensor) hold and which the player has not
/// claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FactKind {
    Presence,
    Met,
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
    versions: SharedVersions,
    /// The version in effect at the time being processed.
    current: Arc<Version>,
    /// Effective times of versions received and not yet reached.
    boundaries: BTreeSet<u64>,
    players: Arc<PlayerStore>,
    /// Events whose time is not complete yet.
    pending: Pending,
    /// Events whose time is complete, sorted by time and player, waiting for
    /// their turn (work is done in bounded slices).
    ready: VecDeque<Event>,
    timers: BinaryHeap<Reverse<(u64, Id)>>,
    scratch: Scratch,
    /// Snapshots to capture, by frontier: epoch.
    snapshots: BTreeMap<u64, u64>,
    /// Captured snapshots: epoch, frontier and every player's state (see
    /// [`FactsHandle::take_capture`]).
    captured: Vec<Capture>,
}

/// The per-player state of one worker as it stood when every time below a
/// snapshot's frontier had been processed, and nothing later: a copy taken
/// on the worker, written out ([`Capture::players_jsonl`]) elsewhere, so
/// that a snapshot holds the dataflow up only for the copy.
pub struct Capture {
    pub epoch: u64,
    pub at: u64,
    players: Vec<(Id, PlayerState)>,
    dictionary: Dictionary,
}

impl Capture {
    /// Every player's state, one JSON line each, items by id, players in
    /// id order.
    pub fn players_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (player, state) in &self.players {
            let line = serde_json::to_writer(&mut out, &(player, state.save(&self.dictionary)));
            debug_assert!(line.is_ok(), "writing to memory");
            out.push(b'\n');
        }
        out
    }
}

/// Buffers reused by every settle.
#[derive(Default)]
struct Scratch {
    facts: Vec<(FactKind, u32)>,
    zones: player_state::Scratch,
}

impl Facts {
    fn push(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// A version that takes effect at `t` (received from the change input).
    fn boundary(&mut self, t: u64) {
        self.boundaries.insert(t);
    }

    /// A snapshot at frontier `at`: the state is captured once every time
    /// below `at`, and none at or above it, is processed.
    fn snapshot(&mut self, epoch: u64, at: u64) {
        self.snapshots.insert(at, epoch);
    }

    /// Captures the snapshots whose frontier is at or below `t` (every time
    /// below `t` is processed, none at or above it).
    fn capture_before(&mut self, t: u64) {
        while let Some(entry) = self.snapshots.first_entry() {
            if *entry.key() > t {
                break;
            }
            let (at, epoch) = entry.remove_entry();
            let capture = self.capture(epoch, at);
            self.captured.push(capture);
        }
    }

    /// A copy of every player's state, in id order.
    fn capture(&self, epoch: u64, at: u64) -> Capture {
        let dictionary = self
            .versions
            .read()
            .expect("versions lock")
            .dictionary()
            .clone();
        let mut players = Vec::with_capacity(self.players.len());
        let listed = self.players.each_sorted(|player, state| {
            players.push((player.clone(), state.clone()));
            Ok(())
        });
        debug_assert!(listed.is_ok(), "copying in memory");
        Capture {
            epoch,
            at,
            players,
            dictionary,
        }
    }

    /// The least time with work left: a pending event, a timer or a version
    /// taking effect.
    fn next_time(&self) -> Option<u64> {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        let r = self.ready.front().map(|e| e.ts);
        let b = self.boundaries.first().copied();
        [self.pending.min(), t, r, b].into_iter().flatten().min()
    }

    /// Moves pending events below `limit` (all when `None`) to `ready`, the
    /// earliest first, about `max` of them (every event of a time at once):
    /// the rest wait in their buckets until `ready` is empty again, so that
    /// a large jump of the frontier is not copied all at once.
    fn ready_below(&mut self, limit: Option<u64>, max: usize) {
        let mut fresh = Vec::new();
        self.pending.take_below(limit, max, &mut fresh);
        if fresh.is_empty() {
            return;
        }
        // Events arriving later have times at or above every time that
        // was complete before, so appending keeps `ready` sorted.
        fresh.sort_unstable_by(|a, b| (a.ts, &a.player).cmp(&(b.ts, &b.player)));
        self.ready.extend(fresh);
    }

    /// Processes, in time order, the times below `limit` (all when `None`):
    /// a version taking effect, the events at each time and the timers due
    /// then, stopping after the first time at which `budget` events, timers
    /// and re-settled players have been handled. Returns true when work
    /// below `limit` is left for another call.
    fn process_until(
        &mut self,
        limit: Option<u64>,
        budget: usize,
        out: &mut Vec<(PlayerFact, u64, isize)>,
    ) -> bool {
        let below = |t: u64| limit.is_none_or(|f| t < f);
        let mut done = 0;
        while done < budget {
            if self.ready.is_empty() {
                // Before any timer: the events waiting may be earlier.
                self.ready_below(limit, budget);
            }
            let event_time = self.ready.front().map(|e| e.ts);
            let timer_time = self.timers.peek().map(|Reverse((t, _))| *t);
            let boundary = self.boundaries.first().copied();
            let Some(t) = [event_time, timer_time, boundary]
                .into_iter()
                .flatten()
                .filter(|&t| below(t))
                .min()
            else {
                break;
            };
            self.capture_before(t);
            let resettle = boundary == Some(t);
            if resettle {
                self.boundaries.pop_first();
                let v = self.versions.read().expect("versions lock").at(t).clone();
                self.current = v;
            }
            done += self.events_at(t, out);
            done += self.timers_at(t, out);
            if resettle {
                done += self.settle_all(t, out);
            }
            self.players.through(t);
        }
        let more = [
            self.ready.front().map(|e| e.ts),
            self.pending.min(),
            self.timers.peek().map(|Reverse((t, _))| *t),
            self.boundaries.first().copied(),
        ]
        .into_iter()
        .flatten()
        .any(below);
        if !more {
            // Nothing happens here below the limit: every time below it is
            // final (and with no limit, the times processed are the last).
            if let Some(f) = limit.filter(|&f| f > 0) {
                self.players.through(f - 1);
            }
            self.capture_before(limit.unwrap_or(u64::MAX));
        }
        more
    }

    /// Applies the events at `t`, player by player, and settles each
    /// player touched; returns how many events were handled.
    fn events_at(&mut self, t: u64, out: &mut Vec<(PlayerFact, u64, isize)>) -> usize {
        let (mut work, players, ready) = self.split(t, out);
        let keep_gone = players.keep_gone;
        let mut done = 0;
        while let Some(first) = ready.pop_front_if(|e| e.ts == t) {
            let player = first.player.clone();
            let mut effects = Vec::new();
            effects.extend(Interpreted::of(first, work.version));
            done += 1;
            while let Some(next) = ready.pop_front_if(|e| e.ts == t && e.player == player) {
                effects.extend(Interpreted::of(next, work.version));
                done += 1;
            }
            // Events with no effect under this version leave no trace.
            if effects.is_empty() {
                continue;
            }
            let mut shard = players.lock(&player);
            let state = shard.entry(&player, keep_gone);
            state.expire(t);
            for e in effects {
                state.apply(e);
            }
            if work.settle(state, &player) {
                shard.forget(&player, t, keep_gone);
            }
        }
        done
    }

    /// Settles the players whose timer is due at `t`; one that also had
    /// events at `t` is settled again, which changes nothing.
    fn timers_at(&mut self, t: u64, out: &mut Vec<(PlayerFact, u64, isize)>) -> usize {
        let (mut work, players, _) = self.split(t, out);
        let keep_gone = players.keep_gone;
        let mut done = 0;
        while work
            .timers
            .peek()
            .is_some_and(|Reverse((time, _))| *time == t)
        {
            let Reverse((_, player)) = work.timers.pop().expect("peeked");
            done += 1;
            let mut shard = players.lock(&player);
            if let Some(state) = shard.get_mut(&player) {
                if state.timer == Some(t) {
                    state.timer = None;
                    state.expire(t);
                    if work.settle(state, &player) {
                        shard.forget(&player, t, keep_gone);
                    }
                }
            }
        }
        done
    }

    /// A version took effect at `t`: every player with live state is
    /// settled under it. Returns how many players that was.
    fn settle_all(&mut self, t: u64, out: &mut Vec<(PlayerFact, u64, isize)>) -> usize {
        let (mut work, players, _) = self.split(t, out);
        let keep_gone = players.keep_gone;
        players.each_stripe(|shard| {
            let mut gone = Vec::new();
            for (player, state) in shard.live_mut() {
                state.expire(t);
                if work.settle(state, player) {
                    gone.push(player.clone());
                }
            }
            let n = shard.len() + gone.len();
            for player in gone {
                shard.forget(&player, t, keep_gone);
            }
            n
        })
    }

    /// What settling players at `t` needs, apart from the players and the
    /// events ready.
    fn split<'a>(
        &'a mut self,
        t: u64,
        out: &'a mut Vec<(PlayerFact, u64, isize)>,
    ) -> (Work<'a>, &'a PlayerStore, &'a mut VecDeque<Event>) {
        let work = Work {
            version: &self.current,
            scratch: &mut self.scratch,
            timers: &mut self.timers,
            t,
            out,
        };
        (work, &self.players, &mut self.ready)
    }
}

/// Settling players at one time `t` under one version.
struct Work<'a> {
    version: &'a Version,
    scratch: &'a mut Scratch,
    timers: &'a mut BinaryHeap<Reverse<(u64, Id)>>,
    t: u64,
    out: &'a mut Vec<(PlayerFact, u64, isize)>,
}

impl Work<'_> {
    /// Emits the change of `player`'s facts at `t` and queues its next
    /// expiry. Returns true when nothing about the player is live any more.
    fn settle(&mut self, state: &mut PlayerState, player: &Id) -> bool {
        let (t, out) = (self.t, &mut *self.out);
        state.facts(
            self.version,
            &mut self.scratch.zones,
            &mut self.scratch.facts,
        );
        diff(&state.emitted, &self.scratch.facts, |fact, delta| {
            out.push(((fact.0, player.clone(), fact.1), t, delta));
        });
        state.settled = t;
        // Copied rather than swapped: a swap would hand the scratch
        // buffer's capacity (the most facts any player had) to this player;
        // and copied into a list of the right size when the old one is too
        // small (a vector's own growth would double it).
        let facts = &self.scratch.facts;
        if state.emitted.capacity() < facts.len() {
            state.emitted = facts.clone();
        } else {
            state.emitted.clear();
            state.emitted.extend_from_slice(facts);
        }
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
/// `[player, state]` with hunt items by id, opaque outside this module.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlayer(Id, SavedState);

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
    /// The capture of snapshot `epoch`, once it is taken.
    pub fn take_capture(&self, epoch: u64) -> Option<Capture> {
        let mut facts = self.0.borrow_mut();
        let i = facts.captured.iter().position(|c| c.epoch == epoch)?;
        Some(facts.captured.swap_remove(i))
    }

    /// Players with live state on this worker.
    pub fn players(&self) -> usize {
        self.0.borrow().players.len()
    }
}

/// Puts the players of a snapshot back, their facts announced at `time`.
fn restore(
    f: &mut Facts,
    restore: Restore,
    changes: &mut Vec<(PlayerFact, u64, isize)>,
) -> Result<(), String> {
    let versions = f.versions.clone();
    let versions = versions.read().expect("versions lock");
    let dict = versions.dictionary();
    for SavedPlayer(player, saved) in restore.players {
        let state = saved.restore(dict)?;
        for &(kind, n) in &state.emitted {
            changes.push(((kind, player.clone(), n), restore.time, 1));
        }
        if let Some(t) = state.timer {
            f.timers.push(Reverse((t, player.clone())));
        }
        f.players.lock(&player).restore(player, state);
    }
    f.players.through(restore.time);
    Ok(())
}

/// The default `slice` of [`build`].
pub const DEFAULT_SLICE: usize = 50_000;

/// The facts operator's output: fact changes at their times.
pub type FactsStream<'scope> = Stream<'scope, u64, Vec<(PlayerFact, u64, isize)>>;

/// Builds the facts operator over the accepted events and the versions
/// taking effect and the snapshots to capture (every worker receives every
/// [`Control`] record), starting from
/// restored state when given, keeping the players in `players` (which the
/// API reads); returns its changes and a handle on its state for snapshots.
///
/// Each activation handles about `slice` events, timers and re-settled
/// players at most (a slice ends at a time boundary), so that a large jump
/// of the frontier — the end of a backfill — flows downstream in slices the
/// next operators can digest and compact, instead of one burst.
pub(crate) fn build<'scope>(
    events: Stream<'scope, u64, Vec<Event>>,
    control: Stream<'scope, u64, Vec<Control>>,
    versions: SharedVersions,
    slice: usize,
    restore: Option<Restore>,
    players: Arc<PlayerStore>,
    done: ProbeHandle<u64>,
) -> (FactsStream<'scope>, FactsHandle) {
    let slice = slice.max(1);
    let exchange = Exchange::new(|e: &Event| player_hash(&e.player));
    let scope = events.scope();
    let start = restore.as_ref().map_or(0, |r| r.time);
    let current = versions.read().expect("versions lock").at(start).clone();
    let facts = Rc::new(RefCell::new(Facts {
        versions,
        current,
        boundaries: BTreeSet::new(),
        players,
        pending: Pending::default(),
        ready: VecDeque::new(),
        timers: BinaryHeap::new(),
        scratch: Scratch::default(),
        snapshots: BTreeMap::new(),
        captured: Vec::new(),
    }));
    let handle = FactsHandle(facts.clone());
    let stream = events.binary_frontier(
        control,
        exchange,
        Pipeline,
        "Facts",
        move |initial, info| {
            let activator = scope.activator_for(info.address);
            let mut held: Option<Capability<u64>> = None;
            let mut changes = Vec::new();
            let mut flight = InFlight::default();
            if let Some(restore) = restore {
                let time = restore.time;
                if let Err(e) = self::restore(&mut facts.borrow_mut(), restore, &mut changes) {
                    eprintln!("huntflow: restoring the players of a snapshot: {e}");
                }
                held = Some(initial.delayed(&time));
                activator.activate();
            }
            move |(input, frontier), (control, control_frontier), output| {
                let mut facts = facts.borrow_mut();
                let mut hold = |time: u64, cap: Capability<u64>| {
                    if held.as_ref().is_none_or(|h| time < *h.time()) {
                        held = Some(cap);
                    }
                };
                input.for_each(|cap, data| {
                    if let Some(&time) = cap.least() {
                        hold(time, cap.delayed(&time, 0));
                    }
                    for event in data.drain(..) {
                        facts.push(event);
                    }
                });
                control.for_each(|cap, data| {
                    for record in data.drain(..) {
                        match record {
                            Control::Version(notice) => {
                                // A job may know the version already (a
                                // backfill knows them all); it takes effect
                                // all the same.
                                facts
                                    .versions
                                    .write()
                                    .expect("versions lock")
                                    .add_notice(&notice);
                                if notice.effective > start {
                                    hold(notice.effective, cap.delayed(&notice.effective, 0));
                                    facts.boundary(notice.effective);
                                }
                            }
                            Control::Snapshot { epoch, at } => facts.snapshot(epoch, at),
                        }
                    }
                });
                let limit = [
                    frontier.frontier().first(),
                    control_frontier.frontier().first(),
                ]
                .into_iter()
                .flatten()
                .min()
                .copied();
                let held_back = flight.held_back(&done);
                let more = !held_back && facts.process_until(limit, slice, &mut changes);
                // What it sent is below both its next time and the input
                // frontier it processed to (an operator with nothing left
                // in a job that never ends still completes them).
                let below = match (facts.next_time(), limit) {
                    (Some(next), Some(l)) => Some(next.min(l)),
                    (next, l) => next.or(l),
                };
                flight.sent(below, changes.len());
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
                } else if held_back {
                    // Come back once the output has moved on.
                    activator.activate_after(HELD_BACK_RETRY);
                }
            }
        },
    );
    (stream, handle)
}

/// Changes the facts operator may have sent that the operators after it
/// have not completed yet, before it waits. Without a bound, a large jump of
/// the input frontier (the end of a backfill: every player's expiry at
/// once) would be turned into changes far faster than the operators after
/// it complete them, and they would pile up in between.
const MAX_IN_FLIGHT: usize = 200_000;

/// When held back by [`MAX_IN_FLIGHT`], how soon to look again.
const HELD_BACK_RETRY: std::time::Duration = std::time::Duration::from_micros(200);

/// The changes sent and not yet completed downstream: how many were sent
/// below each time (the operator's next time after each activation).
#[derive(Default)]
struct InFlight {
    sent: VecDeque<(u64, usize)>,
    total: usize,
}

impl InFlight {
    /// `n` changes were sent, all at times below `before` (`None`: the
    /// operator has nothing left).
    fn sent(&mut self, before: Option<u64>, n: usize) {
        if n > 0 {
            self.sent.push_back((before.unwrap_or(u64::MAX), n));
            self.total += n;
        }
    }

    /// Forgets what the output completed; true when too much is still in
    /// flight to go on.
    fn held_back(&mut self, done: &ProbeHandle<u64>) -> bool {
        let complete = |below: u64| done.with_frontier(|f| f.iter().all(|&t| t >= below));
        while let Some(&(below, n)) = self.sent.front() {
            if !complete(below) {
                break;
            }
            self.sent.pop_front();
            self.total -= n;
        }
        self.total >= MAX_IN_FLIGHT
    }
}
