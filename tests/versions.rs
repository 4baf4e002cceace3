//! Hunt versions (docs/spec.md §9): hand-written cases, one per rule, checked against the
//! reference model and against the engine (the `huntflow backfill --hunt-changes` command at
//! 1, 2 and 4 workers); then generated cases with change logs, the engine against the
//! reference model byte for byte (notifications, rejects, summary).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::reference::{reference_with_changes, RefOutput, RejectSource};
use common::{
    act, assert_same_output, case_options, expected_rejects, header, load_hunt, pos, reject_places,
    sensor, written_case, Scratch, WrittenCase,
};
use serde_json::{json, Map, Value};

/// A square zone `[from, to]²` (lon and lat) as a TOML `[[zones]]` table.
fn square(id: &str, priority: u8, from: f64, to: f64) -> String {
    format!(
        "\n[[zones]]\nid = \"{id}\"\npriority = {priority}\npolygon = [[{from:?}, {from:?}], [{to:?}, {from:?}], [{to:?}, {to:?}], [{from:?}, {to:?}]]\n"
    )
}

/// A `[[rewards]]` table with the given priority and condition lines.
fn reward(id: &str, priority: u8, conditions: &str) -> String {
    format!("\n[[rewards]]\nid = \"{id}\"\npriority = {priority}\n{conditions}\n")
}

/// The start hunt of most cases: zones `a` (priority 2, [0, 1]²) and `b` (priority 5,
/// [10, 11]²), lateness 1000 ms, default TTLs 10 s.
fn base() -> String {
    header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0) + &square("b", 5, 10.0, 11.0)
}

/// One change record line.
fn change(effective: u64, toml: &str, zones_geojson: Option<Value>) -> String {
    let mut obj = Map::new();
    obj.insert("effective".into(), json!(effective));
    obj.insert("hunt".into(), json!(toml));
    if let Some(g) = zones_geojson {
        obj.insert("zones_geojson".into(), g);
    }
    format!("{}\n", Value::Object(obj))
}

/// A hand-written versions case.
struct VCase {
    name: &'static str,
    toml: String,
    changes: String,
    partitions: Vec<String>,
    expected: &'static str,
    /// Change records accepted and rejected.
    hunt_changes: (u64, u64),
    /// The rejects file as (reason, from the change log?, line); checked when set.
    rejects: Option<Vec<(&'static str, bool, u64)>>,
}

fn vcase(
    name: &'static str,
    toml: String,
    changes: &[String],
    partitions: &[String],
    expected: &'static str,
) -> VCase {
    VCase {
        name,
        toml,
        changes: changes.concat(),
        hunt_changes: (changes.len() as u64, 0),
        partitions: partitions.to_vec(),
        expected,
        rejects: None,
    }
}

fn inside_under_both_versions_gets_nothing() -> VCase {
    // Zone a grows from [0, 1]² to [0, 2]² at 500: p1 stays inside, p2 is now inside.
    let v1 = header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 2.0) + &square("b", 5, 10.0, 11.0);
    let part = pos("e1", "p1", 100, 0.5, 0.5, None) + &pos("e2", "p2", 100, 1.5, 1.5, None);
    vcase(
        "inside_under_both_versions_gets_nothing",
        base(),
        &[change(500, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":500,"kind":"enter","player":"p2","zone":"a","priority":2}
{"time":500,"kind":"occupancy","zone":"a","count":2}
{"time":10100,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":10100,"kind":"exit","player":"p2","zone":"a","priority":2}
{"time":10100,"kind":"occupancy","zone":"a","count":0}
"#,
    )
}

fn removed_zone_exits_with_occupancy_zero() -> VCase {
    let v1 = header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0);
    let part = pos("e1", "p1", 100, 10.5, 10.5, None) + &pos("e2", "p2", 100, 0.5, 0.5, None);
    vcase(
        "removed_zone_exits_with_occupancy_zero",
        base(),
        &[change(500, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"b","priority":5}
{"time":100,"kind":"enter","player":"p2","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":100,"kind":"occupancy","zone":"b","count":1}
{"time":500,"kind":"exit","player":"p1","zone":"b","priority":5}
{"time":500,"kind":"occupancy","zone":"b","count":0}
{"time":10100,"kind":"exit","player":"p2","zone":"a","priority":2}
{"time":10100,"kind":"occupancy","zone":"a","count":0}
"#,
    )
}

fn added_zone_around_standing_player_enters() -> VCase {
    // Zone c, a circle in the record's GeoJSON, appears at 500 around p1.
    let v1 = header(1000, 10_000, 10_000)
        + "zones_geojson = \"zones.geojson\"\n"
        + &square("a", 2, 0.0, 1.0)
        + &square("b", 5, 10.0, 11.0);
    let zones = json!({"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"id": "c", "priority": 4, "radius_m": 1000.0},
        "geometry": {"type": "Point", "coordinates": [20.5, 20.5]}
    }]});
    let part =
        pos("e1", "p1", 100, 20.5, 20.5, None) + &pos("e2", "p2", 700, 20.5, 20.5, Some(100));
    vcase(
        "added_zone_around_standing_player_enters",
        base(),
        &[change(500, &v1, Some(zones))],
        &[part],
        r#"{"time":500,"kind":"enter","player":"p1","zone":"c","priority":4}
{"time":500,"kind":"occupancy","zone":"c","count":1}
{"time":700,"kind":"enter","player":"p2","zone":"c","priority":4}
{"time":700,"kind":"occupancy","zone":"c","count":2}
{"time":800,"kind":"exit","player":"p2","zone":"c","priority":4}
{"time":800,"kind":"occupancy","zone":"c","count":1}
{"time":10100,"kind":"exit","player":"p1","zone":"c","priority":4}
{"time":10100,"kind":"occupancy","zone":"c","count":0}
"#,
    )
}

fn solve_counts_for_a_reward_added_later() -> VCase {
    let r1 = reward("r1", 1, "requires = [\"c1\"]");
    let toml = base() + &r1;
    let v1 = base() + &r1 + &reward("r2", 3, "requires = [\"c1\"]");
    // p1's solve (v0) counts for r2 at 500; p2's expired before; p3's claim of r2 under v0
    // had no effect (v0 does not know r2); p4's claim of r1 keeps r1 from it, not r2, until
    // p4 claims r2 under v1.
    let part = act("s1", "p1", 100, "solve", "c1", None)
        + &act("s2", "p2", 100, "solve", "c1", Some(200))
        + &act("k3", "p3", 200, "claim", "r2", None)
        + &act("k4", "p4", 200, "claim", "r1", None)
        + &act("s3", "p3", 300, "solve", "c1", None)
        + &act("s4", "p4", 300, "solve", "c1", None)
        + &act("k5", "p4", 700, "claim", "r2", None);
    vcase(
        "solve_counts_for_a_reward_added_later",
        toml,
        &[change(500, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"eligible","player":"p1","reward":"r1","priority":1}
{"time":100,"kind":"eligible","player":"p2","reward":"r1","priority":1}
{"time":300,"kind":"ineligible","player":"p2","reward":"r1","priority":1}
{"time":300,"kind":"eligible","player":"p3","reward":"r1","priority":1}
{"time":500,"kind":"eligible","player":"p1","reward":"r2","priority":3}
{"time":500,"kind":"eligible","player":"p3","reward":"r2","priority":3}
{"time":500,"kind":"eligible","player":"p4","reward":"r2","priority":3}
{"time":700,"kind":"ineligible","player":"p4","reward":"r2","priority":3}
"#,
    )
}

fn reading_of_an_unknown_sensor_has_no_effect() -> VCase {
    let by_sensor = reward("r1", 1, "sensor = { id = \"s1\", min = -70.0 }");
    let toml = base() + &by_sensor;
    let v1 = base() + &reward("r1", 1, "requires = [\"c1\"]");
    let v2 = base() + &by_sensor;
    // Under v1 no reward reads s1: p1's -90 neither counts nor supersedes its -60 of v0, and
    // p2's -60 never counts.
    let part = sensor("v1", "p1", 100, "s1", -60.0)
        + &sensor("v2", "p1", 1000, "s1", -90.0)
        + &sensor("v3", "p2", 1000, "s1", -60.0);
    vcase(
        "reading_of_an_unknown_sensor_has_no_effect",
        toml,
        &[change(500, &v1, None), change(1500, &v2, None)],
        &[part],
        r#"{"time":100,"kind":"eligible","player":"p1","reward":"r1","priority":1}
{"time":500,"kind":"ineligible","player":"p1","reward":"r1","priority":1}
{"time":1500,"kind":"eligible","player":"p1","reward":"r1","priority":1}
{"time":10100,"kind":"ineligible","player":"p1","reward":"r1","priority":1}
"#,
    )
}

fn solve_of_an_unknown_clue_has_no_effect() -> VCase {
    let r1 = reward("r1", 1, "requires = [\"c1\"]");
    let v1 = base() + &r1 + &reward("r2", 6, "requires = [\"c2\"]");
    // p1's solve of c2 comes before any version knows c2; p4's, at the effective time itself,
    // is interpreted by v1.
    let part = act("s1", "p1", 100, "solve", "c2", None)
        + &act("s3", "p3", 100, "solve", "c1", None)
        + &act("s4", "p4", 500, "solve", "c2", None)
        + &act("s2", "p2", 600, "solve", "c2", None);
    vcase(
        "solve_of_an_unknown_clue_has_no_effect",
        base() + &r1,
        &[change(500, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"eligible","player":"p3","reward":"r1","priority":1}
{"time":500,"kind":"eligible","player":"p4","reward":"r2","priority":6}
{"time":600,"kind":"eligible","player":"p2","reward":"r2","priority":6}
"#,
    )
}

fn equal_effective_times_the_later_record_wins() -> VCase {
    let grown =
        header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 2.0) + &square("b", 5, 10.0, 11.0);
    let reprioritized =
        header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0) + &square("b", 9, 10.0, 11.0);
    // Had the first record won, p1 would enter a at 500.
    let part = pos("e1", "p1", 100, 1.5, 1.5, None) + &pos("e2", "p2", 600, 10.5, 10.5, None);
    vcase(
        "equal_effective_times_the_later_record_wins",
        base(),
        &[change(500, &grown, None), change(500, &reprioritized, None)],
        &[part],
        r#"{"time":600,"kind":"enter","player":"p2","zone":"b","priority":9}
{"time":600,"kind":"occupancy","zone":"b","count":1}
{"time":10600,"kind":"exit","player":"p2","zone":"b","priority":9}
{"time":10600,"kind":"occupancy","zone":"b","count":0}
"#,
    )
}

fn effective_zero_replaces_the_start_hunt() -> VCase {
    // From time 0: zone a is [0, 2]² with priority 6 and positions last 2 s.
    let v0 = header(1000, 2_000, 10_000) + &square("a", 6, 0.0, 2.0) + &square("b", 5, 10.0, 11.0);
    let part = pos("e1", "p1", 100, 1.5, 1.5, None);
    vcase(
        "effective_zero_replaces_the_start_hunt",
        base(),
        &[change(0, &v0, None)],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":6}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":2100,"kind":"exit","player":"p1","zone":"a","priority":6}
{"time":2100,"kind":"occupancy","zone":"a","count":0}
"#,
    )
}

fn default_ttls_of_the_version_at_ts() -> VCase {
    let r1 = reward("r1", 1, "sensor = { id = \"s1\", min = -70.0 }");
    let v1 =
        header(1000, 1_000, 300) + &square("a", 2, 0.0, 1.0) + &square("b", 5, 10.0, 11.0) + &r1;
    // Before 500 positions and readings last 10 s; from 500 (p5's position included), 1 s
    // and 0.3 s.
    let part = pos("e1", "p1", 100, 0.5, 0.5, None)
        + &sensor("v3", "p3", 200, "s1", -60.0)
        + &pos("e5", "p5", 500, 10.5, 10.5, None)
        + &pos("e2", "p2", 600, 0.5, 0.5, None)
        + &sensor("v4", "p4", 700, "s1", -60.0);
    vcase(
        "default_ttls_of_the_version_at_ts",
        base() + &r1,
        &[change(500, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":200,"kind":"eligible","player":"p3","reward":"r1","priority":1}
{"time":500,"kind":"enter","player":"p5","zone":"b","priority":5}
{"time":500,"kind":"occupancy","zone":"b","count":1}
{"time":600,"kind":"enter","player":"p2","zone":"a","priority":2}
{"time":600,"kind":"occupancy","zone":"a","count":2}
{"time":700,"kind":"eligible","player":"p4","reward":"r1","priority":1}
{"time":1000,"kind":"ineligible","player":"p4","reward":"r1","priority":1}
{"time":1500,"kind":"exit","player":"p5","zone":"b","priority":5}
{"time":1500,"kind":"occupancy","zone":"b","count":0}
{"time":1600,"kind":"exit","player":"p2","zone":"a","priority":2}
{"time":1600,"kind":"occupancy","zone":"a","count":1}
{"time":10100,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":10100,"kind":"occupancy","zone":"a","count":0}
{"time":10200,"kind":"ineligible","player":"p3","reward":"r1","priority":1}
"#,
    )
}

fn windows_end_when_the_reward_is_dropped_or_rewritten() -> VCase {
    let toml = base()
        + &reward("r1", 3, "zone = \"a\"\nactive = { until = 5000 }")
        + &reward("r2", 2, "zone = \"a\"\nactive = { from = 200 }")
        + &reward("r3", 1, "zone = \"a\"\nactive = { until = 3000 }");
    // At 1000 r1 is dropped, r2 waits until 2000, r3 stays active (nothing at 1000).
    let v1 = base()
        + &reward("r2", 2, "zone = \"a\"\nactive = { from = 2000 }")
        + &reward(
            "r3",
            1,
            "zone = \"a\"\nactive = { from = 500, until = 3000 }",
        );
    let part = pos("e1", "p1", 100, 0.5, 0.5, None);
    vcase(
        "windows_end_when_the_reward_is_dropped_or_rewritten",
        toml,
        &[change(1000, &v1, None)],
        &[part],
        r#"{"time":100,"kind":"eligible","player":"p1","reward":"r1","priority":3}
{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"eligible","player":"p1","reward":"r3","priority":1}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":200,"kind":"eligible","player":"p1","reward":"r2","priority":2}
{"time":1000,"kind":"ineligible","player":"p1","reward":"r1","priority":3}
{"time":1000,"kind":"ineligible","player":"p1","reward":"r2","priority":2}
{"time":2000,"kind":"eligible","player":"p1","reward":"r2","priority":2}
{"time":3000,"kind":"ineligible","player":"p1","reward":"r3","priority":1}
{"time":10100,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":10100,"kind":"ineligible","player":"p1","reward":"r2","priority":2}
{"time":10100,"kind":"occupancy","zone":"a","count":0}
"#,
    )
}

fn priorities_of_removed_items() -> VCase {
    let toml = base() + &reward("rb", 1, "zone = \"b\"");
    // v1 changes only priorities: nothing at 300; v2 removes b and rb: p1's exit and
    // ineligible at 500 carry v1's priorities.
    let v1 = header(1000, 10_000, 10_000)
        + &square("a", 2, 0.0, 1.0)
        + &square("b", 7, 10.0, 11.0)
        + &reward("rb", 8, "zone = \"b\"");
    let v2 =
        header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0) + &reward("ra", 0, "zone = \"a\"");
    let part = pos("e1", "p1", 100, 10.5, 10.5, None) + &pos("e2", "p2", 400, 10.5, 10.5, Some(50));
    vcase(
        "priorities_of_removed_items",
        toml,
        &[change(300, &v1, None), change(500, &v2, None)],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"b","priority":5}
{"time":100,"kind":"eligible","player":"p1","reward":"rb","priority":1}
{"time":100,"kind":"occupancy","zone":"b","count":1}
{"time":400,"kind":"eligible","player":"p2","reward":"rb","priority":8}
{"time":400,"kind":"enter","player":"p2","zone":"b","priority":7}
{"time":400,"kind":"occupancy","zone":"b","count":2}
{"time":450,"kind":"ineligible","player":"p2","reward":"rb","priority":8}
{"time":450,"kind":"exit","player":"p2","zone":"b","priority":7}
{"time":450,"kind":"occupancy","zone":"b","count":1}
{"time":500,"kind":"ineligible","player":"p1","reward":"rb","priority":8}
{"time":500,"kind":"exit","player":"p1","zone":"b","priority":7}
{"time":500,"kind":"occupancy","zone":"b","count":0}
"#,
    )
}

fn bad_change_records_are_rejected_first() -> VCase {
    let reprioritized =
        header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0) + &square("b", 9, 10.0, 11.0);
    let only_a = header(1000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0);
    // Top-level keys go before the first table.
    let with_key = |key: &str| header(1000, 10_000, 10_000) + key + &square("a", 2, 0.0, 1.0);
    let names_geojson = with_key("zones_geojson = \"zones.geojson\"\n");
    let log = [
        change(500, &reprioritized, None),
        "  \r\n".to_string(),
        // Another max_lateness_ms.
        change(
            600,
            &(header(2000, 10_000, 10_000) + &square("a", 2, 0.0, 1.0)),
            None,
        ),
        "{\"effective\": 700, \"hunt\": \n".to_string(),
        // A max_accuracy_m where the start hunt has none (absent counts as a value).
        change(700, &with_key("max_accuracy_m = 50.0\n"), None),
        // The TOML names a GeoJSON file, the record has no zones_geojson.
        change(700, &names_geojson, None),
        // A reward in an unknown zone.
        change(
            700,
            &(only_a.clone() + &reward("r", 1, "zone = \"nowhere\"")),
            None,
        ),
        "{\"effective\":800,\"hunt\":42}\n".to_string(),
        change(700, &only_a, None).replace("\"effective\":700", "\"effective\":-5"),
        // zones_geojson not an object.
        change(800, &names_geojson, Some(json!("zones.geojson"))),
    ];
    let part = pos("e1", "p1", 100, 10.5, 10.5, None) + "oops\n";
    let mut c = vcase(
        "bad_change_records_are_rejected_first",
        base(),
        &log,
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"b","priority":5}
{"time":100,"kind":"occupancy","zone":"b","count":1}
{"time":10100,"kind":"exit","player":"p1","zone":"b","priority":9}
{"time":10100,"kind":"occupancy","zone":"b","count":0}
"#,
    );
    c.hunt_changes = (1, 8);
    let mut rejects: Vec<(&str, bool, u64)> = (3..=10)
        .map(|line| ("bad_hunt_change", true, line))
        .collect();
    rejects.push(("malformed", false, 2));
    c.rejects = Some(rejects);
    c
}

fn blank_change_log_changes_nothing() -> VCase {
    let part = pos("e1", "p1", 100, 0.5, 0.5, None);
    let mut c = vcase(
        "blank_change_log_changes_nothing",
        base(),
        &["\n".to_string(), " \t\r\n".to_string()],
        &[part],
        r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":10100,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":10100,"kind":"occupancy","zone":"a","count":0}
"#,
    );
    // The summary still carries "hunt_changes" (a change log was given), with 0 and 0.
    c.hunt_changes = (0, 0);
    c
}

/// Every hand-written case.
const CASES: &[fn() -> VCase] = &[
    blank_change_log_changes_nothing,
    inside_under_both_versions_gets_nothing,
    removed_zone_exits_with_occupancy_zero,
    added_zone_around_standing_player_enters,
    solve_counts_for_a_reward_added_later,
    reading_of_an_unknown_sensor_has_no_effect,
    solve_of_an_unknown_clue_has_no_effect,
    equal_effective_times_the_later_record_wins,
    effective_zero_replaces_the_start_hunt,
    default_ttls_of_the_version_at_ts,
    windows_end_when_the_reward_is_dropped_or_rewritten,
    priorities_of_removed_items,
    bad_change_records_are_rejected_first,
];

/// The reference model on a hand-written case, checked against its hand-computed result.
fn check_reference(case: &VCase, dir: &Path) -> RefOutput {
    let hunt = load_hunt(dir, &case.toml);
    let parts: Vec<Vec<u8>> = case
        .partitions
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let out = reference_with_changes(&hunt, Some(case.changes.as_bytes()), &parts);
    assert_same_output(
        &format!("reference, case {}", case.name),
        case.expected,
        &out.notifications,
    );
    let counts = out.hunt_changes.expect("a change log was given");
    assert_eq!(
        (counts.accepted, counts.rejected),
        case.hunt_changes,
        "case {}: change records accepted / rejected",
        case.name
    );
    if let Some(want) = &case.rejects {
        let got: Vec<(&str, bool, u64)> = out
            .rejects
            .iter()
            .map(|r| {
                let changes = r.source == RejectSource::Changes;
                (r.reason.as_str(), changes, r.line)
            })
            .collect();
        assert_eq!(&got, want, "case {}: rejects", case.name);
    }
    out
}

#[test]
fn reference_matches_hand_computed_version_results() {
    for case in CASES {
        let case = case();
        let dir = Scratch::new("vref");
        check_reference(&case, &dir.path);
    }
}

/// What one `huntflow backfill` run wrote.
struct CliRun {
    notifications: String,
    summary: String,
    /// (reason, source, line) of each line of the rejects file.
    rejects: Vec<(String, String, u64)>,
}

/// Runs `huntflow backfill` with `workers` workers, every output to a file in `dir`.
fn run_cli(
    dir: &Path,
    hunt: &Path,
    changes: Option<&Path>,
    inputs: &[PathBuf],
    workers: usize,
) -> CliRun {
    let output = dir.join(format!("out-{workers}.jsonl"));
    let rejects = dir.join(format!("rejects-{workers}.jsonl"));
    let summary = dir.join(format!("summary-{workers}.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_huntflow"));
    cmd.arg("backfill").arg("--hunt").arg(hunt);
    if let Some(changes) = changes {
        cmd.arg("--hunt-changes").arg(changes);
    }
    cmd.arg("-w")
        .arg(workers.to_string())
        .arg("--output")
        .arg(&output)
        .arg("--rejects")
        .arg(&rejects)
        .arg("--summary")
        .arg(&summary)
        .args(inputs);
    let run = cmd.output().expect("run huntflow");
    assert!(
        run.status.success(),
        "huntflow backfill -w {workers} failed ({}): {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let rejects = reject_places(&read(&rejects));
    CliRun {
        notifications: read(&output),
        summary: read(&summary).trim_end().to_string(),
        rejects,
    }
}

/// Runs the engine at 1, 2 and 4 workers and requires the reference model's notifications,
/// rejects and summary.
fn compare_engine(
    what: &str,
    dir: &Path,
    (hunt, changes, inputs): (&Path, Option<&Path>, &[PathBuf]),
    model: &RefOutput,
) {
    let rejects = expected_rejects(&model.rejects, changes, inputs);
    for workers in [1, 2, 4] {
        let run = run_cli(dir, hunt, changes, inputs, workers);
        let what = format!("{what}, {workers} workers");
        assert_same_output(&what, &model.notifications, &run.notifications);
        assert_eq!(run.summary, model.summary_json(), "{what}: summary");
        assert_eq!(run.rejects, rejects, "{what}: rejects file");
    }
}

/// Writes a hand-written case's files into `dir`: the hunt, the change log, the partitions.
fn write_vcase(dir: &Path, case: &VCase) -> (PathBuf, PathBuf, Vec<PathBuf>) {
    let hunt = dir.join("hunt.toml");
    std::fs::write(&hunt, &case.toml).expect("write hunt");
    let changes = dir.join("hunt-changes.jsonl");
    std::fs::write(&changes, &case.changes).expect("write change log");
    let inputs = case
        .partitions
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("part-{i}.jsonl"));
            std::fs::write(&path, text).expect("write partition");
            path
        })
        .collect();
    (hunt, changes, inputs)
}

#[test]
fn engine_matches_hand_computed_version_results() {
    for case in CASES {
        let case = case();
        let dir = Scratch::new("vhand");
        let model = check_reference(&case, &dir.path);
        let (hunt, changes, inputs) = write_vcase(&dir.path, &case);
        let what = format!("engine, case {}", case.name);
        compare_engine(&what, &dir.path, (&hunt, Some(&changes), &inputs), &model);
    }
}

/// Generates case `seed` with `changes` change records, runs the reference model, checks it
/// against the generator's own counts and, with `engine`, compares the engine with it.
fn generated_case(seed: u64, changes: u32, engine: bool) -> (RefOutput, Vec<u64>) {
    let opts = case_options(seed, changes);
    let WrittenCase {
        dir,
        case,
        files,
        model,
    } = written_case(&opts, &format!("vseed{seed}"));
    let stats = &case.stats;
    let rejected: BTreeMap<String, u64> = stats
        .rejected
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(
        (model.read, model.accepted, &model.rejected),
        (stats.lines, stats.accepted, &rejected),
        "seed {seed}: reference summary differs from the generator's own count"
    );
    let counts = model.hunt_changes.unwrap_or_default();
    assert_eq!(
        (counts.accepted, counts.rejected),
        (stats.hunt_changes_accepted, stats.hunt_changes_rejected),
        "seed {seed}: change records accepted / rejected"
    );
    assert_eq!(model.hunt_changes.is_some(), changes > 0);
    // The accepted effective times, read back from the log (for coverage counts).
    let effective: Vec<u64> = case
        .hunt_changes
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("effective").and_then(Value::as_u64))
        .collect();
    if engine {
        let what = format!("seed {seed} ({opts:?})");
        let paths = (
            files.hunt_toml.as_path(),
            files.hunt_changes.as_deref(),
            files.partitions.as_slice(),
        );
        compare_engine(&what, &dir.path, paths, &model);
    }
    (model, effective)
}

#[test]
fn reference_handles_generated_change_logs() {
    // The reference model alone: counts agree with the generator, and the generated change
    // logs make notifications happen at effective times.
    let mut at_change: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejected = 0;
    for seed in 0..50 {
        let (model, effective) = generated_case(seed, 1 + (seed % 3) as u32, false);
        rejected += model.hunt_changes.map_or(0, |c| c.rejected);
        for line in model.notifications.lines() {
            let v: Value = serde_json::from_str(line).expect("notification JSON");
            let time = v["time"].as_u64().expect("time");
            if effective.contains(&time) {
                let kind = v["kind"].as_str().unwrap_or_default().to_string();
                *at_change.entry(kind).or_default() += 1;
            }
        }
    }
    assert!(rejected > 0, "no rejected change record in 50 cases");
    for kind in ["enter", "exit", "eligible", "ineligible", "occupancy"] {
        assert!(
            at_change.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} at an effective time: {at_change:?}"
        );
    }
}

#[test]
fn engine_matches_reference_on_generated_change_logs() {
    let seeds: u64 = std::env::var("HUNTFLOW_VERSION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    for seed in 0..seeds {
        generated_case(seed, 1 + (seed % 3) as u32, true);
    }
}

/// Without a change log the same comparison holds today: notifications, the rejects file
/// (order included) and the summary (without `hunt_changes`).
#[test]
fn engine_matches_reference_without_change_log() {
    for seed in 100..110 {
        generated_case(seed, 0, true);
    }
}

/// A generated case whose change log repeats the start hunt itself at time 0 and at two
/// times inside the events' span, written to `dir`: its paths (hunt, change log, partitions),
/// and the reference model's output with and without the change log.
fn identical_versions_case(
    seed: u64,
    dir: &Path,
) -> ((PathBuf, PathBuf, Vec<PathBuf>), RefOutput, RefOutput) {
    let case = huntflow::generate::generate(&case_options(seed, 0));
    let files = huntflow::generate::write_case_files(&case, &dir.join("hunt"), &dir.join("events"))
        .expect("write case");
    let huntflow::generate::CaseHunt::Synthetic {
        toml,
        zones_geojson,
    } = &case.hunt
    else {
        panic!("not synthetic")
    };
    let zones: Value = serde_json::from_str(zones_geojson).expect("zones GeoJSON is JSON");
    let times: Vec<u64> = case
        .partitions
        .iter()
        .flat_map(|p| p.split(|b| *b == b'\n'))
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter_map(|v| v.get("ts").and_then(Value::as_u64))
        .collect();
    let (lo, hi) = (
        times.iter().min().copied().unwrap_or(0),
        times.iter().max().copied().unwrap_or(0),
    );
    let log: String = [0, lo + (hi - lo) / 3, lo + (hi - lo) / 3 * 2]
        .iter()
        .map(|t| change(*t, toml, Some(zones.clone())))
        .collect();
    let path = dir.join("identical-changes.jsonl");
    std::fs::write(&path, &log).expect("write change log");
    let hunt = huntflow::model::hunt::Hunt::load(&files.hunt_toml).expect("hunt loads");
    let with = reference_with_changes(&hunt, Some(log.as_bytes()), &case.partitions);
    let without = reference_with_changes(&hunt, None, &case.partitions);
    ((files.hunt_toml, path, files.partitions), with, without)
}

#[test]
fn identical_versions_change_nothing() {
    for seed in 200..210 {
        let dir = Scratch::new(&format!("vsame{seed}"));
        let (_, with, without) = identical_versions_case(seed, &dir.path);
        assert_same_output(
            &format!("seed {seed}: identical versions"),
            &without.notifications,
            &with.notifications,
        );
        let counts = with.hunt_changes.map(|c| (c.accepted, c.rejected));
        assert_eq!(counts, Some((3, 0)), "seed {seed}");
    }
}

#[test]
fn engine_ignores_changes_to_an_identical_hunt() {
    for seed in 200..205 {
        let dir = Scratch::new(&format!("vsame-engine{seed}"));
        let ((hunt, changes, inputs), model, _) = identical_versions_case(seed, &dir.path);
        let what = format!("seed {seed}, identical versions");
        compare_engine(&what, &dir.path, (&hunt, Some(&changes), &inputs), &model);
    }
}
