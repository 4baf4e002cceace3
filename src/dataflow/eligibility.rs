//! Reward eligibility: eligible(p, r) holds when every condition reward `r`
//! sets holds for player `p` — presence in its zone, each required clue
//! solved, its sensor reading in range, its active window open — and `p` has
//! not claimed `r`.
//!
//! Each player condition yields the pairs `(p, r)` for which it holds; the
//! pairs are counted and kept where the count equals the reward's number of
//! conditions. Windows are a collection `active(r)`, inserted at `from` and
//! retracted at `until`; claims are subtracted with an antijoin.

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::VecCollection;
use timely::dataflow::operators::ToStream;
use timely::dataflow::Scope;

use crate::model::event::Id;
use crate::model::hunt::Hunt;

/// `(player, number)` pairs.
pub type Pairs<'scope> = VecCollection<'scope, u64, (Id, u32), isize>;

/// The per-player inputs of eligibility, each a set of `(player, number)`.
pub struct Inputs<'scope> {
    /// presence(p, z)
    pub presence: Pairs<'scope>,
    /// solved(p, c)
    pub solved: Pairs<'scope>,
    /// The sensor condition of reward r holds for p: (p, r)
    pub sensor_ok: Pairs<'scope>,
    /// claimed(p, r)
    pub claimed: Pairs<'scope>,
}

/// Builds eligible(p, r).
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    inputs: Inputs<'scope>,
    hunt: Arc<Hunt>,
) -> Pairs<'scope> {
    let mut zone_rewards: Vec<Vec<u32>> = vec![Vec::new(); hunt.zones.len()];
    let mut clue_rewards: Vec<Vec<u32>> = vec![Vec::new(); hunt.clues.len()];
    for (r, reward) in hunt.rewards.iter().enumerate() {
        if let Some(z) = reward.zone {
            zone_rewards[z as usize].push(r as u32);
        }
        for &c in &reward.requires {
            clue_rewards[c as usize].push(r as u32);
        }
    }
    let required: Vec<isize> = hunt
        .rewards
        .iter()
        .map(|r| r.requires.len() as isize)
        .collect();
    // All of a reward's clues together make one condition of `met` below.
    let conditions: Vec<isize> = hunt
        .rewards
        .iter()
        .map(|r| {
            isize::from(r.zone.is_some())
                + isize::from(!r.requires.is_empty())
                + isize::from(r.sensor.is_some())
        })
        .collect();
    let windowed: Vec<bool> = hunt.rewards.iter().map(|r| r.active.is_some()).collect();

    let in_zone = inputs.presence.flat_map(move |(p, z)| {
        zone_rewards[z as usize]
            .iter()
            .map(|&r| (p.clone(), r))
            .collect::<Vec<_>>()
    });
    let all_solved = inputs
        .solved
        .flat_map(move |(p, c)| {
            clue_rewards[c as usize]
                .iter()
                .map(|&r| (p.clone(), r))
                .collect::<Vec<_>>()
        })
        .count_total()
        .filter(move |((_, r), n)| *n == required[*r as usize])
        .map(|(pair, _)| pair);
    let met = in_zone
        .concat(all_solved)
        .concat(inputs.sensor_ok)
        .count_total()
        .filter(move |((_, r), n)| *n == conditions[*r as usize])
        .map(|(pair, _)| pair);

    // Windows: active(r) on [from, until), fixed by the hunt.
    // Introduced once, on worker 0, as updates at future times.
    let mut windows: Vec<(u32, u64, isize)> = Vec::new();
    if scope.index() == 0 {
        for (r, reward) in hunt.rewards.iter().enumerate() {
            if let Some(w) = &reward.active {
                windows.push((r as u32, w.from.unwrap_or(0), 1));
                if let Some(until) = w.until {
                    windows.push((r as u32, until, -1));
                }
            }
        }
    }
    let active = windows.to_stream(scope).as_collection();
    let gated = {
        let windowed = windowed.clone();
        met.clone()
            .filter(move |(_, r)| windowed[*r as usize])
            .map(|(p, r)| (r, p))
            .semijoin(active)
            .map(|(r, p)| (p, r))
    };
    let open = met.filter(move |(_, r)| !windowed[*r as usize]);

    open.concat(gated)
        .map(|pair| (pair, ()))
        .antijoin(inputs.claimed)
        .map(|(pair, ())| pair)
}
