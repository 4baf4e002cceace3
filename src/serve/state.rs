//! The state analysts query, kept by the job itself at one logical time.
//!
//! Two streams feed it, both on worker 0 and both in completed times only:
//! the notifications (presence, eligibility, occupancy changes) and the
//! player views of the facts operator (position, readings, solves,
//! claims). Each arrives with its own frontier; a time is applied only
//! once both have passed it, so every answer describes exactly one time,
//! `as_of`, the latest complete time. Applying is a few map updates per
//! change under a write lock held for one batch; queries take a read lock
//! for one lookup, so neither waits long on the other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::dataflow::facts::PlayerView;
use crate::event::Id;
use crate::hunt::Hunt;
use crate::sink::{Notification, PlayerKind};

/// Player views of one time.
pub type Views = Vec<(Id, Option<Box<PlayerView>>)>;

/// Queryable state at `as_of`.
pub struct LiveState {
    pub hunt: Arc<Hunt>,
    pending_notes: BTreeMap<u64, Vec<Notification>>,
    pending_views: BTreeMap<u64, Views>,
    /// `Some(f)`: times below `f` have arrived; `None`: the stream ended.
    notes_frontier: Option<u64>,
    views_frontier: Option<u64>,
    /// The latest complete time applied, if any.
    pub as_of: Option<u64>,
    /// Every time is complete (a finished backfill).
    pub complete: bool,
    pub presence: HashMap<Id, BTreeSet<u32>>,
    pub zone_players: Vec<BTreeSet<Id>>,
    pub eligible: HashMap<Id, BTreeSet<u32>>,
    pub reward_players: Vec<BTreeSet<Id>>,
    pub occupancy: Vec<i64>,
    pub views: HashMap<Id, Box<PlayerView>>,
    /// Players ever seen (others are unknown: 404).
    pub seen: HashSet<Id>,
}

impl LiveState {
    pub fn new(hunt: Arc<Hunt>) -> Self {
        LiveState {
            zone_players: vec![BTreeSet::new(); hunt.zones.len()],
            reward_players: vec![BTreeSet::new(); hunt.rewards.len()],
            occupancy: vec![0; hunt.zones.len()],
            hunt,
            pending_notes: BTreeMap::new(),
            pending_views: BTreeMap::new(),
            notes_frontier: Some(0),
            views_frontier: Some(0),
            as_of: None,
            complete: false,
            presence: HashMap::new(),
            eligible: HashMap::new(),
            views: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    /// The notifications of completed time `time`.
    pub fn notes(&mut self, time: u64, ns: &[Notification]) {
        if !ns.is_empty() {
            self.pending_notes
                .entry(time)
                .or_default()
                .extend_from_slice(ns);
        }
    }

    pub fn notes_frontier(&mut self, frontier: Option<u64>) {
        self.notes_frontier = frontier;
        self.advance();
    }

    /// The player views of completed time `time`.
    pub fn views(&mut self, time: u64, views: Views) {
        if !views.is_empty() {
            self.pending_views.entry(time).or_default().extend(views);
        }
    }

    pub fn views_frontier(&mut self, frontier: Option<u64>) {
        self.views_frontier = frontier;
        self.advance();
    }

    fn advance(&mut self) {
        let limit = match (self.notes_frontier, self.views_frontier) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        loop {
            let next_note = self.pending_notes.keys().next().copied();
            let next_view = self.pending_views.keys().next().copied();
            let Some(t) = [next_note, next_view].into_iter().flatten().min() else {
                break;
            };
            if limit.is_some_and(|f| t >= f) {
                break;
            }
            if let Some(views) = self.pending_views.remove(&t) {
                for (player, view) in views {
                    self.seen.insert(player.clone());
                    match view {
                        Some(v) => self.views.insert(player, v),
                        None => self.views.remove(&player),
                    };
                }
            }
            if let Some(ns) = self.pending_notes.remove(&t) {
                for n in ns {
                    self.apply(n);
                }
            }
            self.as_of = Some(self.as_of.map_or(t, |a| a.max(t)));
        }
        match limit {
            Some(f) if f > 0 => {
                self.as_of = Some(self.as_of.map_or(f - 1, |a| a.max(f - 1)));
            }
            Some(_) => {}
            None => self.complete = true,
        }
    }

    fn apply(&mut self, n: Notification) {
        match n {
            Notification::Player {
                player, kind, item, ..
            } => {
                self.seen.insert(player.clone());
                let (sets, index) = match kind {
                    PlayerKind::Enter | PlayerKind::Exit => {
                        (&mut self.presence, &mut self.zone_players)
                    }
                    PlayerKind::Eligible | PlayerKind::Ineligible => {
                        (&mut self.eligible, &mut self.reward_players)
                    }
                };
                if matches!(kind, PlayerKind::Enter | PlayerKind::Eligible) {
                    sets.entry(player.clone()).or_default().insert(item);
                    index[item as usize].insert(player);
                } else {
                    if let Some(s) = sets.get_mut(&player) {
                        s.remove(&item);
                        if s.is_empty() {
                            sets.remove(&player);
                        }
                    }
                    index[item as usize].remove(&player);
                }
            }
            Notification::Occupancy { zone, count } => self.occupancy[zone as usize] = count,
        }
    }

    /// `(players with live state, players with a position, presence pairs,
    /// eligible pairs)`.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.views.len(),
            self.views.values().filter(|v| v.position.is_some()).count(),
            self.presence.values().map(BTreeSet::len).sum(),
            self.eligible.values().map(BTreeSet::len).sum(),
        )
    }
}
