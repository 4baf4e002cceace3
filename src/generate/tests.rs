//! Tests of the dataset generator: determinism, line accounting, an independent docs/spec.md §2/§3
//! re-check of every line against the generator's expected counts, and hunt text validity.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

fn small(seed: u64) -> GenerateOptions {
    GenerateOptions {
        seed,
        events: 3_000,
        players: 40,
        ..GenerateOptions::default()
    }
}

fn noisy() -> GenerateOptions {
    GenerateOptions {
        seed: 7,
        events: 20_000,
        players: 60,
        partitions: 3,
        malformed_rate: 0.25,
        late_rate: 0.02,
        duplicate_rate: 0.03,
        equal_ts_rate: 0.05,
        ..GenerateOptions::default()
    }
}

/// The hunt TOML and GeoJSON texts of a synthetic case.
fn texts(case: &GeneratedCase) -> (&str, &str) {
    match &case.hunt {
        CaseHunt::Synthetic {
            toml,
            zones_geojson,
        } => (toml, zones_geojson),
        CaseHunt::Existing(path) => panic!("not synthetic: {}", path.display()),
    }
}

pub(super) fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    assert_eq!(v.pop(), Some(&b""[..]), "every line ends in a newline");
    v
}

#[test]
fn same_seed_same_bytes() {
    let a = generate(&small(1));
    let b = generate(&small(1));
    assert_eq!(texts(&a), texts(&b));
    assert_eq!(a.partitions, b.partitions);
    assert_eq!(a.stats, b.stats);
}

#[test]
fn different_seed_different_bytes() {
    let a = generate(&small(1));
    let b = generate(&small(2));
    assert_ne!(texts(&a).0, texts(&b).0);
    assert_ne!(texts(&a).1, texts(&b).1);
    assert_ne!(a.partitions, b.partitions);
}

#[test]
fn counts_add_up() {
    for opts in [
        small(3),
        noisy(),
        GenerateOptions {
            partitions: 1,
            events: 777,
            ..small(4)
        },
    ] {
        let case = generate(&opts);
        assert_eq!(case.partitions.len(), opts.partitions as usize);
        let total: usize = case.partitions.iter().map(|p| lines(p).len()).sum();
        assert_eq!(total as u64, opts.events);
        assert_eq!(case.stats.lines, opts.events);
        let rejected: u64 = case.stats.rejected.values().sum();
        assert_eq!(case.stats.accepted + rejected, opts.events);
        assert!(case.partitions.iter().all(|p| lines(p)
            .iter()
            .all(|l| !l.iter().all(u8::is_ascii_whitespace))));
    }
}

/// The docs/spec.md §3 checks up to (not including) lateness: `Ok((id, ts))` or the reason code.
pub(super) fn check(line: &[u8], max_acc: Option<f64>) -> Result<(String, u64), &'static str> {
    if line.len() > 64 * 1024 {
        return Err("malformed");
    }
    let text = std::str::from_utf8(line).map_err(|_| "malformed")?;
    let v: Value = serde_json::from_str(text).map_err(|_| "malformed")?;
    let obj = v.as_object().ok_or("malformed")?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    for k in ["id", "type", "player", "ts"] {
        get(k).ok_or("missing_field")?;
    }
    let short = |k: &str| {
        get(k)
            .and_then(Value::as_str)
            .filter(|s| (1..=128).contains(&s.len()))
            .ok_or("bad_field")
    };
    let id = short("id")?.to_string();
    let ty = get("type").and_then(Value::as_str).ok_or("bad_field")?;
    short("player")?;
    let ts = get("ts")
        .and_then(Value::as_u64)
        .filter(|t| *t <= 1 << 53)
        .ok_or("bad_field")?;
    if get("ttl_ms").is_some_and(|v| v.as_u64().is_none_or(|t| t < 1)) {
        return Err("bad_field");
    }
    if get("priority").is_some_and(|v| v.as_u64().is_none_or(|p| p > 9)) {
        return Err("bad_field");
    }
    let (numbers, strings): (&[&str], &[&str]) = match ty {
        "position" => (&["lat", "lon"], &[]),
        "action" => (&[], &["action", "target"]),
        "sensor" => (&["value"], &["sensor"]),
        _ => return Err("unknown_type"),
    };
    for k in numbers.iter().chain(strings) {
        get(k).ok_or("missing_field")?;
    }
    if numbers
        .iter()
        .any(|k| !get(k).is_some_and(Value::is_number))
        || strings
            .iter()
            .any(|k| !get(k).is_some_and(Value::is_string))
    {
        return Err("bad_field");
    }
    if ty == "position" {
        let acc = get("accuracy_m")
            .map(|v| v.as_f64().filter(|a| *a >= 0.0).ok_or("bad_field"))
            .transpose()?;
        let lat = get("lat").and_then(Value::as_f64).unwrap_or(f64::NAN);
        let lon = get("lon").and_then(Value::as_f64).unwrap_or(f64::NAN);
        if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
            return Err("bad_coordinates");
        }
        if let (Some(a), Some(m)) = (acc, max_acc) {
            if a > m {
                return Err("inaccurate");
            }
        }
    }
    Ok((id, ts))
}

/// Replays every partition through the contract's checks, lateness and duplicate detection.
pub(super) fn recheck(
    case: &GeneratedCase,
    opts: &GenerateOptions,
) -> (u64, BTreeMap<&'static str, u64>) {
    let mut accepted = 0;
    let mut rejected = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for part in &case.partitions {
        let mut max: Option<u64> = None;
        for line in lines(part) {
            let reason = match check(line, opts.max_accuracy_m) {
                Err(r) => r,
                Ok((_, ts)) if max.is_some_and(|m| ts + opts.max_lateness_ms < m) => "late",
                Ok((id, _)) if ids.contains(&id) => "duplicate",
                Ok((id, ts)) => {
                    ids.insert(id);
                    max = Some(max.map_or(ts, |m| m.max(ts)));
                    accepted += 1;
                    continue;
                }
            };
            *rejected.entry(reason).or_insert(0) += 1;
        }
    }
    (accepted, rejected)
}

#[test]
fn stats_match_an_independent_recheck() {
    for opts in [
        small(5),
        noisy(),
        GenerateOptions {
            max_accuracy_m: None,
            disorder_ms: 9_000,
            ..noisy()
        },
    ] {
        let case = generate(&opts);
        let (accepted, rejected) = recheck(&case, &opts);
        assert_eq!(accepted, case.stats.accepted, "{opts:?}");
        assert_eq!(rejected, case.stats.rejected, "{opts:?}");
    }
}

#[test]
fn every_kind_of_bad_line_appears() {
    let opts = noisy();
    let case = generate(&opts);
    for kind in bad::BadKind::ALL {
        assert!(
            case.stats
                .bad_kinds
                .get(kind.name())
                .is_some_and(|n| *n > 0),
            "{kind:?}"
        );
    }
    for reason in crate::model::event::Reason::ALL {
        assert!(
            case.stats
                .rejected
                .get(reason.as_str())
                .is_some_and(|n| *n > 0),
            "{reason}"
        );
    }
    // Classify the raw lines independently of the generator's bookkeeping.
    let mut seen = BTreeSet::new();
    for line in case.partitions.iter().flat_map(|p| lines(p)) {
        let class = if line.len() > 64 * 1024 {
            "huge"
        } else if std::str::from_utf8(line).is_err() {
            "non_utf8"
        } else {
            match serde_json::from_slice::<Value>(line) {
                Err(_) => "not_json",
                Ok(Value::Array(_)) => "array",
                Ok(Value::Object(o)) => {
                    if o.values().any(|v| v.as_str() == Some("")) {
                        "empty_string"
                    } else if ["id", "type", "player", "ts"]
                        .iter()
                        .any(|k| o.get(*k).is_some_and(Value::is_null))
                    {
                        "null_field"
                    } else if ["id", "type", "player", "ts"]
                        .iter()
                        .any(|k| !o.contains_key(*k))
                    {
                        "missing_field"
                    } else {
                        match check(line, opts.max_accuracy_m) {
                            Ok(_) => "ok",
                            Err(r) => r,
                        }
                    }
                }
                Ok(_) => "other_json",
            }
        };
        seen.insert(class);
    }
    for class in [
        "huge",
        "non_utf8",
        "not_json",
        "array",
        "empty_string",
        "null_field",
        "missing_field",
        "bad_field",
        "unknown_type",
        "bad_coordinates",
        "inaccurate",
        "ok",
    ] {
        assert!(seen.contains(class), "no {class} line");
    }
}

#[test]
fn good_lines_vary() {
    let case = generate(&GenerateOptions {
        events: 20_000,
        ..GenerateOptions::default()
    });
    let mut seen = BTreeSet::new();
    for line in case.partitions.iter().flat_map(|p| lines(p)) {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        seen.insert(format!("type:{}", s("type")));
        if s("type") == "action" {
            seen.insert(format!("verb:{}", s("action")));
            let t = s("target");
            let known = t.starts_with("clue-") && t[5..].parse::<u32>().is_ok()
                || t.len() == 3 && t.starts_with('r');
            seen.insert(format!(
                "{}:{}",
                s("action"),
                if known { "known" } else { "unknown" }
            ));
        }
        if s("type") == "sensor" {
            seen.insert(format!(
                "sensor_known:{}",
                s("sensor").starts_with("beacon-") && !s("sensor").contains('x')
            ));
        }
        for k in [
            "ttl_ms",
            "priority",
            "accuracy_m",
            "app",
            "meta",
            "note",
            "Lat",
            "device",
        ] {
            match o.get(k) {
                Some(Value::Null) => seen.insert(format!("null:{k}")),
                Some(_) => seen.insert(format!("has:{k}")),
                None => false,
            };
        }
        if o.get("ttl_ms")
            .and_then(Value::as_u64)
            .is_some_and(|t| t <= 3_000)
        {
            seen.insert("short_ttl".into());
        }
        if s("id").len() == 128 {
            seen.insert("long_id".into());
        }
    }
    for want in [
        "type:position",
        "type:action",
        "type:sensor",
        "verb:solve",
        "verb:claim",
        "verb:wave",
        "solve:known",
        "solve:unknown",
        "claim:known",
        "claim:unknown",
        "sensor_known:true",
        "sensor_known:false",
        "null:ttl_ms",
        "null:priority",
        "null:accuracy_m",
        "has:ttl_ms",
        "has:priority",
        "has:accuracy_m",
        "has:meta",
        "has:Lat",
        "short_ttl",
        "long_id",
    ] {
        assert!(seen.contains(want), "no {want}");
    }
    // Equal timestamps for one player within a partition, and out-of-order lines.
    let (mut equal, mut backwards) = (false, false);
    for part in &case.partitions {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut max = 0;
        for line in lines(part) {
            let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let (Some(p), Some(ts)) = (
                o.get("player").and_then(Value::as_str),
                o.get("ts").and_then(Value::as_u64),
            ) else {
                continue;
            };
            equal |= last.insert(p.to_string(), ts) == Some(ts);
            backwards |= ts < max;
            max = max.max(ts);
        }
    }
    assert!(equal && backwards);
}

#[test]
fn hunt_text_is_well_formed() {
    let opts = GenerateOptions {
        zones: 60,
        rewards: 30,
        ..small(9)
    };
    let case = generate(&opts);
    let (hunt_toml, zones_geojson) = texts(&case);
    let t: toml::Table = hunt_toml.parse().expect("hunt TOML parses");
    assert_eq!(t["zones_geojson"].as_str(), Some("zones.geojson"));
    assert_eq!(t["max_accuracy_m"].as_float(), Some(50.0));
    let inline = t["zones"].as_array().map_or(0, Vec::len);
    let gj: geojson::GeoJson = zones_geojson.parse().expect("zones GeoJSON parses");
    let geojson::GeoJson::FeatureCollection(fc) = gj else {
        panic!("not a FeatureCollection")
    };
    assert!(inline > 0 && !fc.features.is_empty());
    assert_eq!(inline + fc.features.len(), opts.zones as usize);
    let rewards = t["rewards"].as_array().expect("rewards");
    assert_eq!(rewards.len(), opts.rewards as usize);
    let has = |k: &str| rewards.iter().filter(|r| r.get(k).is_some()).count();
    assert!(has("zone") > 0 && has("requires") > 0 && has("sensor") > 0 && has("active") > 0);
    assert!(hunt_toml.contains("circle = ") && hunt_toml.contains("holes = [["));
    assert!(zones_geojson.contains("MultiPolygon") && zones_geojson.contains("\"Point\""));
}

#[test]
fn hunt_loads_with_its_zones_rewards_clues_and_sensors() {
    let dir = std::env::temp_dir().join(format!("huntflow-generate-{}", std::process::id()));
    for opts in [
        small(11),
        GenerateOptions {
            zones: 0,
            clues: 0,
            sensors: 0,
            rewards: 1,
            players: 1,
            events: 50,
            partitions: 1,
            ..small(12)
        },
        GenerateOptions {
            zones: 1,
            clues: 0,
            sensors: 9,
            rewards: 3,
            events: 0,
            max_accuracy_m: None,
            ..small(13)
        },
    ] {
        let case = generate(&opts);
        let (toml_path, parts) =
            write_case(&case, &dir.join("hunt"), &dir.join("events")).expect("write");
        assert_eq!(parts.len(), opts.partitions as usize);
        let hunt = crate::model::hunt::Hunt::load(&toml_path)
            .unwrap_or_else(|e| panic!("{e}\n{}", texts(&case).0));
        assert_eq!(hunt.zones.len(), opts.zones as usize);
        assert_eq!(hunt.rewards.len(), opts.rewards as usize);
        let clues = if opts.zones == 0 && opts.sensors == 0 {
            opts.clues.max(1)
        } else {
            opts.clues
        };
        assert_eq!(hunt.clues.len(), clues as usize);
        assert_eq!(
            hunt.sensors.len(),
            (opts.sensors as usize).min(opts.rewards as usize)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_match_memory() {
    let opts = GenerateOptions {
        partitions: 2,
        ..small(21)
    };
    let dir = std::env::temp_dir().join(format!("huntflow-generate-files-{}", std::process::id()));
    let mut calls = 0;
    let files =
        generate_to_files_with_progress(&opts, &dir.join("h"), &dir.join("e"), &mut |_| calls += 1)
            .expect("write");
    let case = generate(&opts);
    assert!(calls >= 1);
    assert_eq!(
        std::fs::read_to_string(&files.hunt_toml).ok().as_deref(),
        Some(texts(&case).0)
    );
    assert_eq!(
        files
            .zones_geojson
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .as_deref(),
        Some(texts(&case).1)
    );
    let parts: Vec<Vec<u8>> = files
        .partitions
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    assert_eq!(parts, case.partitions);
    assert_eq!(files.stats, case.stats);
    let _ = std::fs::remove_dir_all(&dir);
}
