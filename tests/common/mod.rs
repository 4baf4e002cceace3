//! Shared test helpers: scratch directories, hunt files and output comparison.
#![allow(dead_code)]

pub mod http;
pub mod reference;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::BTreeMap;

use huntflow::job::backfill::{run, BackfillOptions};
use huntflow::model::hunt::Hunt;

use reference::{reference, RefOutput};

/// A scratch directory removed when dropped (kept when `HUNTFLOW_KEEP_SCRATCH` is set).
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    /// A fresh, empty directory under the system temporary directory.
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("huntflow-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch directory");
        Scratch { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("HUNTFLOW_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes `toml` as `hunt.toml` in `dir` and loads it.
pub fn load_hunt(dir: &Path, toml: &str) -> Hunt {
    let path = dir.join("hunt.toml");
    std::fs::write(&path, toml).expect("write hunt");
    Hunt::load(&path).unwrap_or_else(|e| panic!("hunt does not load: {e}\n{toml}"))
}

/// Panics with the first differing line (and some context) when the two
/// outputs are not byte-identical.
pub fn assert_same_output(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let exp: Vec<&str> = expected.split_inclusive('\n').collect();
    let act: Vec<&str> = actual.split_inclusive('\n').collect();
    let first = exp
        .iter()
        .zip(&act)
        .position(|(a, b)| a != b)
        .unwrap_or(exp.len().min(act.len()));
    let from = first.saturating_sub(5);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take(first - from + 6)
            .map(|(i, l)| {
                format!(
                    "{}{:>6}: {}",
                    if i == first { ">" } else { " " },
                    i + 1,
                    l.trim_end()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{what}: outputs differ at line {} (expected {} lines, got {})\n--- expected\n{}\n--- actual\n{}",
        first + 1,
        exp.len(),
        act.len(),
        show(&exp),
        show(&act)
    );
}

/// Two square zones: `a` (priority 2) around lon/lat 0..1, `b` (priority 5) around 10..11.
pub const ZONES: &str = r#"
[[zones]]
id = "a"
priority = 2
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[zones]]
id = "b"
priority = 5
polygon = [[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0]]
"#;

/// The top of a hunt TOML.
pub fn header(lateness: u64, position_ttl: u64, sensor_ttl: u64) -> String {
    format!(
        "name = \"ref\"\nmax_lateness_ms = {lateness}\nposition_ttl_ms = {position_ttl}\nsensor_ttl_ms = {sensor_ttl}\n"
    )
}

/// (read, accepted, rejected by reason).
pub type Expected = (u64, u64, Vec<(&'static str, u64)>);

/// A hand-written case with its hand-computed notifications and summary.
pub struct Case {
    pub name: &'static str,
    pub toml: String,
    pub partitions: Vec<Vec<u8>>,
    pub expected: String,
    /// Checked when set.
    pub summary: Option<Expected>,
}

/// A case without a summary check.
pub fn case(name: &'static str, toml: &str, partitions: &[&str], expected: &str) -> Case {
    Case {
        name,
        toml: toml.to_string(),
        partitions: partitions.iter().map(|p| p.as_bytes().to_vec()).collect(),
        expected: expected.to_string(),
        summary: None,
    }
}

/// A reason -> count map with owned keys.
pub fn rejected_map<K: ToString>(
    pairs: impl IntoIterator<Item = (K, u64)>,
) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Runs the reference model on a hand-written case and checks it against the hand-computed result.
pub fn check(case: &Case) -> RefOutput {
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

/// A position line.
pub fn pos(id: &str, player: &str, ts: u64, lat: f64, lon: f64, ttl: Option<u64>) -> String {
    let ttl = ttl.map(|t| format!(",\"ttl_ms\":{t}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"type\":\"position\",\"player\":{},\"ts\":{ts},\"lat\":{lat:?},\"lon\":{lon:?}{ttl}}}\n",
        serde_json::to_string(player).unwrap()
    )
}

/// An action line.
pub fn act(
    id: &str,
    player: &str,
    ts: u64,
    action: &str,
    target: &str,
    ttl: Option<u64>,
) -> String {
    let ttl = ttl.map(|t| format!(",\"ttl_ms\":{t}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"type\":\"action\",\"player\":\"{player}\",\"ts\":{ts},\"action\":\"{action}\",\"target\":\"{target}\"{ttl}}}\n"
    )
}

/// A sensor line.
pub fn sensor(id: &str, player: &str, ts: u64, name: &str, value: f64) -> String {
    format!(
        "{{\"id\":\"{id}\",\"type\":\"sensor\",\"player\":\"{player}\",\"ts\":{ts},\"sensor\":\"{name}\",\"value\":{value:?}}}\n"
    )
}

/// Options for one small generated case with `changes` hunt change records; everything that
/// can go wrong does, often.
pub fn case_options(seed: u64, changes: u32) -> huntflow::generate::GenerateOptions {
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
        changes,
        ..Default::default()
    }
}

/// What one engine backfill produced.
pub struct EngineRun {
    pub notifications: String,
    pub read: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
}

/// Writes `hunt.toml` and `part-N.jsonl` files into `dir`; returns their paths.
pub fn write_inputs(dir: &Path, toml: &str, partitions: &[Vec<u8>]) -> (PathBuf, Vec<PathBuf>) {
    let hunt = dir.join("hunt.toml");
    std::fs::write(&hunt, toml).expect("write hunt");
    let inputs = partitions
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("part-{i}.jsonl"));
            std::fs::write(&path, bytes).expect("write partition");
            path
        })
        .collect();
    (hunt, inputs)
}

/// Runs an engine backfill with `workers` workers, notifications to a file in `dir`.
pub fn run_engine(dir: &Path, hunt: &Path, inputs: &[PathBuf], workers: usize) -> EngineRun {
    let out_path = dir.join(format!("out-{workers}.jsonl"));
    let mut opts = BackfillOptions::new(hunt.to_path_buf(), inputs.to_vec());
    opts.workers = workers;
    // At 4 workers the facts operator works in tiny slices, so that slicing
    // is checked too: the output must not depend on it.
    if workers == 4 {
        opts.slice = 3;
    }
    opts.output = Some(out_path.clone());
    let summary =
        run(&opts).unwrap_or_else(|e| panic!("backfill with {workers} workers fails: {e}"));
    EngineRun {
        notifications: std::fs::read_to_string(&out_path).expect("read engine output"),
        read: summary.read,
        accepted: summary.accepted,
        rejected: rejected_map(summary.rejected.iter().map(|(k, v)| (*k, *v))),
    }
}

/// A generated case written to a fresh scratch directory (`hunt/`, `events/`), with the
/// reference model's output for it.
pub struct WrittenCase {
    pub dir: Scratch,
    pub case: huntflow::generate::GeneratedCase,
    pub files: huntflow::generate::CaseFiles,
    pub model: RefOutput,
}

/// Generates the case of `opts`, writes it under a scratch directory named after `label`, and
/// runs the reference model on it (with its change log, if any).
pub fn written_case(opts: &huntflow::generate::GenerateOptions, label: &str) -> WrittenCase {
    let case = huntflow::generate::generate(opts);
    let dir = Scratch::new(label);
    let files = huntflow::generate::write_case_files(&case, &dir.join("hunt"), &dir.join("events"))
        .expect("write case");
    let hunt = Hunt::load(&files.hunt_toml).expect("generated hunt loads");
    let log = files
        .hunt_changes
        .as_ref()
        .map(|p| std::fs::read(p).expect("read change log"));
    let model = reference::reference_with_changes(&hunt, log.as_deref(), &case.partitions);
    WrittenCase {
        dir,
        case,
        files,
        model,
    }
}

/// `(reason, source, line)` of each line of a backfill's rejects file.
pub fn reject_places(rejects: &str) -> Vec<(String, String, u64)> {
    rejects
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a reject is JSON");
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (
                text("reason"),
                text("source"),
                v["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The rejects the reference model expects, as the rejects file names them.
pub fn expected_rejects(
    rejects: &[reference::RefReject],
    changes: Option<&Path>,
    inputs: &[PathBuf],
) -> Vec<(String, String, u64)> {
    rejects
        .iter()
        .map(|r| {
            let source = match r.source {
                reference::RejectSource::Changes => changes.expect("a change log"),
                reference::RejectSource::Partition(i) => &inputs[i],
            };
            (r.reason.clone(), source.display().to_string(), r.line)
        })
        .collect()
}
