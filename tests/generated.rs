//! Generated datasets through the engine: for synthetic hunts and for an existing hunt, the
//! backfill summary equals the generator's predicted counts exactly; and the bundled demo
//! dataset is reproducible and exercises every notification kind and every reward.
//!
//! The bundled demo dataset `datasets/demo/part-000.jsonl` and `part-001.jsonl` was written by:
//!
//! ```text
//! cargo build --release
//! target/release/huntflow generate --for-hunt dataflows/demo/hunt.toml --events-dir datasets/demo \
//!     --seed 1 --events 50000 --partitions 2 --players 200 --start-ms 0 --rate 14
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use huntflow::generate::{self, GenerateOptions, GenerateStats};
use huntflow::input::stats::Summary;
use huntflow::job::backfill::{self, BackfillOptions};
use huntflow::model::hunt::Hunt;

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn demo_hunt() -> Arc<Hunt> {
    Arc::new(Hunt::load(&manifest_path("dataflows/demo/hunt.toml")).expect("demo hunt loads"))
}

/// A fresh scratch directory under Cargo's per-target temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("generated")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// Runs a backfill of `inputs`, notifications to `dir/out.jsonl`.
fn backfill(dir: &Path, hunt: PathBuf, inputs: Vec<PathBuf>, workers: usize) -> Summary {
    let mut opts = BackfillOptions::new(hunt, inputs);
    opts.workers = workers;
    opts.output = Some(dir.join("out.jsonl"));
    opts.summary = Some(dir.join("summary.json"));
    backfill::run(&opts).expect("backfill runs")
}

fn assert_matches(summary: &Summary, stats: &GenerateStats, what: &str) {
    let rejected: u64 = summary.rejected.values().sum();
    assert_eq!(
        summary.read,
        summary.accepted + rejected,
        "{what}: unbalanced"
    );
    assert_eq!(
        (summary.read, summary.accepted, &summary.rejected),
        (stats.lines, stats.accepted, &stats.rejected),
        "{what}: summary differs from the generator's prediction"
    );
}

/// Generates `opts` to files, backfills them and compares the summary with the prediction.
fn check(name: &str, opts: &GenerateOptions, workers: usize) -> Summary {
    let dir = scratch(name);
    let files = generate::generate_to_files(opts, &dir.join("hunt"), &dir.join("events"))
        .unwrap_or_else(|e| panic!("{name}: generate: {e}"));
    assert_eq!(files.partitions.len(), opts.partitions.max(1) as usize);
    let summary = backfill(&dir, files.hunt_toml, files.partitions, workers);
    assert_matches(&summary, &files.stats, name);
    summary
}

fn noisy(seed: u64) -> GenerateOptions {
    GenerateOptions {
        seed,
        events: 15_000,
        players: 40,
        partitions: 3,
        rate_per_s: 30.0,
        malformed_rate: 0.08,
        late_rate: 0.03,
        duplicate_rate: 0.04,
        equal_ts_rate: 0.06,
        short_ttl_rate: 0.15,
        ..GenerateOptions::default()
    }
}

#[test]
fn synthetic_hunts_match_the_predicted_summary() {
    let cases = [
        ("synthetic-1", noisy(1), 1),
        ("synthetic-2", noisy(2), 2),
        (
            "synthetic-3-wide-disorder",
            GenerateOptions {
                disorder_ms: 9_000,
                max_lateness_ms: 2_000,
                max_accuracy_m: None,
                partitions: 1,
                ..noisy(3)
            },
            1,
        ),
        (
            "synthetic-4-tiny",
            GenerateOptions {
                events: 400,
                players: 3,
                zones: 2,
                rewards: 2,
                partitions: 4,
                malformed_rate: 0.3,
                ..noisy(4)
            },
            2,
        ),
    ];
    for (name, opts, workers) in cases {
        let summary = check(name, &opts, workers);
        assert!(summary.rejected.len() >= 7, "{name}: {summary:?}");
    }
}

#[test]
fn existing_hunt_matches_the_predicted_summary() {
    let hunt = demo_hunt();
    for (seed, workers, disorder_ms) in [(11, 1, 2_000), (12, 2, 8_000)] {
        let opts = GenerateOptions {
            for_hunt: Some(hunt.clone()),
            start_ms: 0,
            disorder_ms,
            ..noisy(seed)
        };
        let name = format!("for-hunt-{seed}");
        let dir = scratch(&name);
        let files = generate::generate_to_files(&opts, &dir.join("hunt"), &dir.join("events"))
            .expect("generate");
        assert_eq!(files.hunt_toml, hunt.path);
        assert_eq!(files.zones_geojson, None);
        assert!(!dir.join("hunt").exists(), "{name}: hunt files written");
        let summary = backfill(&dir, files.hunt_toml, files.partitions, workers);
        assert_matches(&summary, &files.stats, &name);
        // The demo hunt sets max_accuracy_m, so every reason occurs.
        assert_eq!(summary.rejected.len(), 8, "{name}: {summary:?}");
    }
}

/// The options of the bundled demo dataset (the command at the top of this file).
fn demo_options() -> GenerateOptions {
    GenerateOptions {
        for_hunt: Some(demo_hunt()),
        seed: 1,
        events: 50_000,
        partitions: 2,
        players: 200,
        start_ms: 0,
        rate_per_s: 14.0,
        ..GenerateOptions::default()
    }
}

#[test]
fn bundled_demo_dataset_is_reproducible_and_complete() {
    let hunt = demo_hunt();
    let case = generate::generate(&demo_options());
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| manifest_path(&format!("datasets/demo/part-{i:03}.jsonl")))
        .collect();
    for (path, bytes) in parts.iter().zip(&case.partitions) {
        let on_disk = std::fs::read(path).expect("bundled demo dataset");
        assert!(
            on_disk == *bytes,
            "{} differs from the generator's output; regenerate it with the command at the top \
             of tests/generated.rs",
            path.display()
        );
    }
    for kind in [
        "not_json",
        "non_utf8",
        "not_object",
        "missing_field",
        "null_field",
        "wrong_type",
        "empty_string",
        "unknown_type",
        "bad_coordinates",
        "inaccurate",
        "huge_line",
    ] {
        assert!(case.stats.bad_kinds.contains_key(kind), "no {kind} line");
    }

    let dir = scratch("demo");
    let summary = backfill(&dir, hunt.path.clone(), parts, 2);
    assert_matches(&summary, &case.stats, "demo");
    assert_eq!(summary.rejected.len(), 8, "every reason: {summary:?}");

    let out = std::fs::read_to_string(dir.join("out.jsonl")).expect("notifications");
    let mut kinds = BTreeSet::new();
    let mut eligible = BTreeSet::new();
    let mut last_time = 0;
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("notification JSON");
        let kind = v["kind"].as_str().expect("kind").to_string();
        let time = v["time"].as_u64().expect("time");
        assert!(time >= last_time, "notifications out of time order");
        last_time = time;
        if kind == "eligible" {
            eligible.insert(v["reward"].as_str().expect("reward").to_string());
        }
        kinds.insert(kind);
    }
    let want: BTreeSet<String> = ["enter", "exit", "eligible", "ineligible", "occupancy"]
        .map(String::from)
        .into();
    assert_eq!(kinds, want);
    let rewards: BTreeSet<String> = hunt.rewards.iter().map(|r| r.id.clone()).collect();
    assert_eq!(eligible, rewards, "every demo reward becomes eligible");
    // About one hour of event time.
    assert!((3_000_000..3_800_000).contains(&last_time), "{last_time}");
}
