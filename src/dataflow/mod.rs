//! The dataflow: accepted events in, the changes of presence, eligibility
//! and occupancy out, each at its logical time (docs/spec.md §5).
//!
//! ```text
//! events ─exchange(player)─► facts ─┬─ presence(p,z) ──────────────┬─► enter / exit
//!                                   │                              └─ count by z ─► occupancy
//!                                   ├─ solved(p,c) ─┐
//!                                   ├─ sensor_ok(p,r)├─ eligibility ◄─ active(r) windows
//!                                   └─ claimed(p,r) ─┘      │
//!                                                           └────────► eligible / ineligible
//! ```
//!
//! [`build`] is the one entry point; each piece has a `build` of its own:
//! [`facts`] (per-player state, [`player_state`], kept in a
//! [`player_store`] the API reads in place), [`eligibility`] and
//! [`occupancy`].
//!
//! # Example
//!
//! Feed two positions of one player by hand and read the changes:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use huntflow::dataflow::{self, Change, Config};
//! use huntflow::model::event::{Event, Fact};
//! use huntflow::model::hunt::Hunt;
//! use timely::dataflow::operators::{Input, Inspect, Probe};
//!
//! let dir = std::env::temp_dir().join(format!("huntflow-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("hunt.toml");
//! std::fs::write(&path, r#"
//! [[zones]]
//! id = "fountain"
//! circle = { lat = 48.8530, lon = 2.3499, radius_m = 40.0 }
//! "#).unwrap();
//! let hunt = Hunt::load(&path).unwrap();
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let out = seen.clone();
//! timely::execute_directly(move |worker| {
//!     let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
//!         let (input, events) = scope.new_input();
//!         let built = dataflow::build(events, None, Config::new(hunt.clone()));
//!         let probe = built
//!             .changes
//!             .inner
//!             .inspect(move |(change, t, diff)| out.lock().unwrap().push((change.clone(), *t, *diff)))
//!             .probe()
//!             .0;
//!         (input, probe)
//!     });
//!     let at = |ts: u64, lat: f64| Event {
//!         ts,
//!         player: "p1".into(),
//!         fact: Fact::Position { id: format!("e{ts}").into(), lat, lon: 2.3499, ttl: None },
//!     };
//!     input.send(at(1_000, 48.8530)); // inside the fountain
//!     input.send(at(2_000, 48.8600)); // far away
//!     input.advance_to(3_000);
//!     while probe.less_than(&3_000) {
//!         worker.step();
//!     }
//! });
//! let mut seen = seen.lock().unwrap().clone();
//! seen.sort_by_key(|(_, t, d)| (*t, *d));
//! assert_eq!(seen, vec![
//!     (Change::Presence("p1".into(), 0), 1_000, 1),
//!     (Change::Occupancy(0, 1), 1_000, 1),
//!     (Change::Presence("p1".into(), 0), 2_000, -1),
//!     (Change::Occupancy(0, 1), 2_000, -1),
//! ]);
//! ```

pub(crate) mod by_time;
pub mod eligibility;
pub mod facts;
pub mod occupancy;
mod pending;
pub mod player_state;
pub mod player_store;

use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Broadcast, Partition, ToStream};
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, Stream};

use crate::model::event::{Event, Id};
use crate::model::hunt::Hunt;
use crate::model::versions::{Notice, SharedVersions, Versions};
use facts::{FactsHandle, Restore};
use player_store::PlayerStore;

/// One change of an output collection, items by dictionary number; the
/// sink turns consolidated changes into notifications.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// presence(player, zone)
    Presence(Id, u32),
    /// eligible(player, reward)
    Eligible(Id, u32),
    /// occupancy(zone) = count
    Occupancy(u32, i64),
}

/// What the dataflow is built with.
pub struct Config {
    versions: SharedVersions,
    slice: usize,
    restore: Option<Restore>,
    players: Option<Arc<PlayerStore>>,
}

impl Config {
    /// The dataflow of `hunt` alone, from no state, with the default slice.
    pub fn new(hunt: Hunt) -> Self {
        Self::versions(Versions::new(hunt).shared())
    }

    /// The dataflow of the hunt versions in `versions` (its start state;
    /// versions taking effect later arrive as notices, see [`build`]).
    pub fn versions(versions: SharedVersions) -> Self {
        Config {
            versions,
            slice: facts::DEFAULT_SLICE,
            restore: None,
            players: None,
        }
    }

    /// Events and timers the facts operator handles per activation at most:
    /// smaller slices mean smaller bursts downstream (the output is the same).
    pub fn slice(mut self, slice: usize) -> Self {
        self.slice = slice;
        self
    }

    /// Starts from the per-player state of a snapshot.
    pub fn restore(mut self, restore: Option<Restore>) -> Self {
        self.restore = restore;
        self
    }

    /// Keeps the per-player state in `players` (where the API reads it).
    pub fn players(mut self, players: Arc<PlayerStore>) -> Self {
        self.players = Some(players);
        self
    }
}

/// What reaches every worker at its time besides the events: a hunt
/// version taking effect (at its effective time), or the frontier of a
/// snapshot (at that frontier), where each stateful operator captures its
/// state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Control {
    Version(Notice),
    Snapshot { epoch: u64, at: u64 },
}

/// The built dataflow: its changes, a handle on the per-player state (for
/// snapshots), and the control records every worker received.
pub struct Built<'scope> {
    pub changes: VecCollection<'scope, u64, Change, isize>,
    pub facts: FactsHandle,
    /// What the facts operator waits on when it has sent much that is not
    /// complete yet: the changes, and whatever a sink attaches it to.
    pub done: ProbeHandle<u64>,
    pub control: Stream<'scope, u64, Vec<Control>>,
}

/// Builds the whole dataflow over accepted events and, when the hunt can
/// change or snapshots are taken while the dataflow runs, the [`Control`]
/// records (each at its time, on any worker: they are broadcast).
pub fn build<'scope>(
    events: Stream<'scope, u64, Vec<Event>>,
    control: Option<Stream<'scope, u64, Vec<Control>>>,
    config: Config,
) -> Built<'scope> {
    let scope = events.scope();
    let Config {
        versions,
        slice,
        restore,
        players,
    } = config;
    let control = control
        .unwrap_or_else(|| Vec::<Control>::new().to_stream(scope))
        .broadcast();
    let players = players.unwrap_or_else(|| Arc::new(PlayerStore::new(false)));
    // The facts operator keeps within a bound of the completed changes.
    let done = ProbeHandle::new();
    let (facts, handle) = facts::build(
        events,
        control.clone(),
        versions.clone(),
        slice,
        restore,
        players,
        done.clone(),
    );
    // Split by kind, moving each record to exactly one stream.
    let mut parts = facts
        .partition(2, |((kind, p, n), t, r)| (kind as u64, ((p, n), t, r)))
        .into_iter()
        .map(|part| part.as_collection());
    let presence = parts.next().expect("presence");
    let met = parts.next().expect("met");
    let eligible = eligibility::build(met, control.clone(), versions);
    let occupancy = occupancy::build(presence.clone());

    let changes = presence
        .map(|(p, z)| Change::Presence(p, z))
        .concat(eligible.map(|(p, r)| Change::Eligible(p, r)))
        .concat(occupancy.map(|(z, n)| Change::Occupancy(z, n)));
    let changes = changes.inner.probe_with(&done).as_collection();
    Built {
        changes,
        facts: handle,
        done,
        control,
    }
}
