//! The reference model checked against hand-computed results, and the engine
//! checked against the reference model on generated cases.

mod common;

use std::collections::BTreeMap;

use common::reference::{reference, RefOutput};
use common::{assert_same_output, load_hunt, Scratch};

/// Two square zones: `a` (priority 2) around lon/lat 0..1, `b` (priority 5) around 10..11.
const ZONES: &str = r#"
[[zones]]
id = "a"
priority = 2
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[zones]]
id = "b"
priority = 5
polygon = [[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0]]
"#;

fn header(lateness: u64, position_ttl: u64, sensor_ttl: u64) -> String {
    format!(
        "name = \"ref\"\nmax_lateness_ms = {lateness}\nposition_ttl_ms = {position_ttl}\nsensor_ttl_ms = {sensor_ttl}\n"
    )
}

/// A hand-written case with its hand-computed notifications and summary.
struct Case {
    name: &'static str,
    toml: String,
    partitions: Vec<Vec<u8>>,
    expected: String,
    /// (read, accepted, rejected by reason), when the case checks it.
    summary: Option<(u64, u64, Vec<(&'static str, u64)>)>,
}

fn case(name: &'static str, toml: &str, partitions: &[&str], expected: &str) -> Case {
    Case {
        name,
        toml: toml.to_string(),
        partitions: partitions.iter().map(|p| p.as_bytes().to_vec()).collect(),
        expected: expected.to_string(),
        summary: None,
    }
}

fn rejected_map<K: ToString>(pairs: impl IntoIterator<Item = (K, u64)>) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Runs the reference model on a hand-written case and checks it against the hand-computed result.
fn check(case: &Case) -> RefOutput {
    let dir = Scratch::new("ref");
    let hunt = load_hunt(&dir.path, &case.toml);
    let out = reference(&hunt, &case.partitions);
    assert_same_output(
        &format!("reference, case {}", case.name),
        &case.expected,
        &out.notifications,
    );
    let rejected: u64 = out.rejected.values().sum();
    assert_eq!(out.read, out.accepted + rejected, "case {}", case.name);
    if let Some((read, accepted, reasons)) = &case.summary {
        let want = rejected_map(reasons.iter().copied());
        assert_eq!(
            (out.read, out.accepted, &out.rejected),
            (*read, *accepted, &want),
            "case {}",
            case.name
        );
    }
    out
}

fn pos(id: &str, player: &str, ts: u64, lat: f64, lon: f64, ttl: Option<u64>) -> String {
    let ttl = ttl.map(|t| format!(",\"ttl_ms\":{t}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"type\":\"position\",\"player\":{},\"ts\":{ts},\"lat\":{lat:?},\"lon\":{lon:?}{ttl}}}\n",
        serde_json::to_string(player).unwrap()
    )
}

fn act(id: &str, player: &str, ts: u64, action: &str, target: &str, ttl: Option<u64>) -> String {
    let ttl = ttl.map(|t| format!(",\"ttl_ms\":{t}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"type\":\"action\",\"player\":\"{player}\",\"ts\":{ts},\"action\":\"{action}\",\"target\":\"{target}\"{ttl}}}\n"
    )
}

fn sensor(id: &str, player: &str, ts: u64, name: &str, value: f64) -> String {
    format!(
        "{{\"id\":\"{id}\",\"type\":\"sensor\",\"player\":\"{player}\",\"ts\":{ts},\"sensor\":\"{name}\",\"value\":{value:?}}}\n"
    )
}

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

/// Every hand-written case.
const CASES: &[fn() -> Case] = &[
    enter_then_ttl_exit,
    out_of_order_position_lands_between,
    equal_timestamps_greater_id_wins,
    equal_timestamps_swapped_partitions,
    change_undone_within_a_time_produces_nothing,
    claims_windows_and_solve_ttl,
    requires_several_clues,
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
    use huntflow::backfill::{run, BackfillOptions};
    for case in CASES {
        let case = case();
        let dir = Scratch::new("hand");
        let hunt_path = dir.join("hunt.toml");
        std::fs::write(&hunt_path, &case.toml).expect("write hunt");
        let mut inputs = Vec::new();
        for (i, bytes) in case.partitions.iter().enumerate() {
            let path = dir.join(&format!("part-{i}.jsonl"));
            std::fs::write(&path, bytes).expect("write partition");
            inputs.push(path);
        }
        for workers in [1, 2] {
            let out_path = dir.join(&format!("out-{workers}.jsonl"));
            let mut opts = BackfillOptions::new(hunt_path.clone(), inputs.clone());
            opts.workers = workers;
            opts.output = Some(out_path.clone());
            let summary = run(&opts).unwrap_or_else(|e| panic!("case {}: {e}", case.name));
            let engine = std::fs::read_to_string(&out_path).expect("read engine output");
            assert_same_output(
                &format!("engine, case {}, {workers} workers", case.name),
                &case.expected,
                &engine,
            );
            if let Some((read, accepted, reasons)) = &case.summary {
                let want = rejected_map(reasons.iter().copied());
                let got = rejected_map(summary.rejected.iter().map(|(k, v)| (*k, *v)));
                assert_eq!(
                    (summary.read, summary.accepted, &got),
                    (*read, *accepted, &want),
                    "case {}",
                    case.name
                );
            }
        }
    }
}

/// Options for one small generated case; everything that can go wrong does, often.
fn case_options(seed: u64) -> huntflow::generate::GenerateOptions {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_cafe);
    let lateness = rng.random_range(500..=3_000);
    huntflow::generate::GenerateOptions {
        seed,
        events: rng.random_range(300..=1500),
        players: rng.random_range(5..=30),
        zones: 8,
        rewards: 6,
        clues: 4,
        sensors: 3,
        partitions: rng.random_range(1..=3),
        rate_per_s: rng.random_range(5.0..200.0),
        disorder_ms: lateness * 3 / 4,
        late_rate: 0.02,
        duplicate_rate: 0.03,
        malformed_rate: 0.03,
        equal_ts_rate: 0.08,
        short_ttl_rate: 0.2,
        max_lateness_ms: lateness,
        position_ttl_ms: rng.random_range(2_000..=20_000),
        sensor_ttl_ms: rng.random_range(1_000..=10_000),
        extent_m: 400.0,
        ..Default::default()
    }
}

/// Generates case `seed`, runs the reference model and the engine at 1, 2 and 4
/// workers, and requires identical notifications and summaries.
fn compare_with_engine(seed: u64) -> RefOutput {
    use huntflow::backfill::{run, BackfillOptions};
    let opts = case_options(seed);
    let case = huntflow::generate::generate(&opts);
    let dir = Scratch::new(&format!("seed{seed}"));
    let (hunt_path, inputs) =
        huntflow::generate::write_case(&case, &dir.join("hunt"), &dir.join("events"))
            .expect("write case");
    let hunt = huntflow::hunt::Hunt::load(&hunt_path).expect("generated hunt loads");
    let model = reference(&hunt, &case.partitions);
    let rejected: u64 = model.rejected.values().sum();
    assert_eq!(
        model.read,
        model.accepted + rejected,
        "seed {seed}: reference does not balance"
    );
    let stats_rejected: BTreeMap<String, u64> = case
        .stats
        .rejected
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(
        (model.read, model.accepted, &model.rejected),
        (case.stats.lines, case.stats.accepted, &stats_rejected),
        "seed {seed}: reference summary differs from the generator's own count"
    );
    for workers in [1, 2, 4] {
        let out_path = dir.join(&format!("out-{workers}.jsonl"));
        let mut backfill = BackfillOptions::new(hunt_path.clone(), inputs.clone());
        backfill.workers = workers;
        backfill.output = Some(out_path.clone());
        let summary =
            run(&backfill).unwrap_or_else(|e| panic!("seed {seed}, {workers} workers: {e}"));
        let engine = std::fs::read_to_string(&out_path).expect("read engine output");
        assert_same_output(
            &format!("seed {seed} ({opts:?}), {workers} workers"),
            &model.notifications,
            &engine,
        );
        let engine_rejected: BTreeMap<String, u64> = summary
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(
            (summary.read, summary.accepted, &engine_rejected),
            (model.read, model.accepted, &model.rejected),
            "seed {seed}, {workers} workers: summary differs from the reference"
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
