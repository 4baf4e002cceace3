//! No input makes the engine panic or lose a record: random bytes, mutated
//! valid records, and a huge line without a newline all end as accepted or
//! rejected, and read = accepted + rejected.

use std::path::PathBuf;

use huntflow::job::backfill::{self, BackfillOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("robustness")
        .join(name);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

const HUNT: &str = r#"
max_lateness_ms = 100
position_ttl_ms = 50
sensor_ttl_ms = 50
max_accuracy_m = 10.0

[[zones]]
id = "z"
circle = { lat = 0.0, lon = 0.0, radius_m = 50000.0 }

[[rewards]]
id = "r"
zone = "z"
requires = ["c"]
sensor = { id = "s", min = 0.0, max = 1.0 }
active = { from = 10, until = 900 }
"#;

const SEEDS: &[&str] = &[
    r#"{"id":"a","type":"position","player":"p","ts":10,"lat":0.1,"lon":0.1,"accuracy_m":3}"#,
    r#"{"id":"b","type":"action","player":"p","ts":11,"action":"solve","target":"c","ttl_ms":40}"#,
    r#"{"id":"c","type":"sensor","player":"p","ts":12,"sensor":"s","value":0.5,"priority":9}"#,
    r#"{"id":"d","type":"action","player":"p","ts":13,"action":"claim","target":"r"}"#,
];

fn mutate(rng: &mut ChaCha8Rng, line: &[u8]) -> Vec<u8> {
    let mut out = line.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out[i] = rng.random();
            }
            1 if !out.is_empty() => {
                let i = rng.random_range(0..out.len());
                out.remove(i);
            }
            2 => {
                let i = rng.random_range(0..=out.len());
                out.insert(i, rng.random_range(0x20..0x7f));
            }
            3 => {
                let i = rng.random_range(0..=out.len());
                out.truncate(i);
            }
            _ => {
                let digits = format!("{}", rng.random::<u64>());
                let i = rng.random_range(0..=out.len());
                out.splice(i..i, digits.bytes());
            }
        }
    }
    out.retain(|&b| b != b'\n');
    out
}

#[test]
fn random_and_mutated_records_are_all_accounted_for() {
    let d = dir("random");
    let hunt = d.join("hunt.toml");
    std::fs::write(&hunt, HUNT).expect("write hunt");
    for seed in 0..20u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut parts = Vec::new();
        for p in 0..2 {
            let mut text = Vec::new();
            for n in 0..400 {
                let line: Vec<u8> = match rng.random_range(0..4) {
                    0 => (0..rng.random_range(0..60))
                        .map(|_| rng.random::<u8>())
                        .filter(|&b| b != b'\n')
                        .collect(),
                    1 => {
                        let base = SEEDS[rng.random_range(0..SEEDS.len())];
                        base.replace("\"id\":\"", &format!("\"id\":\"{p}-{n}-"))
                            .replace("\"ts\":1", &format!("\"ts\":{}", n / 3))
                            .into_bytes()
                    }
                    _ => {
                        let base = SEEDS[rng.random_range(0..SEEDS.len())];
                        mutate(&mut rng, base.as_bytes())
                    }
                };
                text.extend_from_slice(&line);
                text.push(b'\n');
            }
            let path = d.join(format!("s{seed}-p{p}.jsonl"));
            std::fs::write(&path, &text).expect("write part");
            parts.push(path);
        }
        let mut outs = Vec::new();
        for workers in [1, 2] {
            let mut opts = BackfillOptions::new(hunt.clone(), parts.clone());
            opts.workers = workers;
            let out = d.join(format!("s{seed}-w{workers}.out"));
            opts.output = Some(out.clone());
            opts.rejects = Some(d.join(format!("s{seed}-w{workers}.rejects")));
            let summary = backfill::run(&opts).expect("backfill completes");
            assert_eq!(
                summary.read,
                summary.accepted + summary.rejected_total(),
                "seed {seed}"
            );
            let rejects =
                std::fs::read_to_string(opts.rejects.as_ref().expect("set")).expect("rejects file");
            assert_eq!(
                rejects.lines().count() as u64,
                summary.rejected_total(),
                "one reject line per rejected record, seed {seed}"
            );
            for line in rejects.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("reject is JSON");
                assert!(v["reason"].is_string() && v["line"].is_u64() && v["raw"].is_string());
            }
            outs.push(std::fs::read(&out).expect("output"));
        }
        assert_eq!(outs[0], outs[1], "seed {seed}: 1 and 2 workers agree");
    }
}

#[test]
fn huge_line_without_newline_is_one_malformed_record() {
    let d = dir("huge");
    let hunt = d.join("hunt.toml");
    std::fs::write(&hunt, HUNT).expect("write hunt");
    let mut text = SEEDS[0].as_bytes().to_vec();
    text.push(b'\n');
    text.extend(std::iter::repeat_n(b'x', 5 << 20));
    let part = d.join("huge.jsonl");
    std::fs::write(&part, &text).expect("write part");
    let mut opts = BackfillOptions::new(hunt, vec![part]);
    opts.output = Some(d.join("out.jsonl"));
    let rejects = d.join("rejects.jsonl");
    opts.rejects = Some(rejects.clone());
    let summary = backfill::run(&opts).expect("backfill completes");
    assert_eq!(summary.read, 2);
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.rejected.get("malformed"), Some(&1));
    let text = std::fs::read_to_string(&rejects).expect("rejects");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
    assert_eq!(v["line"], 2);
    assert_eq!(v["raw"].as_str().expect("raw").len(), 4096);
    assert!(v["detail"]
        .as_str()
        .expect("detail")
        .contains(&(5usize << 20).to_string()));
}
