//! Valid hunts: defaults, zones merged and sorted, docs/spec.md §5 zone membership, interning,
//! and the demo hunt.

use super::*;
use huntflow::model::hunt::{SensorCondition, Window};
use huntflow::model::zones::{haversine_m, Shape};
use rand::{Rng, SeedableRng};

// ---- valid hunts ----

#[test]
fn defaults() {
    let hunt = load("defaults", &format!("{ZONE}{REWARD}"), None);
    assert_eq!(hunt.name, "hunt");
    assert_eq!(hunt.max_lateness_ms, 5000);
    assert_eq!(hunt.position_ttl_ms, 60_000);
    assert_eq!(hunt.sensor_ttl_ms, 30_000);
    assert_eq!(hunt.max_accuracy_m, None);
    assert_eq!(hunt.zones[0].priority, 0);
    assert_eq!(hunt.rewards[0].priority, 0);
    assert_eq!(hunt.rewards[0].zone, Some(0));
    assert!(hunt.rewards[0].requires.is_empty());
    assert_eq!(hunt.rewards[0].sensor, None);
    assert_eq!(hunt.rewards[0].active, None);
    assert!(hunt.clues.is_empty() && hunt.sensors.is_empty());
    assert!(hunt.path.ends_with("defaults/hunt.toml"));

    let empty = load("empty", "", None);
    assert!(empty.zones.is_empty() && empty.rewards.is_empty());
    let mut out = vec![7];
    empty.zones_at(48.0, 2.0, &mut out);
    assert!(out.is_empty());

    let set = load(
        "settings",
        "name = \"x\"\nmax_lateness_ms = 0\nposition_ttl_ms = 1\nsensor_ttl_ms = 2\nmax_accuracy_m = 0\n",
        None,
    );
    assert_eq!(
        (
            set.name.as_str(),
            set.max_lateness_ms,
            set.position_ttl_ms,
            set.sensor_ttl_ms
        ),
        ("x", 0, 1, 2)
    );
    assert_eq!(set.max_accuracy_m, Some(0.0));
}

#[test]
fn zones_merged_and_sorted() {
    let toml = r#"
zones_geojson = "zones.geojson"
[[zones]]
id = "m"
priority = 2
circle = { lat = 48.0, lon = 2.0, radius_m = 10.0 }
[[zones]]
id = "B"
polygon = [[2.0, 48.0], [2.1, 48.0], [2.0, 48.1]]
[[rewards]]
id = "r2"
zone = "a"
[[rewards]]
id = "r1"
zone = "m"
"#;
    let geojson = fc(&[
        &feature(r#"{"id": "z", "priority": 9, "name": "ignored"}"#, SQUARE),
        &feature(r#"{"id": "a", "priority": null}"#, SQUARE),
    ]);
    let hunt = load("zones_merged_and_sorted", toml, Some(&geojson));
    let ids: Vec<&str> = hunt.zones.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["B", "a", "m", "z"]);
    let priorities: Vec<u8> = hunt.zones.iter().map(|z| z.priority).collect();
    assert_eq!(priorities, [0, 0, 2, 9]);
    assert_eq!(hunt.zone_number("a"), Some(1));
    assert_eq!(hunt.zone_number("z"), Some(3));
    assert_eq!(hunt.zone_number("q"), None);
    let rewards: Vec<(&str, Option<u32>)> = hunt
        .rewards
        .iter()
        .map(|r| (r.id.as_str(), r.zone))
        .collect();
    assert_eq!(rewards, [("r1", Some(2)), ("r2", Some(1))]);
    assert_eq!(hunt.reward_number("r2"), Some(1));
    assert_eq!(hunt.reward_number("r3"), None);
}

#[test]
fn holes_excluded_and_boundary_inside() {
    let toml = r#"
zones_geojson = "zones.geojson"
[[zones]]
id = "square"
polygon = [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]
holes = [[[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0], [1.0, 1.0]]]
"#;
    let geojson = fc(&[&feature(
        r#"{"id": "park"}"#,
        r#"{"type": "Polygon", "coordinates": [
            [[10.0, 0.0], [14.0, 0.0], [14.0, 4.0], [10.0, 4.0], [10.0, 0.0]],
            [[11.0, 1.0], [12.0, 1.0], [12.0, 2.0], [11.0, 2.0], [11.0, 1.0]]]}"#,
    )]);
    let hunt = load("holes_excluded", toml, Some(&geojson));
    let (park, square) = (0u32, 1u32);
    let mut out = Vec::new();
    let mut at = |lat: f64, lon: f64| {
        hunt.zones_at(lat, lon, &mut out);
        out.clone()
    };
    // Interior, edges, corners and hole edges are inside; hole interiors are not.
    assert_eq!(at(3.0, 3.0), [square]);
    assert_eq!(at(0.0, 2.0), [square]);
    assert_eq!(at(4.0, 4.0), [square]);
    assert_eq!(at(0.0, 0.0), [square]);
    assert_eq!(at(1.5, 1.0), [square]);
    assert_eq!(at(1.0, 1.0), [square]);
    assert!(at(1.5, 1.5).is_empty());
    assert!(at(-0.000001, 2.0).is_empty());
    assert!(at(2.0, 4.000001).is_empty());
    assert_eq!(at(3.0, 13.0), [park]);
    assert_eq!(at(2.0, 11.5), [park]);
    assert!(at(1.5, 11.5).is_empty());
    assert_eq!(at(4.0, 14.0), [park]);
}

#[test]
fn circle_edge() {
    let toml = r#"
[[zones]]
id = "c"
circle = { lat = 48.853, lon = 2.3499, radius_m = 40.0 }
"#;
    let hunt = load("circle_edge", toml, None);
    let Shape::Circle { lat, lon, radius_m } = hunt.zones[0].shape else {
        panic!("not a circle")
    };
    assert_eq!((lat, lon, radius_m), (48.853, 2.3499, 40.0));
    // 40 m north is about 0.000359739 degrees of latitude.
    let dlat = 40.0 / 6_371_008.8f64 * 180.0 / std::f64::consts::PI;
    let mut out = Vec::new();
    hunt.zones_at(48.853 + dlat * 0.9999, 2.3499, &mut out);
    assert_eq!(out, [0]);
    hunt.zones_at(48.853 + dlat * 1.0001, 2.3499, &mut out);
    assert!(out.is_empty());
    // A point exactly at the radius (as the haversine formula measures it) is inside.
    let (plat, plon) = (48.8532, 2.3503);
    let d = haversine_m(48.853, 2.3499, plat, plon);
    let exact = Shape::Circle {
        lat: 48.853,
        lon: 2.3499,
        radius_m: d,
    };
    assert!(exact.contains(plat, plon));
    let smaller = Shape::Circle {
        lat: 48.853,
        lon: 2.3499,
        radius_m: d * (1.0 - 1e-12),
    };
    assert!(!smaller.contains(plat, plon));
}

#[test]
fn multipolygon_and_point_circle() {
    let multi = r#"{"type": "MultiPolygon", "coordinates": [
        [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]],
        [[[3.0, 0.0], [4.0, 0.0], [4.0, 1.0], [3.0, 1.0], [3.0, 0.0]]]]}"#;
    let point = r#"{"type": "Point", "coordinates": [10.0, 0.0]}"#;
    let geojson = fc(&[
        &feature(r#"{"id": "islands", "priority": 6}"#, multi),
        &feature(r#"{"id": "well", "radius_m": 1000}"#, point),
    ]);
    let hunt = load(
        "multipolygon_and_point_circle",
        "zones_geojson = \"zones.geojson\"\n",
        Some(&geojson),
    );
    assert_eq!(hunt.zones[0].id, "islands");
    assert_eq!(hunt.zones[0].priority, 6);
    let Shape::Polygons(mp) = &hunt.zones[0].shape else {
        panic!("not polygons")
    };
    assert_eq!(mp.0.len(), 2);
    assert_eq!(
        hunt.zones[1].shape,
        Shape::Circle {
            lat: 0.0,
            lon: 10.0,
            radius_m: 1000.0
        }
    );
    let mut out = Vec::new();
    hunt.zones_at(0.5, 0.5, &mut out);
    assert_eq!(out, [0]);
    hunt.zones_at(0.5, 3.5, &mut out);
    assert_eq!(out, [0]);
    hunt.zones_at(0.5, 2.0, &mut out);
    assert!(out.is_empty());
    hunt.zones_at(0.005, 10.005, &mut out);
    assert_eq!(out, [1]);
    hunt.zones_at(0.01, 10.0, &mut out);
    assert!(out.is_empty());
}

#[test]
fn overlapping_zones_ascending() {
    let toml = r#"
[[zones]]
id = "c"
circle = { lat = 0.5, lon = 0.5, radius_m = 100.0 }
[[zones]]
id = "b"
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
[[zones]]
id = "a"
polygon = [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6]]
"#;
    let hunt = load("overlapping_zones_ascending", toml, None);
    let mut out = vec![99];
    hunt.zones_at(0.5, 0.5, &mut out);
    assert_eq!(out, [0, 1, 2]);
    hunt.zones_at(0.9, 0.9, &mut out);
    assert_eq!(out, [1]);
}

#[test]
fn clue_and_sensor_interning() {
    let toml = r#"
[[rewards]]
id = "b"
priority = 4
requires = ["clue-3", "clue-1", "clue-3"]
sensor = { id = "beacon-2", min = -70.0 }
[[rewards]]
id = "a"
requires = ["clue-2", "clue-1"]
sensor = { id = "beacon-1", max = -10 }
active = { from = 100, until = 200 }
[[rewards]]
id = "c"
sensor = { id = "beacon-2" }
active = { until = 50 }
"#;
    let hunt = load("clue_and_sensor_interning", toml, None);
    assert_eq!(hunt.clues, ["clue-1", "clue-2", "clue-3"]);
    assert_eq!(hunt.sensors, ["beacon-1", "beacon-2"]);
    assert_eq!(hunt.clue_number("clue-2"), Some(1));
    assert_eq!(hunt.clue_number("clue-9"), None);
    assert_eq!(hunt.sensor_number("beacon-2"), Some(1));
    assert_eq!(hunt.sensor_number("beacon-3"), None);

    let [a, b, c] = &hunt.rewards[..] else {
        panic!("three rewards")
    };
    assert_eq!(
        (a.id.as_str(), b.id.as_str(), c.id.as_str()),
        ("a", "b", "c")
    );
    assert_eq!(a.requires, [0, 1]);
    assert_eq!(b.requires, [0, 2]);
    assert_eq!(b.priority, 4);
    assert_eq!(
        a.sensor,
        Some(SensorCondition {
            sensor: 0,
            min: None,
            max: Some(-10.0)
        })
    );
    assert_eq!(b.sensor.unwrap().sensor, 1);
    assert_eq!(
        (
            a.condition_count(),
            b.condition_count(),
            c.condition_count()
        ),
        (3, 3, 1)
    );

    let s = b.sensor.unwrap();
    assert!(s.holds(-70.0) && s.holds(0.0) && !s.holds(-70.5));
    let s = a.sensor.unwrap();
    assert!(s.holds(-10.0) && s.holds(-1000.0) && !s.holds(-9.0));
    assert!(c.sensor.unwrap().holds(f64::MAX));

    let w = a.active.unwrap();
    assert_eq!(
        w,
        Window {
            from: Some(100),
            until: Some(200)
        }
    );
    assert!(!w.contains(99) && w.contains(100) && w.contains(199) && !w.contains(200));
    let w = c.active.unwrap();
    assert!(w.contains(0) && w.contains(49) && !w.contains(50));
}

// ---- the demo hunt ----

fn demo() -> Hunt {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml");
    Hunt::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn demo_hunt_loads() {
    let hunt = demo();
    assert_eq!(hunt.name, "demo");
    assert_eq!(
        (
            hunt.max_lateness_ms,
            hunt.position_ttl_ms,
            hunt.sensor_ttl_ms,
            hunt.max_accuracy_m
        ),
        (5000, 60_000, 30_000, Some(50.0))
    );
    assert_eq!(
        hunt.clues,
        ["clue-1", "clue-2", "clue-3", "clue-4", "clue-5"]
    );
    assert_eq!(hunt.sensors, ["beacon-1", "beacon-2", "beacon-3"]);
    assert!(hunt.rewards.len() >= 3);
    // Every kind of condition is used somewhere.
    assert!(hunt.rewards.iter().any(|r| r.zone.is_some()));
    assert!(hunt.rewards.iter().any(|r| r.requires.len() >= 2));
    assert!(hunt
        .rewards
        .iter()
        .any(|r| r.sensor.is_some_and(|s| s.min.is_some())));
    assert!(hunt
        .rewards
        .iter()
        .any(|r| r.sensor.is_some_and(|s| s.max.is_some())));
    assert!(hunt.rewards.iter().any(|r| r
        .active
        .is_some_and(|w| w.from.is_some() && w.until.is_some())));
    for r in &hunt.rewards {
        if let Some(w) = r.active {
            assert!(w.from.unwrap_or(0) < 3_600_000 && w.until.unwrap_or(1) > 0);
        }
    }
    let circles = hunt
        .zones
        .iter()
        .filter(|z| matches!(z.shape, Shape::Circle { .. }))
        .count();
    assert!(circles >= 2);
    assert!(hunt.zones.iter().any(|z| match &z.shape {
        Shape::Polygons(mp) => mp.0.iter().any(|p| !p.interiors().is_empty()),
        _ => false,
    }));
    assert!(hunt.zones.iter().any(|z| match &z.shape {
        Shape::Polygons(mp) => mp.0.len() >= 2,
        _ => false,
    }));
}

/// Over random points of the demo box, the indexed lookup agrees with testing every zone,
/// every zone is hit, and a good share of points is in some zone.
#[test]
fn demo_zones_cover_the_box_and_index_is_exact() {
    let hunt = demo();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    let mut hits = vec![0u32; hunt.zones.len()];
    let mut covered = 0;
    let n = 20_000;
    for _ in 0..n {
        let lat = rng.random_range(48.840..48.870);
        let lon = rng.random_range(2.330..2.370);
        hunt.zones_at(lat, lon, &mut out);
        let brute: Vec<u32> = (0..hunt.zones.len() as u32)
            .filter(|&z| hunt.zones[z as usize].shape.contains(lat, lon))
            .collect();
        assert_eq!(out, brute, "at ({lat}, {lon})");
        covered += usize::from(!out.is_empty());
        for &z in &out {
            hits[z as usize] += 1;
        }
    }
    assert!(hits.iter().all(|&h| h > 0), "{hits:?}");
    let share = covered as f64 / n as f64;
    assert!(share > 0.35, "only {share} of the box is in a zone");
}
