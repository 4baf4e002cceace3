//! Tests of generating events for an existing hunt: no hunt files, the hunt's ids, area,
//! sensor bounds and settings, exact expected counts, and odd ids that need JSON escaping.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::tests::{lines, recheck};
use super::*;

fn demo_hunt() -> Arc<Hunt> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml");
    Arc::new(Hunt::load(&path).expect("demo hunt loads"))
}

fn for_hunt(hunt: &Arc<Hunt>, seed: u64) -> GenerateOptions {
    GenerateOptions {
        for_hunt: Some(hunt.clone()),
        seed,
        events: 20_000,
        players: 60,
        partitions: 2,
        start_ms: 0,
        rate_per_s: 20.0,
        malformed_rate: 0.05,
        late_rate: 0.01,
        duplicate_rate: 0.02,
        // Deliberately different from the hunt: the hunt's settings must win.
        max_lateness_ms: 1,
        max_accuracy_m: None,
        ..GenerateOptions::default()
    }
}

/// `opts` with the hunt's lateness and accuracy, for [`recheck`].
fn hunt_rules(opts: &GenerateOptions, hunt: &Hunt) -> GenerateOptions {
    GenerateOptions {
        max_lateness_ms: hunt.max_lateness_ms,
        max_accuracy_m: hunt.max_accuracy_m,
        ..opts.clone()
    }
}

fn objects(case: &GeneratedCase) -> Vec<serde_json::Map<String, Value>> {
    case.partitions
        .iter()
        .flat_map(|p| lines(p))
        .filter_map(|l| match serde_json::from_slice::<Value>(l) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        })
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("huntflow-{name}-{}", std::process::id()))
}

#[test]
fn counts_match_a_recheck_with_the_hunts_rules() {
    let hunt = demo_hunt();
    for seed in [1, 2] {
        let opts = for_hunt(&hunt, seed);
        let case = generate(&opts);
        assert!(matches!(&case.hunt, CaseHunt::Existing(p) if *p == hunt.path));
        assert_eq!(case.stats.lines, opts.events);
        let (accepted, rejected) = recheck(&case, &hunt_rules(&opts, &hunt));
        assert_eq!(accepted, case.stats.accepted, "seed {seed}");
        assert_eq!(rejected, case.stats.rejected, "seed {seed}");
        for reason in ["inaccurate", "late", "duplicate", "malformed"] {
            assert!(case.stats.rejected.contains_key(reason), "{reason}");
        }
        assert_eq!(generate(&opts).partitions, case.partitions, "deterministic");
    }
}

#[test]
fn events_use_the_hunts_ids_area_and_sensor_bounds() {
    let hunt = demo_hunt();
    let case = generate(&GenerateOptions {
        events: 40_000,
        ..for_hunt(&hunt, 3)
    });
    let known = |list: &[String], s: &str| list.iter().any(|x| x == s);
    let rewards: Vec<String> = hunt.rewards.iter().map(|r| r.id.clone()).collect();
    let mut seen = BTreeSet::new();
    let mut zones_hit = BTreeSet::new();
    let mut zone_buf = Vec::new();
    for o in objects(&case) {
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        match (s("type").as_str(), s("action").as_str()) {
            ("action", "solve") => {
                let t = s("target");
                seen.insert(format!("solve:{}", known(&hunt.clues, &t)));
                seen.insert(t);
            }
            ("action", "claim") => {
                let t = s("target");
                seen.insert(format!("claim:{}", known(&rewards, &t)));
                seen.insert(t);
            }
            ("sensor", _) => {
                let name = s("sensor");
                let Some(n) = hunt.sensor_number(&name) else {
                    seen.insert("sensor:false".into());
                    continue;
                };
                let Some(value) = o.get("value").and_then(Value::as_f64) else {
                    continue; // a bad line
                };
                for r in &hunt.rewards {
                    if let Some(c) = r.sensor.filter(|c| c.sensor == n) {
                        seen.insert(format!("{}:{}:{}", r.id, name, c.holds(value)));
                    }
                }
            }
            ("position", _) => {
                let (Some(lat), Some(lon)) = (
                    o.get("lat").and_then(Value::as_f64),
                    o.get("lon").and_then(Value::as_f64),
                ) else {
                    continue;
                };
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    continue; // a bad_coordinates line
                }
                // The demo zones span lat 48.841..48.8695, lon 2.331..2.369 (plus a margin).
                assert!((48.80..48.91).contains(&lat) && (2.28..2.42).contains(&lon));
                hunt.zones_at(lat, lon, &mut zone_buf);
                zones_hit.extend(zone_buf.iter().copied());
                if zone_buf.is_empty() {
                    seen.insert("outside".into());
                }
            }
            _ => {}
        }
    }
    assert_eq!(zones_hit.len(), hunt.zones.len(), "every zone visited");
    for want in [
        "solve:true",
        "solve:false",
        "claim:true",
        "claim:false",
        "sensor:false",
    ] {
        assert!(seen.contains(want), "no {want}");
    }
    for want in hunt.clues.iter().chain(&rewards) {
        assert!(seen.contains(want), "{want} never named");
    }
    for r in &hunt.rewards {
        if let Some(c) = r.sensor {
            let name = &hunt.sensors[c.sensor as usize];
            for holds in [true, false] {
                let key = format!("{}:{name}:{holds}", r.id);
                assert!(seen.contains(&key), "no {key}");
            }
        }
    }
    assert!(seen.contains("outside"));
}

#[test]
fn files_hold_events_only() {
    let hunt = demo_hunt();
    let opts = GenerateOptions {
        events: 3_000,
        ..for_hunt(&hunt, 4)
    };
    let dir = temp_dir("for-hunt-files");
    let files = generate_to_files(&opts, &dir.join("hunt"), &dir.join("events")).expect("write");
    assert_eq!(files.hunt_toml, hunt.path);
    assert_eq!(files.zones_geojson, None);
    assert!(!dir.join("hunt").exists(), "no hunt directory");
    let case = generate(&opts);
    let parts: Vec<Vec<u8>> = files
        .partitions
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    assert_eq!(parts, case.partitions);
    assert_eq!(files.stats, case.stats);
    let (toml_path, written) =
        write_case(&case, &dir.join("hunt2"), &dir.join("events2")).expect("write case");
    assert_eq!(toml_path, hunt.path);
    assert_eq!(written.len(), 2);
    assert!(!dir.join("hunt2").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn odd_ids_are_escaped_and_unknown_names_stay_unknown() {
    let dir = temp_dir("for-hunt-odd");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("odd.toml");
    // No zones, so players walk the options' city box; ids collide with the generator's own
    // unknown names and need JSON escaping.
    let toml = r#"
max_lateness_ms = 300
sensor_ttl_ms = 500
max_accuracy_m = 0.0

[[rewards]]
id = "r-x1"
requires = ["clue-x1", "say \"hi\"", "back\\slash", "tab\there"]

[[rewards]]
id = "bonus"
sensor = { id = "thermo-1", min = 5.0, max = 5.0 }
"#;
    std::fs::write(&path, toml).expect("write hunt");
    let hunt = Arc::new(Hunt::load(&path).expect("odd hunt loads"));
    let opts = GenerateOptions {
        position_share: 0.3,
        ..for_hunt(&hunt, 5)
    };
    let case = generate(&opts);
    let (accepted, rejected) = recheck(&case, &hunt_rules(&opts, &hunt));
    assert_eq!(accepted, case.stats.accepted);
    assert_eq!(rejected, case.stats.rejected);
    let mut targets = BTreeSet::new();
    let mut exact = false;
    for o in objects(&case) {
        if let Some(t) = o.get("target").and_then(Value::as_str) {
            targets.insert(t.to_string());
        }
        exact |= o.get("sensor").and_then(Value::as_str) == Some("thermo-1")
            && o.get("value").and_then(Value::as_f64) == Some(5.0);
    }
    assert!(exact, "readings on the bound of a min = max condition");
    for want in hunt
        .clues
        .iter()
        .map(String::as_str)
        .chain(["r-x1", "bonus"])
    {
        assert!(targets.contains(want), "{want:?} never named");
    }
    assert!(
        targets.contains("clue-x1~") && targets.contains("r-x1~") && targets.contains("bonus~")
    );
    assert_eq!(
        line::with_unknown(&["a~".into(), "a".into()], ["a", "b", "b"]),
        ["a~", "a", "a~~", "b", "b~"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
