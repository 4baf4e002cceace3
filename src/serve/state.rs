//! The zone and reward state analysts query (who is in each zone, who is
//! eligible for each reward, occupancy), kept at one logical time.
//!
//! The notification sink (worker 0) hands it each completed time's
//! notifications and then its frontier; `as_of` is the latest complete
//! time. Applying a time is a few set updates per change under a write
//! lock held for that time; queries take a read lock for one lookup, so
//! neither waits long on the other. (A player's own state is read in place
//! from the facts operator: [`crate::dataflow::player_store`].)

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::event::Id;
use crate::output::order::{Notification, PlayerKind};

/// Queryable state at `as_of`, items by id.
#[derive(Default)]
pub struct LiveState {
    /// The latest complete time applied, if any.
    pub as_of: Option<u64>,
    /// Every time is complete (a finished backfill).
    pub complete: bool,
    zone_players: FxHashMap<Id, FxHashSet<Id>>,
    reward_players: FxHashMap<Id, FxHashSet<Id>>,
    occupancy: FxHashMap<Id, i64>,
}

impl LiveState {
    pub fn new() -> Self {
        LiveState::default()
    }

    fn set_as_of(&mut self, t: u64) {
        if self.as_of.is_none_or(|a| a < t) {
            self.as_of = Some(t);
        }
    }

    /// The notifications of completed time `time`, in the contract's order.
    pub fn notes(&mut self, time: u64, ns: &[Notification]) {
        for n in ns {
            self.apply(n);
        }
        self.set_as_of(time);
    }

    /// Every time below `frontier` is complete (`None`: every time).
    pub fn frontier(&mut self, frontier: Option<u64>) {
        match frontier {
            Some(f) if f > 0 => self.set_as_of(f - 1),
            Some(_) => {}
            None => self.complete = true,
        }
    }

    fn apply(&mut self, n: &Notification) {
        match n {
            Notification::Player {
                player, kind, item, ..
            } => {
                let sets = match kind {
                    PlayerKind::Enter | PlayerKind::Exit => &mut self.zone_players,
                    PlayerKind::Eligible | PlayerKind::Ineligible => &mut self.reward_players,
                };
                if matches!(kind, PlayerKind::Enter | PlayerKind::Eligible) {
                    sets.entry(item.clone()).or_default().insert(player.clone());
                } else if let Some(set) = sets.get_mut(item.as_str()) {
                    set.remove(player.as_str());
                }
            }
            Notification::Occupancy { zone, count } => {
                self.occupancy.insert(zone.clone(), *count);
            }
        }
    }

    /// The occupancy of zone `z`.
    pub fn occupancy(&self, z: &str) -> i64 {
        self.occupancy.get(z).copied().unwrap_or(0)
    }

    /// The players in zone `z`, sorted.
    pub fn players_in(&self, z: &str) -> Vec<&str> {
        self.zone_players.get(z).map(sorted).unwrap_or_default()
    }

    /// The players eligible for reward `r`, sorted.
    pub fn players_eligible(&self, r: &str) -> Vec<&str> {
        self.reward_players.get(r).map(sorted).unwrap_or_default()
    }

    /// `(presence pairs, eligible pairs)`.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.zone_players.values().map(FxHashSet::len).sum(),
            self.reward_players.values().map(FxHashSet::len).sum(),
        )
    }
}

fn sorted(players: &FxHashSet<Id>) -> Vec<&str> {
    let mut out: Vec<&str> = players.iter().map(Id::as_str).collect();
    out.sort_unstable();
    out
}
