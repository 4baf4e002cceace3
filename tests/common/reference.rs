//! A naive reference model of docs/spec.md §2, §3, §5 and §6, used to check the engine.
//!
//! It shares nothing with the engine except the loaded hunt and its geometry:
//! validation is written afresh over `serde_json::Value`, and every derived
//! collection is recomputed from scratch at every time where something could
//! change, then diffed against the previous such time.

use std::collections::{BTreeMap, BTreeSet};

use huntflow::model::hunt::Hunt;
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

/// docs/spec.md §3 checks up to and including accuracy; the reason code on failure.
fn validate(hunt: &Hunt, line: &[u8]) -> Result<Valid, &'static str> {
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
    // An expiry beyond u64::MAX saturates: such a fact ends at the last representable time.
    let expiry = |ttl: Option<u64>| ttl.map(|ttl| ts.saturating_add(ttl));
    let fact_kind;
    let fact_expiry;
    match kind.as_str() {
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
            if let (Some(a), Some(max)) = (accuracy, hunt.max_accuracy_m) {
                if a > max {
                    return Err("inaccurate");
                }
            }
            fact_kind = FactKind::Position { lat, lon };
            fact_expiry = expiry(Some(ttl.unwrap_or(hunt.position_ttl_ms)));
        }
        "action" => {
            let Value::String(action) = field(&obj, "action").unwrap() else {
                return Err("bad_field");
            };
            let Value::String(target) = field(&obj, "target").unwrap() else {
                return Err("bad_field");
            };
            (fact_kind, fact_expiry) = match action.as_str() {
                "solve" => (
                    FactKind::Solve {
                        clue: target.clone(),
                    },
                    expiry(ttl),
                ),
                "claim" => (
                    FactKind::Claim {
                        reward: target.clone(),
                    },
                    None,
                ),
                _ => (FactKind::Other, None),
            };
        }
        _ => {
            let Value::String(sensor) = field(&obj, "sensor").unwrap() else {
                return Err("bad_field");
            };
            let value = as_num(field(&obj, "value").unwrap())
                .filter(|v| v.is_finite())
                .ok_or("bad_field")?;
            fact_kind = FactKind::Sensor {
                sensor: sensor.clone(),
                value,
            };
            fact_expiry = expiry(Some(ttl.unwrap_or(hunt.sensor_ttl_ms)));
        }
    }
    Ok(Valid {
        player: player.to_string(),
        fact: Fact {
            id: id.to_string(),
            ts,
            expiry: fact_expiry,
            kind: fact_kind,
        },
    })
}

/// Per-player accepted facts over all partitions.
type Facts = BTreeMap<String, Vec<Fact>>;

/// Reads every partition per docs/spec.md §2/§3 and returns the accepted facts.
fn ingest(hunt: &Hunt, partitions: &[Vec<u8>], out: &mut RefOutput) -> Facts {
    let mut facts = Facts::new();
    for data in partitions {
        let mut max_ts: Option<u64> = None;
        let mut accepted_ids: Vec<(String, u64)> = Vec::new();
        for line in data.split(|b| *b == b'\n') {
            if is_blank(line) {
                continue;
            }
            out.read += 1;
            let result = validate(hunt, line).and_then(|valid| {
                let lateness = hunt.max_lateness_ms;
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
                Err(reason) => *out.rejected.entry(reason.to_string()).or_default() += 1,
            }
        }
    }
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

/// The derived collections at one time.
#[derive(Default, PartialEq)]
struct State {
    /// (player, zone number)
    presence: BTreeSet<(String, u32)>,
    /// (player, reward number)
    eligible: BTreeSet<(String, u32)>,
    /// zone number -> number of players present
    occupancy: BTreeMap<u32, u64>,
}

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
        let here: BTreeSet<u32> = zones.iter().copied().collect();
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
            state.presence.insert((player.clone(), *z));
            *state.occupancy.entry(*z).or_default() += 1;
        }
        for (number, reward) in hunt.rewards.iter().enumerate() {
            let zone_ok = reward.zone.is_none_or(|z| here.contains(&z));
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
            let window_ok = reward.active.as_ref().is_none_or(|w| {
                w.from.is_none_or(|from| from <= t) && w.until.is_none_or(|until| t < until)
            });
            if zone_ok
                && clues_ok
                && sensor_ok
                && window_ok
                && !claimed.contains(reward.id.as_str())
            {
                state.eligible.insert((player.clone(), number as u32));
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

/// Appends the notifications for time `t` (docs/spec.md §6 order) to `out`.
fn diff(hunt: &Hunt, t: u64, before: &State, after: &State, out: &mut String) {
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
    for (p, z) in before.presence.difference(&after.presence) {
        let zone = &hunt.zones[*z as usize];
        player_line("exit", 0, p, "zone", &zone.id, zone.priority);
    }
    for (p, z) in after.presence.difference(&before.presence) {
        let zone = &hunt.zones[*z as usize];
        player_line("enter", 1, p, "zone", &zone.id, zone.priority);
    }
    for (p, r) in before.eligible.difference(&after.eligible) {
        let reward = &hunt.rewards[*r as usize];
        player_line("ineligible", 2, p, "reward", &reward.id, reward.priority);
    }
    for (p, r) in after.eligible.difference(&before.eligible) {
        let reward = &hunt.rewards[*r as usize];
        player_line("eligible", 3, p, "reward", &reward.id, reward.priority);
    }
    lines.sort();
    for (_, line) in lines {
        out.push_str(&line);
    }
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let zones: BTreeSet<u32> = before
        .occupancy
        .keys()
        .chain(after.occupancy.keys())
        .copied()
        .collect();
    for z in zones {
        let old = before.occupancy.get(&z).copied().unwrap_or(0);
        let new = after.occupancy.get(&z).copied().unwrap_or(0);
        if old != new {
            counts.insert(hunt.zones[z as usize].id.as_str(), new);
        }
    }
    for (zone, count) in counts {
        out.push_str(&format!(
            "{{\"time\":{t},\"kind\":\"occupancy\",\"zone\":{},\"count\":{count}}}\n",
            json_str(zone)
        ));
    }
}

/// Runs the reference model over the partitions (one byte buffer each).
pub fn reference(hunt: &Hunt, partitions: &[Vec<u8>]) -> RefOutput {
    let mut out = RefOutput {
        notifications: String::new(),
        read: 0,
        accepted: 0,
        rejected: BTreeMap::new(),
    };
    let facts = ingest(hunt, partitions, &mut out);
    let mut times: BTreeSet<u64> = BTreeSet::from([0]);
    for f in facts.values().flatten() {
        times.insert(f.ts);
        times.extend(f.expiry);
    }
    for reward in &hunt.rewards {
        if let Some(w) = &reward.active {
            times.extend(w.from);
            times.extend(w.until);
        }
    }
    let mut before = State::default();
    for t in times {
        let after = state_at(hunt, &facts, t);
        if after != before {
            diff(hunt, t, &before, &after, &mut out.notifications);
        }
        before = after;
    }
    out
}
