//! The zone and reward state analysts query (who is in each zone, who is
//! eligible for each reward, occupancy), kept at one logical time.
//!
//! The notification sink (worker 0) hands it each completed time's
//! notifications and then its frontier; `as_of` is the latest complete
//! time. Applying a time is a few set updates per change under a write
//! lock held for that time; queries take a read lock for one lookup, so
//! neither waits long on the other. (A player's own state is read in place
//! from the facts operator: [`crate::dataflow::players`].)

use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::model::event::Id;
use crate::model::hunt::Hunt;
use crate::output::order::{Notification, PlayerKind};

/// Queryable state at `as_of`.
pub struct LiveState {
    pub hunt: Arc<Hunt>,
    /// The latest complete time applied, if any.
    pub as_of: Option<u64>,
    /// Every time is complete (a finished backfill).
    pub complete: bool,
    zone_players: Vec<FxHashSet<Id>>,
    reward_players: Vec<FxHashSet<Id>>,
    pub occupancy: Vec<i64>,
}

impl LiveState {
    pub fn new(hunt: Arc<Hunt>) -> Self {
        LiveState {
            zone_players: vec![FxHashSet::default(); hunt.zones.len()],
            reward_players: vec![FxHashSet::default(); hunt.rewards.len()],
            occupancy: vec![0; hunt.zones.len()],
            hunt,
            as_of: None,
            complete: false,
        }
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
                let set = match kind {
                    PlayerKind::Enter | PlayerKind::Exit => &mut self.zone_players,
                    PlayerKind::Eligible | PlayerKind::Ineligible => &mut self.reward_players,
                };
                let set = &mut set[*item as usize];
                if matches!(kind, PlayerKind::Enter | PlayerKind::Eligible) {
                    set.insert(player.clone());
                } else {
                    set.remove(player.as_str());
                }
            }
            Notification::Occupancy { zone, count } => self.occupancy[*zone as usize] = *count,
        }
    }

    /// The players in zone `z`, sorted.
    pub fn players_in(&self, z: u32) -> Vec<&str> {
        sorted(&self.zone_players[z as usize])
    }

    /// The players eligible for reward `r`, sorted.
    pub fn players_eligible(&self, r: u32) -> Vec<&str> {
        sorted(&self.reward_players[r as usize])
    }

    /// `(presence pairs, eligible pairs)`.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.zone_players.iter().map(FxHashSet::len).sum(),
            self.reward_players.iter().map(FxHashSet::len).sum(),
        )
    }
}

fn sorted(players: &FxHashSet<Id>) -> Vec<&str> {
    let mut out: Vec<&str> = players.iter().map(Id::as_str).collect();
    out.sort_unstable();
    out
}
