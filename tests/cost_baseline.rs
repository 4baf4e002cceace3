//! The COST baseline (`benches/cost/baseline.rs`) must produce exactly the
//! engine's notifications and summary: on small noisy generated datasets
//! (disorder, duplicates, late and malformed records, short TTLs, equal
//! timestamps, reward windows), on a few larger ones, on hand-written edge
//! cases and on the bundled demo.

#[path = "../benches/cost/baseline.rs"]
mod baseline;
mod common;

use std::path::{Path, PathBuf};

use huntflow::generate::{generate, write_case, GenerateOptions};
use huntflow::input::stats::Summary;
use huntflow::job::backfill::{run, BackfillOptions};
use huntflow::model::hunt::Hunt;

use common::{assert_same_output, Scratch};

/// Runs the engine (1 worker) and the baseline over the same files and
/// requires the same notification bytes and summary. Returns the output.
fn compare(what: &str, dir: &Path, hunt_path: &Path, inputs: &[PathBuf]) -> Vec<u8> {
    let out = dir.join("engine.jsonl");
    let mut opts = BackfillOptions::new(hunt_path.to_path_buf(), inputs.to_vec());
    opts.output = Some(out.clone());
    let engine_summary = run(&opts).unwrap_or_else(|e| panic!("{what}: engine fails: {e}"));
    let engine = std::fs::read(&out).expect("read engine output");

    let hunt = Hunt::load(hunt_path).expect("hunt loads");
    let mut ours = Vec::new();
    let summary: Summary = baseline::run(&hunt, inputs, &mut ours)
        .unwrap_or_else(|e| panic!("{what}: baseline fails: {e}"));
    assert_same_output(
        &format!("{what}: baseline against the engine"),
        &String::from_utf8_lossy(&engine),
        &String::from_utf8_lossy(&ours),
    );
    assert_eq!(summary, engine_summary, "{what}: summaries differ");
    engine
}

/// A small generated case where everything that can go wrong does, often.
fn noisy(seed: u64) -> GenerateOptions {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xc057_ba5e);
    let lateness = rng.random_range(500..=3_000);
    GenerateOptions {
        seed,
        events: rng.random_range(300..=2_000),
        players: rng.random_range(5..=40),
        zones: rng.random_range(3..=10),
        rewards: rng.random_range(3..=8),
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

fn check_generated(label: &str, opts: &GenerateOptions) -> Vec<u8> {
    let case = generate(opts);
    let dir = Scratch::new(label);
    let (hunt_path, inputs) =
        write_case(&case, &dir.join("hunt"), &dir.join("events")).expect("write case");
    compare(
        &format!("{label} ({opts:?})"),
        &dir.path,
        &hunt_path,
        &inputs,
    )
}

#[test]
fn baseline_matches_engine_on_noisy_generated_cases() {
    const KINDS: [&str; 5] = ["enter", "exit", "eligible", "ineligible", "occupancy"];
    let mut kinds = [0u64; 5];
    for seed in 0..40 {
        let out = check_generated(&format!("noisy-{seed}"), &noisy(seed));
        let text = String::from_utf8(out).expect("UTF-8 output");
        for (n, kind) in kinds.iter_mut().zip(KINDS) {
            *n += text.matches(&format!("\"kind\":\"{kind}\"")).count() as u64;
        }
    }
    assert!(
        kinds.iter().all(|&n| n > 0),
        "every kind of notification occurs: {kinds:?}"
    );
}

#[test]
fn baseline_matches_engine_on_larger_generated_cases() {
    for seed in 0..3 {
        let opts = GenerateOptions {
            seed: 100 + seed,
            events: 30_000,
            players: 300,
            zones: 30,
            rewards: 12,
            partitions: 2 + seed as u32,
            rate_per_s: 150.0,
            ..Default::default()
        };
        check_generated(&format!("larger-{seed}"), &opts);
    }
}

#[test]
fn baseline_matches_engine_on_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hunt = root.join("dataflows/demo/hunt.toml");
    let Ok(entries) = std::fs::read_dir(root.join("datasets/demo")) else {
        eprintln!("no datasets/demo: skipped");
        return;
    };
    let mut parts: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".jsonl"))
        })
        .collect();
    parts.sort();
    if !hunt.exists() || parts.is_empty() {
        eprintln!("no demo hunt or partitions: skipped");
        return;
    }
    compare("demo", &Scratch::new("demo").path, &hunt, &parts);
}

const EDGE_HUNT: &str = r#"
name = "edge"
max_lateness_ms = 1000
position_ttl_ms = 1000
sensor_ttl_ms = 1000

[[zones]]
id = "a"
priority = 2
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[zones]]
id = "b"
priority = 5
circle = { lat = 10.5, lon = 10.5, radius_m = 50000.0 }

[[rewards]]
id = "clue-only"
priority = 4
requires = ["c1", "c2"]
active = { from = 500, until = 9000 }

[[rewards]]
id = "late-open"
priority = 1
zone = "a"
active = { from = 20000 }

[[rewards]]
id = "sensor-in-b"
priority = 4
zone = "b"
sensor = { id = "s1", min = -60.0, max = -10.0 }
"#;

fn pos(id: &str, player: &str, ts: u64, lat: f64, lon: f64, extra: &str) -> String {
    format!("{{\"id\":\"{id}\",\"type\":\"position\",\"player\":\"{player}\",\"ts\":{ts},\"lat\":{lat:?},\"lon\":{lon:?}{extra}}}\n")
}

fn act(id: &str, player: &str, ts: u64, verb: &str, target: &str, extra: &str) -> String {
    format!("{{\"id\":\"{id}\",\"type\":\"action\",\"player\":\"{player}\",\"ts\":{ts},\"action\":\"{verb}\",\"target\":\"{target}\"{extra}}}\n")
}

fn reading(id: &str, player: &str, ts: u64, value: f64, extra: &str) -> String {
    format!("{{\"id\":\"{id}\",\"type\":\"sensor\",\"player\":\"{player}\",\"ts\":{ts},\"sensor\":\"s1\",\"value\":{value:?}{extra}}}\n")
}

/// Window boundaries after the last event, equal `(ts, id)` across
/// partitions with different content, claims, expiring solves, and a TTL
/// that saturates the expiry at the largest time.
#[test]
fn baseline_matches_engine_on_edge_cases() {
    let p0 = [
        act("s1", "p1", 0, "solve", "c1", ""),
        act("s2", "p1", 100, "solve", "c2", ",\"ttl_ms\":5000"),
        act("s3", "p2", 100, "solve", "c1", ""),
        act("s4", "p2", 100, "solve", "c2", ""),
        pos("x", "p3", 200, 0.5, 0.5, ""),
        pos("y", "p4", 300, 0.25, 0.25, ",\"ttl_ms\":30000"),
        reading("r1", "p5", 300, -20.0, ",\"ttl_ms\":400"),
        pos("q", "p5", 300, 10.5, 10.5, ""),
        act("k1", "p2", 4000, "claim", "clue-only", ""),
        pos(
            "z",
            "p6",
            4000,
            0.5,
            0.5,
            &format!(",\"ttl_ms\":{}", u64::MAX),
        ),
        act("s5", "p1", 4500, "solve", "c2", ",\"ttl_ms\":100"),
        pos("w", "p7", 4500, 10.5, 10.5, ",\"ttl_ms\":700"),
        reading("r2", "p7", 4500, -30.0, ""),
        reading("r3", "p7", 4700, -5.0, ""),
        act("s6", "p8", 4700, "solve", "c1", ""),
        act("s7", "p8", 4700, "solve", "c2", ""),
    ]
    .concat();
    let p1 = [
        pos("x", "p3", 200, 10.5, 10.5, ""),
        reading("r1", "p5", 300, -80.0, ",\"ttl_ms\":900"),
        pos("v", "p4", 300, 10.4, 10.4, ""),
    ]
    .concat();
    let dir = Scratch::new("edge");
    let hunt_path = dir.join("hunt.toml");
    std::fs::write(&hunt_path, EDGE_HUNT).expect("write hunt");
    let mut inputs = Vec::new();
    for (i, part) in [p0, p1].iter().enumerate() {
        let path = dir.join(&format!("part-{i}.jsonl"));
        std::fs::write(&path, part).expect("write partition");
        inputs.push(path);
    }
    let out = compare("edge", &dir.path, &hunt_path, &inputs);
    let text = String::from_utf8(out).expect("UTF-8 output");
    for want in [
        "{\"time\":500,\"kind\":\"eligible\",\"player\":\"p2\",\"reward\":\"clue-only\",\"priority\":4}",
        "{\"time\":9000,\"kind\":\"ineligible\",\"player\":\"p8\",\"reward\":\"clue-only\",\"priority\":4}",
        "{\"time\":20000,\"kind\":\"eligible\",\"player\":\"p6\",\"reward\":\"late-open\",\"priority\":1}",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    inputs.reverse();
    compare("edge, partitions swapped", &dir.path, &hunt_path, &inputs);
}
