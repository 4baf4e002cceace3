//! Golden output of the bundled demo: `datasets/demo/*.jsonl` over
//! `dataflows/demo/hunt.toml` must give exactly `datasets/demo/expected.jsonl`
//! (notifications), `expected-rejects.jsonl` and `expected-summary.json`.
//!
//! To rewrite the golden files after an intended change of output:
//! `HUNTFLOW_BLESS=1 cargo test --release --test golden`, then review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo_inputs() -> Vec<PathBuf> {
    let dir = root().join("datasets/demo");
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("datasets/demo exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-") && n.ends_with(".jsonl"))
        })
        .collect();
    parts.sort();
    assert!(parts.len() >= 2, "the demo has at least two partitions");
    parts
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("golden");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn check(actual: &Path, expected: &Path) {
    let got = std::fs::read(actual).expect("read actual output");
    if std::env::var_os("HUNTFLOW_BLESS").is_some() {
        std::fs::write(expected, &got).expect("rewrite golden file");
        return;
    }
    let want = std::fs::read(expected).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with HUNTFLOW_BLESS=1 to create it)",
            expected.display()
        )
    });
    if got != want {
        let got = String::from_utf8_lossy(&got);
        let want = String::from_utf8_lossy(&want);
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{} differs from {} at line {}:\n  got:  {:?}\n  want: {:?}",
            actual.display(),
            expected.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

/// The README's first command, run through the real binary.
fn backfill_cli(workers: usize, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let out = tmp(&format!("{tag}-out.jsonl"));
    let rejects = tmp(&format!("{tag}-rejects.jsonl"));
    let summary = tmp(&format!("{tag}-summary.json"));
    let status = Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .current_dir(root())
        .args(["backfill", "--hunt", "dataflows/demo/hunt.toml"])
        .args(["-w", &workers.to_string()])
        .arg("--output")
        .arg(&out)
        .arg("--rejects")
        .arg(&rejects)
        .arg("--summary")
        .arg(&summary)
        .args(
            demo_inputs()
                .iter()
                .map(|p| p.strip_prefix(root()).expect("under the repo")),
        )
        .status()
        .expect("run huntflow");
    assert!(status.success());
    (out, rejects, summary)
}

#[test]
fn demo_output_matches_golden_files() {
    let (out, rejects, summary) = backfill_cli(1, "w1");
    let dir = root().join("datasets/demo");
    check(&out, &dir.join("expected.jsonl"));
    check(&rejects, &dir.join("expected-rejects.jsonl"));
    check(&summary, &dir.join("expected-summary.json"));
}

#[test]
fn demo_output_is_the_same_at_2_and_4_workers() {
    let dir = root().join("datasets/demo");
    for w in [2, 4] {
        if std::env::var_os("HUNTFLOW_BLESS").is_some() {
            return;
        }
        let (out, rejects, summary) = backfill_cli(w, &format!("w{w}"));
        check(&out, &dir.join("expected.jsonl"));
        check(&rejects, &dir.join("expected-rejects.jsonl"));
        check(&summary, &dir.join("expected-summary.json"));
    }
}

#[test]
fn demo_summary_accounts_for_every_line() {
    let text = std::fs::read_to_string(root().join("datasets/demo/expected-summary.json"))
        .expect("golden summary");
    let v: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    let read = v["read"].as_u64().expect("read");
    let accepted = v["accepted"].as_u64().expect("accepted");
    let rejected: u64 = v["rejected"]
        .as_object()
        .expect("rejected")
        .values()
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(read, accepted + rejected);
    let lines: u64 = demo_inputs()
        .iter()
        .map(|p| {
            std::fs::read(p)
                .expect("read input")
                .split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(|b| b" \t\r".contains(b)))
                .count() as u64
        })
        .sum();
    assert_eq!(read, lines, "every non-blank line is counted once");
}
