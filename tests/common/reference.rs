//! A naive reference model of docs/spec.md §2, §3, §5, §6 and §9, used to check the engine.
//!
//! It shares nothing with the engine except the hunt loader and its geometry:
//! validation is written afresh over `serde_json::Value`, and every derived
//! collection is recomputed from scratch at every time where something could
//! change, then diffed against the previous such time.
//!
//! Hunt versions (§9): the change log is validated record by record; the
//! accepted records make a map from effective time to hunt (a later record
//! replaces an earlier one with the same time, time 0 replaces the start
//! hunt). Each event is interpreted once, by the version in effect at its
//! `ts` (default TTLs; a clue, reward or sensor that version does not know
//! turns the event into one without effect). The state at time `t` is
//! computed with the version in effect at `t` and keyed by ids, so that the
//! diff across an effective time compares items by identity; effective times
//! are among the times examined.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use huntflow::model::hunt::{Hunt, HuntText};
use serde_json::{Map, Value};

/// What the reference model computes for a set of partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefOutput {
    /// docs/spec.md §6 notifications as JSON Lines (no progress records).
    pub notifications: String,
    /// Counted (non-blank) lines.
    pub read: u64,
    pub accepted: u64,
    /// Only reasons with a non-zero count.
    pub rejected: BTreeMap<String, u64>,
    /// Change records accepted and rejected; `None` without a change log.
    pub hunt_changes: Option<ChangeCounts>,
    /// Every reject in the order of a backfill's rejects file (docs/spec.md §3, §9): the
    /// change log's in line order, then the events' by the partition frontier when read,
    /// then partition, then line.
    pub rejects: Vec<RefReject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeCounts {
    pub accepted: u64,
    pub rejected: u64,
}

/// Where a rejected record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectSource {
    /// The change log.
    Changes,
    /// Input partition `i` (in the order given).
    Partition(usize),
}

/// One rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefReject {
    pub reason: String,
    pub source: RejectSource,
    /// 1-based line number within its source.
    pub line: u64,
}

impl RefOutput {
    /// The summary a backfill writes (docs/spec.md §8, §9), without the newline.
    pub fn summary_json(&self) -> String {
        const ORDER: [&str; 8] = [
            "malformed",
            "missing_field",
            "bad_field",
            "unknown_type",
            "bad_coordinates",
            "inaccurate",
            "late",
            "duplicate",
        ];
        let reasons: Vec<String> = ORDER
            .iter()
            .filter_map(|r| self.rejected.get(*r).map(|n| format!("\"{r}\":{n}")))
            .collect();
        let mut s = format!(
            "{{\"read\":{},\"accepted\":{},\"rejected\":{{{}}}",
            self.read,
            self.accepted,
            reasons.join(",")
        );
        if let Some(c) = self.hunt_changes {
            s.push_str(&format!(
                ",\"hunt_changes\":{{\"accepted\":{},\"rejected\":{}}}",
                c.accepted, c.rejected
            ));
        }
        s.push('}');
        s
    }
}

/// The versions of the hunt: effective time -> hunt, the start hunt at 0 unless replaced.
pub struct Versions {
    list: Vec<(u64, Hunt)>,
}

impl Versions {
    /// The index of the version in effect at `t`.
    fn index_at(&self, t: u64) -> usize {
        self.list.partition_point(|(start, _)| *start <= t) - 1
    }

    fn at(&self, t: u64) -> &Hunt {
        &self.list[self.index_at(t)].1
    }

    /// docs/spec.md §9 priority: the item's priority in the version in effect at `t`, else in
    /// the latest earlier version that has it.
    fn priority(&self, t: u64, lookup: impl Fn(&Hunt) -> Option<u8>) -> u8 {
        let k = self.index_at(t);
        self.list[..=k]
            .iter()
            .rev()
            .find_map(|(_, h)| lookup(h))
            .expect("an item that was present is in some earlier version")
    }
}

/// An accepted event reduced to what §5 needs.
#[derive(Debug, Clone)]
struct Fact {
    id: String,
    ts: u64,
    /// First time at which the fact no longer holds; `None` = never.
    expiry: Option<u64>,
    kind: FactKind,
}

#[derive(Debug, Clone)]
enum FactKind {
    Position { lat: f64, lon: f64 },
    Sensor { sensor: String, value: f64 },
    Solve { clue: String },
    Claim { reward: String },
    Other,
}

/// A record that passed the checks that do not depend on earlier records.
struct Valid {
    player: String,
    fact: Fact,
}

/// The fact an event makes under the version in effect at its `ts` (docs/spec.md §9), and its
/// expiry: that version's default TTLs, and no effect for a clue, reward or sensor it does not
/// know. `body` is what the event says.
fn interpret(hunt: &Hunt, ts: u64, ttl: Option<u64>, body: FactKind) -> (FactKind, Option<u64>) {
    // An expiry beyond u64::MAX saturates: such a fact ends at the last representable time.
    let expiry = |ttl: Option<u64>| ttl.map(|ttl| ts.saturating_add(ttl));
    match body {
        FactKind::Position { lat, lon } => (
            FactKind::Position { lat, lon },
            expiry(Some(ttl.unwrap_or(hunt.position_ttl_ms))),
        ),
        FactKind::Sensor { sensor, value } if hunt.sensors.contains(&sensor) => (
            FactKind::Sensor { sensor, value },
            expiry(Some(ttl.unwrap_or(hunt.sensor_ttl_ms))),
        ),
        FactKind::Solve { clue } if hunt.clues.contains(&clue) => {
            (FactKind::Solve { clue }, expiry(ttl))
        }
        FactKind::Claim { reward } if hunt.rewards.iter().any(|r| r.id == reward) => {
            (FactKind::Claim { reward }, None)
        }
        _ => (FactKind::Other, None),
    }
}

const MAX_LINE: usize = 64 * 1024;
const MAX_TS: u64 = 1 << 53;

fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// A field's value, with `null` counted as absent.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An integer literal that fits in u64 (negative integers and non-integers are `None`).
fn as_uint(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) if !n.is_f64() => n.as_u64(),
        _ => None,
    }
}

fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn as_bounded_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) if (1..=128).contains(&s.len()) => Some(s),
        _ => None,
    }
}

/// docs/spec.md §3 checks up to and including accuracy; the reason code on failure. The
/// event is interpreted by the version in effect at its `ts`.
fn validate(
    versions: &Versions,
    max_accuracy: Option<f64>,
    line: &[u8],
) -> Result<Valid, &'static str> {
    if line.len() > MAX_LINE {
        return Err("malformed");
    }
    let text = std::str::from_utf8(line).map_err(|_| "malformed")?;
    let value: Value = serde_json::from_str(text).map_err(|_| "malformed")?;
    let Value::Object(obj) = value else {
        return Err("malformed");
    };
    for key in ["id", "type", "player", "ts"] {
        if field(&obj, key).is_none() {
            return Err("missing_field");
        }
    }
    let id = as_bounded_str(field(&obj, "id").unwrap()).ok_or("bad_field")?;
    let Value::String(kind) = field(&obj, "type").unwrap() else {
        return Err("bad_field");
    };
    let player = as_bounded_str(field(&obj, "player").unwrap()).ok_or("bad_field")?;
    let ts = as_uint(field(&obj, "ts").unwrap())
        .filter(|ts| *ts <= MAX_TS)
        .ok_or("bad_field")?;
    let ttl = match field(&obj, "ttl_ms") {
        None => None,
        Some(v) => Some(as_uint(v).filter(|t| *t >= 1).ok_or("bad_field")?),
    };
    if let Some(v) = field(&obj, "priority") {
        as_uint(v).filter(|p| *p <= 9).ok_or("bad_field")?;
    }
    let own: &[&str] = match kind.as_str() {
        "position" => &["lat", "lon"],
        "action" => &["action", "target"],
        "sensor" => &["sensor", "value"],
        _ => return Err("unknown_type"),
    };
    for key in own {
        if field(&obj, key).is_none() {
            return Err("missing_field");
        }
    }
    let body = match kind.as_str() {
        "position" => {
            let lat = as_num(field(&obj, "lat").unwrap()).ok_or("bad_field")?;
            let lon = as_num(field(&obj, "lon").unwrap()).ok_or("bad_field")?;
            let accuracy = match field(&obj, "accuracy_m") {
                None => None,
                Some(v) => Some(as_num(v).filter(|a| *a >= 0.0).ok_or("bad_field")?),
            };
            let lat_ok = lat.is_finite() && (-90.0..=90.0).contains(&lat);
            let lon_ok = lon.is_finite() && (-180.0..=180.0).contains(&lon);
            if !lat_ok || !lon_ok {
                return Err("bad_coordinates");
            }
            if let (Some(a), Some(max)) = (accuracy, max_accuracy) {
                if a > max {
                    return Err("inaccurate");
                }
            }
            FactKind::Position { lat, lon }
        }
        "action" => {
            let Value::String(action) = field(&obj, "action").unwrap() else {
                return Err("bad_field");
            };
            let Value::String(target) = field(&obj, "target").unwrap() else {
                return Err("bad_field");
            };
            match action.as_str() {
                "solve" => FactKind::Solve {
                    clue: target.clone(),
                },
                "claim" => FactKind::Claim {
                    reward: target.clone(),
                },
                _ => FactKind::Other,
            }
        }
        _ => {
            let Value::String(sensor) = field(&obj, "sensor").unwrap() else {
                return Err("bad_field");
            };
            let value = as_num(field(&obj, "value").unwrap())
                .filter(|v| v.is_finite())
                .ok_or("bad_field")?;
            FactKind::Sensor {
                sensor: sensor.clone(),
                value,
            }
        }
    };
    let (kind, expiry) = interpret(versions.at(ts), ts, ttl, body);
    Ok(Valid {
        player: player.to_string(),
        fact: Fact {
            id: id.to_string(),
            ts,
            expiry,
            kind,
        },
    })
}

/// Per-player accepted facts over all partitions.
type Facts = BTreeMap<String, Vec<Fact>>;

/// Reads every partition per docs/spec.md §2/§3 and returns the accepted facts; appends the
/// rejects to `out.rejects` in rejects-file order.
fn ingest(start: &Hunt, versions: &Versions, partitions: &[Vec<u8>], out: &mut RefOutput) -> Facts {
    let mut facts = Facts::new();
    // (frontier when read, partition, line, reason)
    let mut rejects: Vec<(u64, usize, u64, &'static str)> = Vec::new();
    let lateness = start.max_lateness_ms;
    for (partition, data) in partitions.iter().enumerate() {
        let mut max_ts: Option<u64> = None;
        let mut accepted_ids: Vec<(String, u64)> = Vec::new();
        for (number, line) in data.split(|b| *b == b'\n').enumerate() {
            if is_blank(line) {
                continue;
            }
            out.read += 1;
            let result = validate(versions, start.max_accuracy_m, line).and_then(|valid| {
                if let Some(m) = max_ts {
                    if m.checked_sub(lateness)
                        .is_some_and(|bound| valid.fact.ts < bound)
                    {
                        return Err("late");
                    }
                }
                let frontier = max_ts.map_or(0, |m| m.saturating_sub(lateness));
                let dup = accepted_ids
                    .iter()
                    .any(|(id, ts)| *id == valid.fact.id && *ts >= frontier);
                if dup {
                    return Err("duplicate");
                }
                Ok(valid)
            });
            match result {
                Ok(valid) => {
                    out.accepted += 1;
                    let ts = valid.fact.ts;
                    max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
                    accepted_ids.push((valid.fact.id.clone(), ts));
                    facts.entry(valid.player).or_default().push(valid.fact);
                }
                Err(reason) => {
                    *out.rejected.entry(reason.to_string()).or_default() += 1;
                    let frontier = max_ts.map_or(0, |m| m.saturating_sub(lateness));
                    rejects.push((frontier, partition, number as u64 + 1, reason));
                }
            }
        }
    }
    rejects.sort_by_key(|(frontier, partition, line, _)| (*frontier, *partition, *line));
    out.rejects.extend(
        rejects
            .into_iter()
            .map(|(_, partition, line, reason)| RefReject {
                reason: reason.to_string(),
                source: RejectSource::Partition(partition),
                line,
            }),
    );
    facts
}

/// Total order used to pick "the greatest (ts, id)"; equal (ts, id) pairs
/// (possible only across partitions) fall back to the remaining content so
/// the choice never depends on arrival order.
fn later(a: &Fact, b: &Fact) -> bool {
    let key = |f: &Fact| match &f.kind {
        FactKind::Position { lat, lon } => (*lat, *lon),
        FactKind::Sensor { value, .. } => (*value, 0.0),
        _ => (0.0, 0.0),
    };
    let (a1, a2) = key(a);
    let (b1, b2) = key(b);
    (a.ts, &a.id)
        .cmp(&(b.ts, &b.id))
        .then(a1.total_cmp(&b1))
        .then(a2.total_cmp(&b2))
        .then(
            a.expiry
                .map_or(u128::MAX, u128::from)
                .cmp(&b.expiry.map_or(u128::MAX, u128::from)),
        )
        .is_gt()
}

fn live(f: &Fact, t: u64) -> bool {
    f.expiry.is_none_or(|e| t < e)
}

/// The derived collections at one time, keyed by ids so that states under two versions
/// compare item by item.
#[derive(Default, PartialEq)]
struct State {
    /// (player, zone id)
    presence: BTreeSet<(String, String)>,
    /// (player, reward id)
    eligible: BTreeSet<(String, String)>,
    /// zone id -> number of players present
    occupancy: BTreeMap<String, u64>,
}

/// The state at `t` under `hunt`, the version in effect at `t`.
fn state_at(hunt: &Hunt, facts: &Facts, t: u64) -> State {
    let mut state = State::default();
    let mut zones = Vec::new();
    for (player, list) in facts {
        let visible = || list.iter().filter(|f| f.ts <= t);
        // current position
        let mut current: Option<&Fact> = None;
        for f in visible().filter(|f| matches!(f.kind, FactKind::Position { .. })) {
            if current.is_none_or(|c| later(f, c)) {
                current = Some(f);
            }
        }
        zones.clear();
        if let Some(
            f @ Fact {
                kind: FactKind::Position { lat, lon },
                ..
            },
        ) = current
        {
            if live(f, t) {
                hunt.zones_at(*lat, *lon, &mut zones);
            }
        }
        let here: BTreeSet<&str> = zones
            .iter()
            .map(|z| hunt.zones[*z as usize].id.as_str())
            .collect();
        // readings
        let mut latest: BTreeMap<&str, &Fact> = BTreeMap::new();
        for f in visible() {
            if let FactKind::Sensor { sensor, .. } = &f.kind {
                let slot = latest.entry(sensor.as_str()).or_insert(f);
                if later(f, slot) {
                    *slot = f;
                }
            }
        }
        let readings: BTreeMap<&str, f64> = latest
            .into_iter()
            .filter(|(_, f)| live(f, t))
            .filter_map(|(s, f)| match f.kind {
                FactKind::Sensor { value, .. } => Some((s, value)),
                _ => None,
            })
            .collect();
        let solved: BTreeSet<&str> = visible()
            .filter(|f| live(f, t))
            .filter_map(|f| match &f.kind {
                FactKind::Solve { clue } => Some(clue.as_str()),
                _ => None,
            })
            .collect();
        let claimed: BTreeSet<&str> = visible()
            .filter_map(|f| match &f.kind {
                FactKind::Claim { reward } => Some(reward.as_str()),
                _ => None,
            })
            .collect();
        for z in &here {
            state.presence.insert((player.clone(), z.to_string()));
            *state.occupancy.entry(z.to_string()).or_default() += 1;
        }
        for reward in &hunt.rewards {
            let zone_ok = reward
                .zone
                .is_none_or(|z| here.contains(hunt.zones[z as usize].id.as_str()));
            let clues_ok = reward
                .requires
                .iter()
                .all(|c| solved.contains(hunt.clues[*c as usize].as_str()));
            let sensor_ok = reward.sensor.as_ref().is_none_or(|cond| {
                let name = hunt.sensors[cond.sensor as usize].as_str();
                readings.get(name).is_some_and(|v| {
                    cond.min.is_none_or(|m| m <= *v) && cond.max.is_none_or(|m| *v <= m)
                })
            });
            // The version is in effect at `t`, so its window is clipped to the version's span.
            let window_ok = reward.active.as_ref().is_none_or(|w| {
                w.from.is_none_or(|from| from <= t) && w.until.is_none_or(|until| t < until)
            });
            if zone_ok
                && clues_ok
                && sensor_ok
                && window_ok
                && !claimed.contains(reward.id.as_str())
            {
                state.eligible.insert((player.clone(), reward.id.clone()));
            }
        }
    }
    state
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Order of player notifications within a time: priority descending, player, kind rank, id.
type SortKey = (std::cmp::Reverse<u8>, String, u8, String);

fn zone_priority(h: &Hunt, id: &str) -> Option<u8> {
    h.zones.iter().find(|z| z.id == id).map(|z| z.priority)
}

fn reward_priority(h: &Hunt, id: &str) -> Option<u8> {
    h.rewards.iter().find(|r| r.id == id).map(|r| r.priority)
}

/// Appends the notifications for time `t` (docs/spec.md §6 order) to `out`.
fn diff(versions: &Versions, t: u64, before: &State, after: &State, out: &mut String) {
    let mut lines: Vec<(SortKey, String)> = Vec::new();
    let mut player_line = |kind: &str, rank: u8, player: &str, key: &str, id: &str, prio: u8| {
        let line = format!(
            "{{\"time\":{t},\"kind\":\"{kind}\",\"player\":{},\"{key}\":{},\"priority\":{prio}}}\n",
            json_str(player),
            json_str(id)
        );
        lines.push((
            (
                std::cmp::Reverse(prio),
                player.to_string(),
                rank,
                id.to_string(),
            ),
            line,
        ));
    };
    let zone_prio = |id: &str| versions.priority(t, |h| zone_priority(h, id));
    let reward_prio = |id: &str| versions.priority(t, |h| reward_priority(h, id));
    for (p, z) in before.presence.difference(&after.presence) {
        player_line("exit", 0, p, "zone", z, zone_prio(z));
    }
    for (p, z) in after.presence.difference(&before.presence) {
        player_line("enter", 1, p, "zone", z, zone_prio(z));
    }
    for (p, r) in before.eligible.difference(&after.eligible) {
        player_line("ineligible", 2, p, "reward", r, reward_prio(r));
    }
    for (p, r) in after.eligible.difference(&before.eligible) {
        player_line("eligible", 3, p, "reward", r, reward_prio(r));
    }
    lines.sort();
    for (_, line) in lines {
        out.push_str(&line);
    }
    let zones: BTreeSet<&String> = before
        .occupancy
        .keys()
        .chain(after.occupancy.keys())
        .collect();
    for zone in zones {
        let old = before.occupancy.get(zone).copied().unwrap_or(0);
        let new = after.occupancy.get(zone).copied().unwrap_or(0);
        if old != new {
            out.push_str(&format!(
                "{{\"time\":{t},\"kind\":\"occupancy\",\"zone\":{},\"count\":{new}}}\n",
                json_str(zone)
            ));
        }
    }
}

/// One change record (docs/spec.md §9): `Ok((effective, hunt))`, or why it is rejected.
fn change_record(start: &Hunt, line: &[u8]) -> Result<(u64, Hunt), String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    let effective = field(&obj, "effective")
        .and_then(as_uint)
        .filter(|t| *t <= MAX_TS)
        .ok_or("effective must be an integer in 0..=2^53")?;
    let Some(Value::String(toml)) = field(&obj, "hunt") else {
        return Err("hunt must be a string".into());
    };
    let geojson = match field(&obj, "zones_geojson") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => return Err("zones_geojson must be an object".into()),
    };
    let text = HuntText {
        toml: toml.clone(),
        geojson,
    };
    // Hunt::parse refuses GeoJSON zones given while the TOML names no file, and the reverse.
    let hunt = Hunt::parse(Path::new("hunt-changes.jsonl"), text).map_err(|e| e.to_string())?;
    if hunt.max_lateness_ms != start.max_lateness_ms {
        return Err("max_lateness_ms changed".into());
    }
    if hunt.max_accuracy_m != start.max_accuracy_m {
        return Err("max_accuracy_m changed".into());
    }
    Ok((effective, hunt))
}

/// Reads a change log: the versions in effect, and the counts and rejects in `out`.
fn read_changes(start: &Hunt, log: Option<&[u8]>, out: &mut RefOutput) -> Versions {
    let mut by_time: BTreeMap<u64, Hunt> = BTreeMap::new();
    by_time.insert(0, start.clone());
    if let Some(log) = log {
        let mut counts = ChangeCounts::default();
        for (number, line) in log.split(|b| *b == b'\n').enumerate() {
            if is_blank(line) {
                continue;
            }
            match change_record(start, line) {
                // A later record with the same time replaces the earlier one entirely.
                Ok((effective, hunt)) => {
                    counts.accepted += 1;
                    by_time.insert(effective, hunt);
                }
                Err(_) => {
                    counts.rejected += 1;
                    out.rejects.push(RefReject {
                        reason: "bad_hunt_change".into(),
                        source: RejectSource::Changes,
                        line: number as u64 + 1,
                    });
                }
            }
        }
        out.hunt_changes = Some(counts);
    }
    Versions {
        list: by_time.into_iter().collect(),
    }
}

/// Runs the reference model over the partitions (one byte buffer each).
pub fn reference(hunt: &Hunt, partitions: &[Vec<u8>]) -> RefOutput {
    reference_with_changes(hunt, None, partitions)
}

/// Runs the reference model over the partitions with the hunt `start` and, when given, the
/// change log `changes` (JSON Lines of change records).
pub fn reference_with_changes(
    start: &Hunt,
    changes: Option<&[u8]>,
    partitions: &[Vec<u8>],
) -> RefOutput {
    let mut out = RefOutput {
        notifications: String::new(),
        read: 0,
        accepted: 0,
        rejected: BTreeMap::new(),
        hunt_changes: None,
        rejects: Vec::new(),
    };
    let versions = read_changes(start, changes, &mut out);
    let facts = ingest(start, &versions, partitions, &mut out);
    let mut times: BTreeSet<u64> = BTreeSet::from([0]);
    for f in facts.values().flatten() {
        times.insert(f.ts);
        times.extend(f.expiry);
    }
    for (effective, hunt) in &versions.list {
        times.insert(*effective);
        for reward in &hunt.rewards {
            if let Some(w) = &reward.active {
                times.extend(w.from);
                times.extend(w.until);
            }
        }
    }
    let mut before = State::default();
    for t in times {
        let after = state_at(versions.at(t), &facts, t);
        if after != before {
            diff(&versions, t, &before, &after, &mut out.notifications);
        }
        before = after;
    }
    out
}
