//! The reference model checked against hand-computed results, and the engine
//! checked against the reference model on generated cases.

mod common;

use std::collections::BTreeMap;

use common::reference::{reference, RefOutput};
use common::{
    act, assert_same_output, case, case_options, check, header, pos, rejected_map, run_engine,
    sensor, write_inputs, Case, Scratch, ZONES,
};

fn enter_then_ttl_exit() -> Case {
    let toml = header(1000, 1000, 1000) + ZONES;
    let part = pos("e1", "p1", 100, 0.5, 0.5, None) + &pos("e2", "p\"2", 200, 10.5, 10.5, Some(50));
    let expected = r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":200,"kind":"enter","player":"p\"2","zone":"b","priority":5}
{"time":200,"kind":"occupancy","zone":"b","count":1}
{"time":250,"kind":"exit","player":"p\"2","zone":"b","priority":5}
{"time":250,"kind":"occupancy","zone":"b","count":0}
{"time":1100,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":1100,"kind":"occupancy","zone":"a","count":0}
"#;
    let mut c = case("enter_then_ttl_exit", &toml, &[&part], expected);
    c.summary = Some((2, 2, vec![]));
    c
}

fn out_of_order_position_lands_between() -> Case {
    let toml = header(1000, 1000, 1000) + ZONES;
    let part = pos("e1", "p1", 100, 0.5, 0.5, Some(5000))
        + &pos("e2", "p1", 300, 10.5, 10.5, Some(5000))
        + &pos("e3", "p1", 200, 50.0, 50.0, Some(5000));
    let expected = r#"{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":200,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":200,"kind":"occupancy","zone":"a","count":0}
{"time":300,"kind":"enter","player":"p1","zone":"b","priority":5}
{"time":300,"kind":"occupancy","zone":"b","count":1}
{"time":5300,"kind":"exit","player":"p1","zone":"b","priority":5}
{"time":5300,"kind":"occupancy","zone":"b","count":0}
"#;
    case(
        "out_of_order_position_lands_between",
        &toml,
        &[&part],
        expected,
    )
}

fn equal_timestamps_greater_id_wins() -> Case {
    let toml = header(1000, 1000, 1000) + ZONES;
    // "x2" > "x10" > "x1" bytewise; arrival order must not matter, across partitions either.
    let part1 = pos("x1", "p1", 100, 0.5, 0.5, None) + &pos("x2", "p1", 100, 10.5, 10.5, None);
    let part2 = pos("x10", "p1", 100, 0.5, 0.5, None);
    let expected = r#"{"time":100,"kind":"enter","player":"p1","zone":"b","priority":5}
{"time":100,"kind":"occupancy","zone":"b","count":1}
{"time":1100,"kind":"exit","player":"p1","zone":"b","priority":5}
{"time":1100,"kind":"occupancy","zone":"b","count":0}
"#;
    case(
        "equal_timestamps_greater_id_wins",
        &toml,
        &[&part1, &part2],
        expected,
    )
}

fn equal_timestamps_swapped_partitions() -> Case {
    let mut c = equal_timestamps_greater_id_wins();
    c.name = "equal_timestamps_swapped_partitions";
    c.partitions.reverse();
    c
}

fn change_undone_within_a_time_produces_nothing() -> Case {
    let toml = header(1000, 1000, 1000) + ZONES;
    // p1 leaves `a` at 200 by expiry and re-enters at 200; p2 leaves `b` as p3 enters it.
    let part = pos("e1", "p1", 100, 0.5, 0.5, Some(100))
        + &pos("e2", "p1", 200, 0.25, 0.25, None)
        + &pos("e3", "p2", 0, 10.5, 10.5, Some(500))
        + &pos("e4", "p3", 500, 10.2, 10.2, Some(500));
    let expected = r#"{"time":0,"kind":"enter","player":"p2","zone":"b","priority":5}
{"time":0,"kind":"occupancy","zone":"b","count":1}
{"time":100,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":100,"kind":"occupancy","zone":"a","count":1}
{"time":500,"kind":"exit","player":"p2","zone":"b","priority":5}
{"time":500,"kind":"enter","player":"p3","zone":"b","priority":5}
{"time":1000,"kind":"exit","player":"p3","zone":"b","priority":5}
{"time":1000,"kind":"occupancy","zone":"b","count":0}
{"time":1200,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":1200,"kind":"occupancy","zone":"a","count":0}
"#;
    case(
        "change_undone_within_a_time_produces_nothing",
        &toml,
        &[&part],
        expected,
    )
}

fn claims_windows_and_solve_ttl() -> Case {
    let toml = header(1000, 60000, 1000)
        + ZONES
        + r#"
[[rewards]]
id = "r1"
priority = 7
zone = "a"
requires = ["c1"]
active = { from = 1000, until = 5000 }
"#;
    let part = pos("a1", "p1", 0, 0.5, 0.5, None)
        + &pos("a2", "p2", 0, 0.5, 0.5, None)
        + &pos("a3", "p3", 0, 0.5, 0.5, None)
        + &pos("a4", "p4", 0, 0.5, 0.5, None)
        + &act("s4", "p4", 0, "solve", "c1", None)
        + &act("k4", "p4", 0, "claim", "r1", None)
        + &act("s1", "p1", 500, "solve", "c1", None)
        + &act("s2", "p2", 600, "solve", "c1", None)
        + &act("w2", "p2", 700, "wave", "r1", None)
        + &act("s3", "p3", 1500, "solve", "c1", Some(1000))
        + &act("k1", "p1", 2000, "claim", "r1", Some(1));
    let expected = r#"{"time":0,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":0,"kind":"enter","player":"p2","zone":"a","priority":2}
{"time":0,"kind":"enter","player":"p3","zone":"a","priority":2}
{"time":0,"kind":"enter","player":"p4","zone":"a","priority":2}
{"time":0,"kind":"occupancy","zone":"a","count":4}
{"time":1000,"kind":"eligible","player":"p1","reward":"r1","priority":7}
{"time":1000,"kind":"eligible","player":"p2","reward":"r1","priority":7}
{"time":1500,"kind":"eligible","player":"p3","reward":"r1","priority":7}
{"time":2000,"kind":"ineligible","player":"p1","reward":"r1","priority":7}
{"time":2500,"kind":"ineligible","player":"p3","reward":"r1","priority":7}
{"time":5000,"kind":"ineligible","player":"p2","reward":"r1","priority":7}
{"time":60000,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":60000,"kind":"exit","player":"p2","zone":"a","priority":2}
{"time":60000,"kind":"exit","player":"p3","zone":"a","priority":2}
{"time":60000,"kind":"exit","player":"p4","zone":"a","priority":2}
{"time":60000,"kind":"occupancy","zone":"a","count":0}
"#;
    case("claims_windows_and_solve_ttl", &toml, &[&part], expected)
}

fn sensor_reward_and_priority_order() -> Case {
    let toml = header(1000, 1000, 1000)
        + ZONES
        + r#"
[[rewards]]
id = "r2"
priority = 1
sensor = { id = "s1", min = -70.0, max = -10.0 }

[[rewards]]
id = "r3"
priority = 9
zone = "a"
"#;
    let part = sensor("v1", "p1", 100, "s1", -80.0)
        + &sensor("v2", "p1", 200, "s1", -60.0)
        + &sensor("v3", "p1", 250, "s2", -60.0)
        + &pos("e1", "p1", 300, 0.5, 0.5, None)
        + &sensor("v4", "p0", 300, "s1", -5.0)
        + &sensor("v5", "p0", 400, "s1", -10.0);
    let expected = r#"{"time":200,"kind":"eligible","player":"p1","reward":"r2","priority":1}
{"time":300,"kind":"eligible","player":"p1","reward":"r3","priority":9}
{"time":300,"kind":"enter","player":"p1","zone":"a","priority":2}
{"time":300,"kind":"occupancy","zone":"a","count":1}
{"time":400,"kind":"eligible","player":"p0","reward":"r2","priority":1}
{"time":1200,"kind":"ineligible","player":"p1","reward":"r2","priority":1}
{"time":1300,"kind":"ineligible","player":"p1","reward":"r3","priority":9}
{"time":1300,"kind":"exit","player":"p1","zone":"a","priority":2}
{"time":1300,"kind":"occupancy","zone":"a","count":0}
{"time":1400,"kind":"ineligible","player":"p0","reward":"r2","priority":1}
"#;
    case(
        "sensor_reward_and_priority_order",
        &toml,
        &[&part],
        expected,
    )
}

fn rejects_late_and_duplicates() -> Case {
    let toml = header(1000, 1000, 1000) + "max_accuracy_m = 50.0\n" + ZONES;
    let far = |id: &str, ts: u64| pos(id, "p", ts, 50.0, 50.0, None);
    let big = |len: usize| {
        let head = r#"{"id":"e5","type":"action","player":"p","ts":9000,"action":"wave","target":"x","pad":""#;
        format!("{head}{}\"}}\n", "x".repeat(len - head.len() - 2))
    };
    let mut part: Vec<u8> = Vec::new();
    let lines: Vec<String> = vec![
        far("e1", 5000),                                               // accepted, M = 5000
        far("e2", 3999),                                               // late
        far("e3", 4000),                                               // accepted
        far("e1", 5000),                                               // duplicate
        "\n".into(),                                                   // blank
        "  \t\r\n".into(),                                             // blank
        act("e4", "p", 10000, "wave", "x", None),                      // accepted, frontier 9000
        far("e1", 9500), // accepted: the earlier e1 is below the frontier
        far("e3", 4000), // late (before duplicate)
        act("e1", "p", 9000, "x", "y", None), // duplicate of the e1 at 9500
        "[1,2]\n".into(),
        "{\"id\":\"x\"\n".into(),
        "{\"id\":\"x\",\"type\":\"bogus\"}\n".into(),
        "{\"id\":\"x\",\"type\":\"bogus\",\"player\":\"p\",\"ts\":1.5}\n".into(),
        "{\"id\":\"x\",\"type\":\"bogus\",\"player\":\"p\",\"ts\":9000}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":100}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":100,\"lon\":0}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":true,\"lon\":0}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0,\"lon\":0,\"ttl_ms\":0}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0,\"lon\":0,\"priority\":10}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":null,\"lat\":0,\"lon\":0}\n".into(),
        "{\"id\":\"\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0,\"lon\":0}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0,\"lon\":0,\"accuracy_m\":60}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0,\"lon\":0,\"accuracy_m\":-1}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":1,\"lat\":0,\"lon\":0,\"accuracy_m\":60}\n".into(),
        "{\"id\":\"x\",\"type\":\"sensor\",\"player\":\"p\",\"ts\":9000,\"sensor\":\"s\",\"value\":\"1\"}\n".into(),
        "{\"id\":\"x\",\"type\":\"action\",\"player\":\"p\",\"ts\":9000,\"action\":\"solve\"}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":9007199254740993,\"lat\":0,\"lon\":0}\n".into(),
        big(64 * 1024 + 1),
        big(64 * 1024), // exactly 64 KiB: accepted
        "{\"id\":\"e6\",\"type\":\"position\",\"player\":\"p\",\"ts\":9000,\"lat\":0.5,\"lon\":0.5,\"accuracy_m\":50,\"extra\":{\"a\":[1]},\"priority\":9,\"ttl_ms\":1,\"value\":null}\n".into(),
        "{\"id\":\"x\",\"type\":5,\"player\":\"p\",\"ts\":9000}\n".into(),
        "{\"id\":\"x\",\"type\":\"position\",\"player\":\"p\",\"ts\":-1,\"lat\":0,\"lon\":0}\n".into(),
    ];
    for line in &lines {
        part.extend_from_slice(line.as_bytes());
    }
    part.extend_from_slice(b"{\"id\":\"\xff\"}\n"); // not UTF-8
    part.extend_from_slice(far("e7", 9200).trim_end().as_bytes()); // last line without a newline
    let other = far("e1", 5000); // duplicates are per partition
    let expected = r#"{"time":9000,"kind":"enter","player":"p","zone":"a","priority":2}
{"time":9000,"kind":"occupancy","zone":"a","count":1}
{"time":9001,"kind":"exit","player":"p","zone":"a","priority":2}
{"time":9001,"kind":"occupancy","zone":"a","count":0}
"#;
    let mut c = case("rejects_late_and_duplicates", &toml, &[], expected);
    c.partitions = vec![part, other.into_bytes()];
    let reasons = vec![
        ("malformed", 4),
        ("missing_field", 4),
        ("bad_field", 10),
        ("unknown_type", 1),
        ("bad_coordinates", 1),
        ("inaccurate", 2),
        ("late", 2),
        ("duplicate", 2),
    ];
    c.summary = Some((34, 8, reasons));
    c
}

fn empty_input_and_windows_without_players() -> Case {
    let toml = header(1000, 1000, 1000)
        + ZONES
        + "\n[[rewards]]\nid = \"r\"\nzone = \"a\"\nactive = { from = 5, until = 10 }\n";
    let mut c = case(
        "empty_input_and_windows_without_players",
        &toml,
        &[" \n\n", ""],
        "",
    );
    c.summary = Some((0, 0, vec![]));
    c
}

fn requires_several_clues() -> Case {
    let toml = header(1000, 1000, 1000)
        + ZONES
        + r#"
[[rewards]]
id = "all-three"
priority = 4
requires = ["c3", "c1", "c2"]

[[rewards]]
id = "two"
priority = 4
requires = ["c2", "c1"]
"#;
    let part = act("s2", "p1", 100, "solve", "c2", None)
        + &act("s1", "p1", 200, "solve", "c1", None)
        + &act("t3", "p2", 300, "solve", "c3", None)
        + &act("s3", "p1", 500, "solve", "c3", Some(100))
        + &act("s4", "p1", 900, "solve", "c3", None);
    let expected = r#"{"time":200,"kind":"eligible","player":"p1","reward":"two","priority":4}
{"time":500,"kind":"eligible","player":"p1","reward":"all-three","priority":4}
{"time":600,"kind":"ineligible","player":"p1","reward":"all-three","priority":4}
{"time":900,"kind":"eligible","player":"p1","reward":"all-three","priority":4}
"#;
    case("requires_several_clues", &toml, &[&part], expected)
}

fn integer_and_negative_numbers() -> Case {
    let toml = header(1000, 1000, 1000)
        + ZONES
        + r#"
[[zones]]
id = "c"
polygon = [[-3.0, -3.0], [-1.0, -3.0], [-1.0, -1.0], [-3.0, -1.0]]

[[rewards]]
id = "r"
priority = 1
sensor = { id = "s1", min = -70.0, max = -50.0 }
"#;
    let part = r#"{"id":"a","type":"position","player":"p","ts":100,"lat":-2,"lon":-2}
{"id":"b","type":"sensor","player":"p","ts":100,"sensor":"s1","value":-60}
{"id":"c","type":"sensor","player":"p","ts":200,"sensor":"s1","value":-7e1}
{"id":"d","type":"sensor","player":"p","ts":300,"sensor":"s1","value":-49}
{"id":"e","type":"position","player":"p","ts":400,"lat":0,"lon":1,"accuracy_m":0}
{"id":"f","type":"position","player":"z","ts":500,"lat":0.5,"lon":0.5,"ttl_ms":18446744073709551615}
"#;
    let expected = r#"{"time":100,"kind":"eligible","player":"p","reward":"r","priority":1}
{"time":100,"kind":"enter","player":"p","zone":"c","priority":0}
{"time":100,"kind":"occupancy","zone":"c","count":1}
{"time":300,"kind":"ineligible","player":"p","reward":"r","priority":1}
{"time":400,"kind":"enter","player":"p","zone":"a","priority":2}
{"time":400,"kind":"exit","player":"p","zone":"c","priority":0}
{"time":400,"kind":"occupancy","zone":"a","count":1}
{"time":400,"kind":"occupancy","zone":"c","count":0}
{"time":500,"kind":"enter","player":"z","zone":"a","priority":2}
{"time":500,"kind":"occupancy","zone":"a","count":2}
{"time":1400,"kind":"exit","player":"p","zone":"a","priority":2}
{"time":1400,"kind":"occupancy","zone":"a","count":1}
{"time":18446744073709551615,"kind":"exit","player":"z","zone":"a","priority":2}
{"time":18446744073709551615,"kind":"occupancy","zone":"a","count":0}
"#;
    let mut c = case("integer_and_negative_numbers", &toml, &[part], expected);
    c.summary = Some((6, 6, vec![]));
    c
}

/// Every hand-written case.
const CASES: &[fn() -> Case] = &[
    enter_then_ttl_exit,
    out_of_order_position_lands_between,
    equal_timestamps_greater_id_wins,
    equal_timestamps_swapped_partitions,
    change_undone_within_a_time_produces_nothing,
    claims_windows_and_solve_ttl,
    requires_several_clues,
    integer_and_negative_numbers,
    sensor_reward_and_priority_order,
    rejects_late_and_duplicates,
    empty_input_and_windows_without_players,
];

#[test]
fn reference_matches_hand_computed_results() {
    for case in CASES {
        check(&case());
    }
}

#[test]
fn engine_matches_hand_computed_results() {
    for case in CASES {
        let case = case();
        let dir = Scratch::new("hand");
        let (hunt, inputs) = write_inputs(&dir.path, &case.toml, &case.partitions);
        for workers in [1, 2] {
            let engine = run_engine(&dir.path, &hunt, &inputs, workers);
            let what = format!("engine, case {}, {workers} workers", case.name);
            assert_same_output(&what, &case.expected, &engine.notifications);
            if let Some((read, accepted, reasons)) = &case.summary {
                let want = rejected_map(reasons.iter().copied());
                let got = (engine.read, engine.accepted, &engine.rejected);
                assert_eq!(got, (*read, *accepted, &want), "{what}");
            }
        }
    }
}

/// Generates case `seed`, runs the reference model and the engine at 1, 2 and 4
/// workers, and requires identical notifications and summaries.
fn compare_with_engine(seed: u64) -> RefOutput {
    let opts = case_options(seed, 0);
    let case = huntflow::generate::generate(&opts);
    let dir = Scratch::new(&format!("seed{seed}"));
    let (hunt_path, inputs) =
        huntflow::generate::write_case(&case, &dir.join("hunt"), &dir.join("events"))
            .expect("write case");
    let hunt = huntflow::model::hunt::Hunt::load(&hunt_path).expect("generated hunt loads");
    let model = reference(&hunt, &case.partitions);
    let rejected: u64 = model.rejected.values().sum();
    assert_eq!(
        model.read,
        model.accepted + rejected,
        "seed {seed}: reference does not balance"
    );
    let stats_rejected = rejected_map(case.stats.rejected.iter().map(|(k, v)| (*k, *v)));
    assert_eq!(
        (model.read, model.accepted, &model.rejected),
        (case.stats.lines, case.stats.accepted, &stats_rejected),
        "seed {seed}: reference summary differs from the generator's own count"
    );
    for workers in [1, 2, 4] {
        let engine = run_engine(&dir.path, &hunt_path, &inputs, workers);
        let what = format!("seed {seed} ({opts:?}), {workers} workers");
        assert_same_output(&what, &model.notifications, &engine.notifications);
        assert_eq!(
            (engine.read, engine.accepted, &engine.rejected),
            (model.read, model.accepted, &model.rejected),
            "{what}: summary differs from the reference"
        );
    }
    model
}

#[test]
fn engine_matches_reference_on_generated_cases() {
    let seeds: u64 = std::env::var("HUNTFLOW_REF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 0..seeds {
        let model = compare_with_engine(seed);
        for kind in ["enter", "exit", "eligible", "ineligible", "occupancy"] {
            let n = model
                .notifications
                .matches(&format!("\"kind\":\"{kind}\""))
                .count() as u64;
            *seen.entry(kind.to_string()).or_default() += n;
        }
        for (reason, n) in model.rejected {
            *seen.entry(reason).or_default() += n;
        }
    }
    // The generated cases must exercise every kind of notification and every reject reason.
    if seeds >= 10 {
        for key in [
            "enter",
            "exit",
            "eligible",
            "ineligible",
            "occupancy",
            "malformed",
            "missing_field",
            "bad_field",
            "unknown_type",
            "bad_coordinates",
            "inaccurate",
            "late",
            "duplicate",
        ] {
            assert!(
                seen.get(key).copied().unwrap_or(0) > 0,
                "no {key} in {seeds} generated cases: {seen:?}"
            );
        }
    }
}

/// Two partitions deliver different events with the same (ts, id) for one player.
/// docs/spec.md §5 does not say which is "the greatest"; whatever the engine picks must not
/// depend on the number of workers (docs/spec.md §7).
#[test]
fn engine_tie_across_partitions_is_deterministic() {
    let toml = header(1000, 1000, 1000)
        + ZONES
        + "\n[[rewards]]\nid = \"r\"\nsensor = { id = \"s\", min = 0.0 }\n";
    let part0 = pos("x", "p", 100, 0.5, 0.5, None) + &sensor("v", "p", 100, "s", -1.0);
    let part1 = pos("x", "p", 100, 10.5, 10.5, None) + &sensor("v", "p", 100, "s", 1.0);
    let dir = Scratch::new("tie");
    let (hunt, inputs) = write_inputs(&dir.path, &toml, &[part0.into_bytes(), part1.into_bytes()]);
    let one = run_engine(&dir.path, &hunt, &inputs, 1).notifications;
    for workers in [2, 4] {
        let out = run_engine(&dir.path, &hunt, &inputs, workers).notifications;
        assert_same_output(&format!("tie, 1 vs {workers} workers"), &one, &out);
    }
}
