//! Tests of the generated hunt change logs (docs/spec.md §9): every record is checked afresh
//! (JSON shape, effective time, the hunt loading from its text, unchanged admission settings)
//! against the generator's expected accepted / rejected counts; effective times are ordered
//! and inside the events' span; versions really differ; events name items some versions only
//! know; the same options give the same bytes.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::tests::lines;
use super::*;
use crate::model::hunt::{Hunt, HuntText};

fn with_changes(seed: u64, changes: u32) -> GenerateOptions {
    GenerateOptions {
        seed,
        events: 1_500,
        players: 20,
        zones: 8,
        rewards: 6,
        clues: 4,
        sensors: 3,
        partitions: 2,
        rate_per_s: 20.0,
        malformed_rate: 0.03,
        changes,
        ..GenerateOptions::default()
    }
}

/// The synthetic start hunt of a case, parsed from its texts.
fn start_hunt(case: &GeneratedCase) -> Hunt {
    let CaseHunt::Synthetic {
        toml,
        zones_geojson,
    } = &case.hunt
    else {
        panic!("not synthetic")
    };
    let text = HuntText {
        toml: toml.clone(),
        geojson: Some(zones_geojson.clone()),
    };
    Hunt::parse(Path::new("hunt.toml"), text).expect("start hunt loads")
}

/// An independent reading of one change record: `Ok((effective, hunt))` or why it is refused.
fn read_record(start: &Hunt, line: &str) -> Result<(u64, Hunt), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("not an object")?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let effective = get("effective")
        .filter(|v| v.is_u64())
        .and_then(Value::as_u64)
        .filter(|t| *t <= 1 << 53)
        .ok_or("bad effective")?;
    let toml = get("hunt").and_then(Value::as_str).ok_or("bad hunt")?;
    let geojson = match get("zones_geojson") {
        None => None,
        Some(g @ Value::Object(_)) => Some(g.to_string()),
        Some(_) => return Err("zones_geojson is not an object".into()),
    };
    let text = HuntText {
        toml: toml.to_string(),
        geojson,
    };
    let hunt = Hunt::parse(Path::new("hunt-changes.jsonl"), text).map_err(|e| e.to_string())?;
    if hunt.max_lateness_ms != start.max_lateness_ms {
        return Err("max_lateness_ms changed".into());
    }
    if hunt.max_accuracy_m != start.max_accuracy_m {
        return Err("max_accuracy_m changed".into());
    }
    Ok((effective, hunt))
}

/// The accepted versions of a case's change log, in log order, and the number of rejects.
fn versions(case: &GeneratedCase) -> (Vec<(u64, Hunt)>, u64) {
    let start = start_hunt(case);
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for line in &case.hunt_changes {
        match read_record(&start, line) {
            Ok(v) => accepted.push(v),
            Err(_) => rejected += 1,
        }
    }
    (accepted, rejected)
}

/// Every event's `ts` (good or not, where it parses).
fn event_times(case: &GeneratedCase) -> Vec<u64> {
    case.partitions
        .iter()
        .flat_map(|p| lines(p))
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter_map(|v| v.get("ts").and_then(Value::as_u64))
        .collect()
}

#[test]
fn records_load_or_fail_as_the_stats_say() {
    let mut rejected_logs = 0;
    for seed in 0..40 {
        let opts = with_changes(seed, 1 + (seed % 4) as u32);
        let case = generate(&opts);
        let (accepted, rejected) = versions(&case);
        assert_eq!(
            accepted.len() as u64,
            u64::from(opts.changes),
            "seed {seed}"
        );
        assert_eq!(
            (
                case.stats.hunt_changes_accepted,
                case.stats.hunt_changes_rejected
            ),
            (accepted.len() as u64, rejected),
            "seed {seed}"
        );
        assert!(rejected <= 1);
        rejected_logs += rejected;
        for line in &case.hunt_changes {
            assert!(!line.contains('\n'), "one record a line");
        }
    }
    assert!(
        rejected_logs > 5,
        "{rejected_logs} logs with a rejected record"
    );
    // Without bad lines, no bad change record.
    for seed in 0..20 {
        let case = generate(&GenerateOptions {
            malformed_rate: 0.0,
            ..with_changes(seed, 3)
        });
        assert_eq!(versions(&case).1, 0);
        assert_eq!(case.stats.hunt_changes_rejected, 0);
    }
}

#[test]
fn effective_times_are_ordered_and_inside_the_events() {
    let mut equal = 0;
    for seed in 0..30 {
        let case = generate(&with_changes(seed, 3));
        let times: Vec<u64> = versions(&case).0.iter().map(|(t, _)| *t).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "seed {seed}: {times:?}"
        );
        equal += times.windows(2).filter(|w| w[0] == w[1]).count();
        let events = event_times(&case);
        for t in &times {
            assert!(
                events.iter().any(|e| e < t),
                "seed {seed}: nothing before {t}"
            );
            assert!(
                events.iter().any(|e| e > t),
                "seed {seed}: nothing after {t}"
            );
        }
    }
    assert!(equal > 0, "no two records share an effective time");
}

#[test]
fn versions_differ_in_every_way_a_hunt_can_change() {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for seed in 0..30 {
        let case = generate(&with_changes(seed, 3));
        let mut prev = start_hunt(&case);
        for (_, hunt) in versions(&case).0 {
            let zone_ids = |h: &Hunt| {
                h.zones
                    .iter()
                    .map(|z| z.id.clone())
                    .collect::<BTreeSet<_>>()
            };
            let reward_ids = |h: &Hunt| {
                h.rewards
                    .iter()
                    .map(|r| r.id.clone())
                    .collect::<BTreeSet<_>>()
            };
            let (za, zb) = (zone_ids(&prev), zone_ids(&hunt));
            if zb.difference(&za).next().is_some() {
                seen.insert("zone added");
            }
            if za.difference(&zb).next().is_some() {
                seen.insert("zone removed");
            }
            for z in &hunt.zones {
                if let Some(old) = prev.zones.iter().find(|o| o.id == z.id) {
                    if old.shape != z.shape {
                        seen.insert("zone reshaped");
                    }
                    if old.priority != z.priority {
                        seen.insert("zone priority");
                    }
                }
            }
            let (ra, rb) = (reward_ids(&prev), reward_ids(&hunt));
            if rb.difference(&ra).next().is_some() {
                seen.insert("reward added");
            }
            if ra.difference(&rb).next().is_some() {
                seen.insert("reward retired");
            }
            for r in &hunt.rewards {
                let Some(old) = prev.rewards.iter().find(|o| o.id == r.id) else {
                    continue;
                };
                let zone = |h: &Hunt, z: Option<u32>| z.map(|z| h.zones[z as usize].id.clone());
                if zone(&prev, old.zone) != zone(&hunt, r.zone) {
                    seen.insert("reward zone");
                }
                let clues = |h: &Hunt, cs: &[u32]| {
                    cs.iter()
                        .map(|c| h.clues[*c as usize].clone())
                        .collect::<BTreeSet<_>>()
                };
                if clues(&prev, &old.requires) != clues(&hunt, &r.requires) {
                    seen.insert("reward clues");
                }
                let bounds = |c: Option<crate::model::hunt::SensorCondition>| {
                    c.map(|c| (c.min.map(f64::to_bits), c.max.map(f64::to_bits)))
                };
                if bounds(old.sensor) != bounds(r.sensor) {
                    seen.insert("reward sensor");
                }
                if old.active != r.active {
                    seen.insert("reward window");
                }
                if old.priority != r.priority {
                    seen.insert("reward priority");
                }
            }
            if hunt.position_ttl_ms != prev.position_ttl_ms {
                seen.insert("position ttl");
            }
            if hunt.sensor_ttl_ms != prev.sensor_ttl_ms {
                seen.insert("sensor ttl");
            }
            if hunt.text.geojson.is_none() {
                seen.insert("no geojson");
            }
            if hunt.clues.iter().any(|c| !prev.clues.contains(c)) {
                seen.insert("new clue");
            }
            if hunt.sensors.iter().any(|s| !prev.sensors.contains(s)) {
                seen.insert("new sensor");
            }
            prev = hunt;
        }
    }
    let all = [
        "zone added",
        "zone removed",
        "zone reshaped",
        "zone priority",
        "reward added",
        "reward retired",
        "reward zone",
        "reward clues",
        "reward sensor",
        "reward window",
        "reward priority",
        "position ttl",
        "sensor ttl",
        "no geojson",
        "new clue",
        "new sensor",
    ];
    for what in all {
        assert!(seen.contains(what), "never seen: {what}; seen {seen:?}");
    }
}

#[test]
fn events_name_items_only_some_versions_know() {
    let (mut later_only, mut start_only) = (0, 0);
    for seed in 0..10 {
        let case = generate(&with_changes(seed, 3));
        let start = start_hunt(&case);
        let (versions, _) = versions(&case);
        let later = |f: &dyn Fn(&Hunt) -> Vec<String>| {
            versions
                .iter()
                .flat_map(|(_, h)| f(h))
                .collect::<BTreeSet<_>>()
        };
        let clues = later(&|h| h.clues.clone());
        let sensors = later(&|h| h.sensors.clone());
        let rewards = later(&|h| h.rewards.iter().map(|r| r.id.clone()).collect());
        let start_rewards: Vec<String> = start.rewards.iter().map(|r| r.id.clone()).collect();
        for line in case.partitions.iter().flat_map(|p| lines(p)) {
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let name = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let (name, in_start, in_later) = match (name("action"), name("sensor")) {
                (Some(a), _) if a == "solve" => {
                    let c = name("target").unwrap_or_default();
                    (c.clone(), start.clues.contains(&c), clues.contains(&c))
                }
                (Some(a), _) if a == "claim" => {
                    let r = name("target").unwrap_or_default();
                    (r.clone(), start_rewards.contains(&r), rewards.contains(&r))
                }
                (_, Some(s)) => (s.clone(), start.sensors.contains(&s), sensors.contains(&s)),
                _ => continue,
            };
            if name.is_empty() {
                continue;
            }
            later_only += usize::from(in_later && !in_start);
            start_only += usize::from(in_start && !in_later);
        }
    }
    assert!(
        later_only > 10,
        "{later_only} events name items only changes add"
    );
    assert!(
        start_only > 10,
        "{start_only} events name items changes drop"
    );
}

#[test]
fn same_options_same_change_log() {
    let a = generate(&with_changes(5, 3));
    let b = generate(&with_changes(5, 3));
    assert_eq!(a.hunt_changes, b.hunt_changes);
    assert_eq!(a.partitions, b.partitions);
    assert_eq!(a.stats, b.stats);
    let c = generate(&with_changes(6, 3));
    assert_ne!(a.hunt_changes, c.hunt_changes);
    // The start hunt does not depend on the number of changes.
    let none = generate(&with_changes(5, 0));
    assert!(none.hunt_changes.is_empty());
    assert_eq!(
        (
            none.stats.hunt_changes_accepted,
            none.stats.hunt_changes_rejected
        ),
        (0, 0)
    );
    match (&a.hunt, &none.hunt) {
        (
            CaseHunt::Synthetic {
                toml: ta,
                zones_geojson: ga,
            },
            CaseHunt::Synthetic {
                toml: tb,
                zones_geojson: gb,
            },
        ) => assert_eq!((ta, ga), (tb, gb)),
        _ => panic!("not synthetic"),
    }
}

#[test]
fn change_log_files_match_memory() {
    let dir =
        std::env::temp_dir().join(format!("huntflow-generate-changes-{}", std::process::id()));
    let opts = with_changes(8, 2);
    let case = generate(&opts);
    let files = write_case_files(&case, &dir.join("h"), &dir.join("e")).expect("write");
    let path = files.hunt_changes.expect("a change log");
    assert_eq!(path, dir.join("e").join(HUNT_CHANGES_FILE));
    let expected: String = case.hunt_changes.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).ok(), Some(expected.clone()));
    let streamed =
        generate_to_files(&opts, &dir.join("h2"), &dir.join("e2")).expect("write streamed");
    let streamed_path = streamed.hunt_changes.expect("a streamed change log");
    assert_eq!(std::fs::read_to_string(streamed_path).ok(), Some(expected));
    assert_eq!(streamed.stats, case.stats);
    // No changes, no file.
    let plain = generate(&with_changes(8, 0));
    let files = write_case_files(&plain, &dir.join("h3"), &dir.join("e3")).expect("write");
    assert!(files.hunt_changes.is_none());
    assert!(!dir.join("e3").join(HUNT_CHANGES_FILE).exists());
    let _ = std::fs::remove_dir_all(&dir);
}
