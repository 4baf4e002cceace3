//! Hunt versions (docs/spec.md §9): the hunt in effect is a function of
//! time. Each version is a whole hunt with an effective time; the start
//! hunt is in effect from time 0, and for equal times the later version
//! replaces the earlier.
//!
//! Items keep their identity by id across versions. The dataflow numbers
//! them: every zone, reward, clue and sensor id any version has is given a
//! number the first time a version names it ([`Dictionary`]), and numbers
//! are never reused, so records in the dataflow stay valid across versions.
//! A [`Version`] maps its hunt's own items to those numbers and carries its
//! rewards' conditions in them ([`Rule`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use super::event::Id;
use super::hunt::{Hunt, HuntText, SensorCondition, Window};

/// The ids of one kind of item, numbered in order of first appearance.
#[derive(Clone, Debug, Default)]
pub struct Names {
    ids: Vec<Id>,
    index: FxHashMap<Id, u32>,
    /// Each id's place among all of them in bytewise order, computed when
    /// first asked for after an id was added.
    ranks: OnceLock<Vec<u32>>,
}

impl Names {
    /// The number of `id`, given one if it has none.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.index.get(id) {
            return n;
        }
        let n = u32::try_from(self.ids.len()).expect("fewer than 2^32 items");
        self.ids.push(Id::from(id));
        self.index.insert(Id::from(id), n);
        self.ranks = OnceLock::new();
        n
    }

    /// The place of id `n` among all the ids in bytewise order: ranks
    /// compare as the ids do.
    pub fn rank(&self, n: u32) -> u32 {
        let ranks = self.ranks.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| self.ids[a as usize].cmp(&self.ids[b as usize]));
            let mut ranks = vec![0; order.len()];
            for (rank, &n) in order.iter().enumerate() {
                ranks[n as usize] = rank as u32;
            }
            ranks
        });
        ranks[n as usize]
    }

    /// The id numbered `n`.
    pub fn id(&self, n: u32) -> &Id {
        &self.ids[n as usize]
    }

    /// The number of `id`, if some version named it.
    pub fn number(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Every item id of every version, numbered.
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    pub zones: Names,
    pub rewards: Names,
    pub clues: Names,
    pub sensors: Names,
}

impl Dictionary {
    /// The names of the items of kind `item`.
    pub fn names(&self, item: Item) -> &Names {
        match item {
            Item::Zone => &self.zones,
            Item::Reward => &self.rewards,
        }
    }
}

/// A reward's conditions, in dictionary numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub reward: u32,
    pub priority: u8,
    pub zone: Option<u32>,
    /// Sorted and deduplicated.
    pub clues: Vec<u32>,
    pub sensor: Option<(u32, SensorCondition)>,
    pub window: Option<Window>,
}

impl Rule {
    /// Whether the player conditions hold for a player with these facts:
    /// presence in the zone, every clue solved, the sensor reading in
    /// range. (Window and claims are checked apart.)
    pub fn met(
        &self,
        in_zone: impl Fn(u32) -> bool,
        solved: impl Fn(u32) -> bool,
        reading: impl Fn(u32) -> Option<f64>,
    ) -> bool {
        self.zone.is_none_or(&in_zone)
            && self.clues.iter().all(|&c| solved(c))
            && self
                .sensor
                .is_none_or(|(s, cond)| reading(s).is_some_and(|v| cond.holds(v)))
    }
}

/// One version of the hunt.
#[derive(Debug)]
pub struct Version {
    /// Its place in the change log: 0 for the start hunt, then in the order
    /// changes were read (for equal effective times, the greater wins).
    pub seq: u64,
    pub effective: u64,
    pub hunt: Hunt,
    /// The dictionary number of each of the hunt's zones, by its own number.
    zones: Vec<u32>,
    clues: Vec<u32>,
    sensors: Vec<u32>,
    /// Its rewards, in the hunt's order (by id).
    pub rules: Vec<Rule>,
    /// By dictionary zone number: the rewards (indexes into `rules`) that
    /// need presence there.
    by_zone: FxHashMap<u32, Vec<u32>>,
    /// The rewards that need no zone.
    pub zoneless: Vec<u32>,
    /// Dictionary number → the hunt's own number, for zones and rewards.
    zone_local: FxHashMap<u32, u32>,
    reward_local: FxHashMap<u32, u32>,
}

impl Version {
    fn new(seq: u64, effective: u64, hunt: Hunt, dict: &mut Dictionary) -> Self {
        let zones: Vec<u32> = hunt
            .zones
            .iter()
            .map(|z| dict.zones.intern(&z.id))
            .collect();
        let clues: Vec<u32> = hunt.clues.iter().map(|c| dict.clues.intern(c)).collect();
        let sensors: Vec<u32> = hunt
            .sensors
            .iter()
            .map(|s| dict.sensors.intern(s))
            .collect();
        let mut rules = Vec::with_capacity(hunt.rewards.len());
        let mut by_zone: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let mut zoneless = Vec::new();
        for (i, r) in hunt.rewards.iter().enumerate() {
            let zone = r.zone.map(|z| zones[z as usize]);
            let mut rule_clues: Vec<u32> = r.requires.iter().map(|&c| clues[c as usize]).collect();
            rule_clues.sort_unstable();
            rule_clues.dedup();
            match zone {
                Some(z) => by_zone.entry(z).or_default().push(i as u32),
                None => zoneless.push(i as u32),
            }
            rules.push(Rule {
                reward: dict.rewards.intern(&r.id),
                priority: r.priority,
                zone,
                clues: rule_clues,
                sensor: r.sensor.map(|c| (sensors[c.sensor as usize], c)),
                window: r.active,
            });
        }
        let zone_local = zones
            .iter()
            .enumerate()
            .map(|(i, &g)| (g, i as u32))
            .collect();
        let reward_local = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.reward, i as u32))
            .collect();
        Version {
            seq,
            effective,
            hunt,
            zones,
            clues,
            sensors,
            rules,
            by_zone,
            zoneless,
            zone_local,
            reward_local,
        }
    }

    /// Pushes onto `out` the dictionary number of every zone containing
    /// the point, ascending.
    pub fn zones_at(&self, lat: f64, lon: f64, scratch: &mut Vec<u32>, out: &mut Vec<u32>) {
        self.hunt.zones_at(lat, lon, scratch);
        out.extend(scratch.iter().map(|&z| self.zones[z as usize]));
        out.sort_unstable();
    }

    /// The rules (indexes into `rules`) of the rewards that need presence
    /// in zone `z` (a dictionary number).
    pub fn rewards_in(&self, z: u32) -> &[u32] {
        self.by_zone.get(&z).map_or(&[], |v| v.as_slice())
    }

    /// The dictionary number of clue `id`, if this version knows it.
    pub fn clue(&self, id: &str) -> Option<u32> {
        self.hunt.clue_number(id).map(|c| self.clues[c as usize])
    }

    /// The dictionary number of sensor `id`, if this version knows it.
    pub fn sensor(&self, id: &str) -> Option<u32> {
        self.hunt
            .sensor_number(id)
            .map(|s| self.sensors[s as usize])
    }

    /// The dictionary number of reward `id`, if this version has it.
    pub fn reward(&self, id: &str) -> Option<u32> {
        self.hunt
            .reward_number(id)
            .map(|r| self.rules[r as usize].reward)
    }

    /// The rule of reward `r` (a dictionary number), if this version has it.
    pub fn rule(&self, r: u32) -> Option<&Rule> {
        self.reward_local.get(&r).map(|&i| &self.rules[i as usize])
    }

    /// The priority of zone `z` (a dictionary number), if this version has
    /// it.
    pub fn zone_priority(&self, z: u32) -> Option<u8> {
        self.zone_local
            .get(&z)
            .map(|&i| self.hunt.zones[i as usize].priority)
    }

    /// The dictionary numbers of this version's zones, in id order.
    pub fn zone_numbers(&self) -> &[u32] {
        &self.zones
    }
}

/// A version taking effect, as the dataflow carries it to every worker:
/// its place in the change log, its effective time and its text (already
/// validated where it was read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub seq: u64,
    pub effective: u64,
    pub text: HuntText,
}

/// What kind of item a number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Zone,
    Reward,
}

/// Every version known, by effective time, and the dictionary.
#[derive(Debug)]
pub struct Versions {
    dict: Dictionary,
    by_time: BTreeMap<u64, Arc<Version>>,
    /// Every `seq` added.
    seqs: BTreeSet<u64>,
    /// Every version added after the start hunt, in the order added (also
    /// those a later version of the same time replaced): the dictionary's
    /// numbers follow this order.
    added: Vec<Arc<Version>>,
}

/// The versions of a job, shared by its operators and the API.
pub type SharedVersions = Arc<RwLock<Versions>>;

impl Versions {
    /// The start hunt, in effect from time 0.
    pub fn new(start: Hunt) -> Self {
        let mut dict = Dictionary::default();
        let first = Arc::new(Version::new(0, 0, start, &mut dict));
        Versions {
            dict,
            by_time: BTreeMap::from([(0, first)]),
            seqs: BTreeSet::from([0]),
            added: Vec::new(),
        }
    }

    pub fn shared(self) -> SharedVersions {
        Arc::new(RwLock::new(self))
    }

    /// Adds version `seq` in effect from `effective`, unless a version of
    /// that `seq` was added already. It replaces a version of the same
    /// effective time with a smaller `seq`. Returns whether it was added.
    pub fn add(&mut self, seq: u64, effective: u64, hunt: Hunt) -> bool {
        if !self.seqs.insert(seq) {
            return false;
        }
        if self.by_time.get(&effective).is_some_and(|v| v.seq > seq) {
            // A later record of the same time was added first.
            return false;
        }
        let version = Arc::new(Version::new(seq, effective, hunt, &mut self.dict));
        self.added.push(version.clone());
        self.by_time.insert(effective, version);
        true
    }

    /// Adds the version of `notice` (see [`Versions::add`]); a text that
    /// does not load (it was checked where it was read) is reported and
    /// left out.
    pub fn add_notice(&mut self, notice: &Notice) -> bool {
        if self.contains(notice.seq) {
            return false;
        }
        let path = std::path::Path::new("hunt change");
        match Hunt::parse(path, notice.text.clone()) {
            Ok(hunt) => self.add(notice.seq, notice.effective, hunt),
            Err(e) => {
                eprintln!("huntflow: hunt change {}: {e}", notice.seq);
                false
            }
        }
    }

    /// The notice of every version added after the start hunt, in the
    /// order added: adding them in this order to the start hunt's
    /// [`Versions`] gives every item the same number again.
    pub fn notices(&self) -> Vec<Notice> {
        self.added
            .iter()
            .map(|v| Notice {
                seq: v.seq,
                effective: v.effective,
                text: v.hunt.text.clone(),
            })
            .collect()
    }

    /// Whether version `seq` was added already.
    pub fn contains(&self, seq: u64) -> bool {
        self.seqs.contains(&seq)
    }

    /// The version in effect at `t`.
    pub fn at(&self, t: u64) -> &Arc<Version> {
        self.by_time
            .range(..=t)
            .next_back()
            .map(|(_, v)| v)
            .expect("a version from time 0")
    }

    /// Every version, by effective time.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Version>> {
        self.by_time.values()
    }

    /// The versions in effect from after `t`.
    pub fn after(&self, t: u64) -> impl Iterator<Item = &Arc<Version>> {
        self.by_time
            .range((std::ops::Bound::Excluded(t), std::ops::Bound::Unbounded))
            .map(|(_, v)| v)
    }

    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    /// The priority of item `n` in a notification at time `t`: its priority
    /// in the version in effect at `t`, or, when that version does not have
    /// it, in the latest earlier version that had it.
    pub fn priority(&self, item: Item, n: u32, t: u64) -> u8 {
        let of = |v: &Version| match item {
            Item::Zone => v.zone_priority(n),
            Item::Reward => v.rule(n).map(|r| r.priority),
        };
        self.by_time
            .range(..=t)
            .rev()
            .find_map(|(_, v)| of(v))
            .unwrap_or(0)
    }

    /// The version of `seq`, if it is in effect at some time.
    pub fn get(&self, seq: u64) -> Option<&Arc<Version>> {
        self.by_time.values().find(|v| v.seq == seq)
    }
}

/// The active intervals of every reward under `versions` (in effective
/// order): reward `r` of a version in effect on `[T_k, T_k+1)` with window
/// `[from, until)` is active on `[max(from, T_k), min(until, T_k+1))`. As
/// updates `(reward, time) → ±1`, consolidated.
pub fn activity<'a>(
    versions: impl IntoIterator<Item = &'a Arc<Version>>,
) -> BTreeMap<(u32, u64), i64> {
    let mut updates: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    let versions: Vec<&Arc<Version>> = versions.into_iter().collect();
    for (i, v) in versions.iter().enumerate() {
        let end = versions.get(i + 1).map(|next| next.effective);
        for rule in &v.rules {
            let w = rule.window.unwrap_or(Window {
                from: None,
                until: None,
            });
            let from = w.from.unwrap_or(0).max(v.effective);
            let until = match (w.until, end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if until.is_some_and(|u| u <= from) {
                continue;
            }
            *updates.entry((rule.reward, from)).or_default() += 1;
            if let Some(u) = until {
                *updates.entry((rule.reward, u)).or_default() -= 1;
            }
        }
    }
    updates.retain(|_, d| *d != 0);
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Hunt {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml");
        Hunt::load(&path).expect("demo hunt loads")
    }

    /// The demo hunt with one more circle zone.
    fn with_zone(id: &str) -> Hunt {
        let mut text = demo().text.clone();
        text.toml += &format!(
            "\n[[zones]]\nid = \"{id}\"\npriority = 1\ncircle = {{ lat = 48.856, lon = 2.355, radius_m = 50.0 }}\n"
        );
        Hunt::parse(std::path::Path::new("test"), text).expect("hunt loads")
    }

    #[test]
    fn notices_rebuild_the_same_numbers() {
        let mut versions = Versions::new(demo());
        assert!(versions.add(1, 100, with_zone("b")));
        // Replaces version 1 (same time, later record): its zone keeps its number.
        assert!(versions.add(2, 100, with_zone("c")));
        // Takes effect earlier, learnt later.
        assert!(versions.add(3, 50, with_zone("d")));
        let notices = versions.notices();
        let seqs: Vec<u64> = notices.iter().map(|n| n.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let mut again = Versions::new(demo());
        for n in &notices {
            assert!(again.add_notice(n));
        }
        for id in ["b", "c", "d"] {
            let number = versions.dictionary().zones.number(id);
            assert!(number.is_some());
            assert_eq!(again.dictionary().zones.number(id), number, "zone {id}");
        }
        assert_eq!(again.at(100).seq, 2);
        assert_eq!(again.at(60).seq, 3);
    }
}
