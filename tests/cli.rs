//! The `huntflow` binary: exit codes, messages, standard input and output,
//! the summary file and progress records.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huntflow"))
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const HUNT: &str = r#"
name = "cli"
max_lateness_ms = 1000
position_ttl_ms = 10000

[[zones]]
id = "square"
priority = 2
polygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

[[rewards]]
id = "prize"
priority = 4
zone = "square"
"#;

const EVENTS: &str = r#"{"id":"a","type":"position","player":"p1","ts":100,"lat":0.5,"lon":0.5}
{"id":"b","type":"position","player":"p1","ts":200,"lat":5.0,"lon":5.0}
oops
"#;

fn write_hunt(dir: &std::path::Path, text: &str) -> PathBuf {
    let p = dir.join("hunt.toml");
    std::fs::write(&p, text).expect("write hunt");
    p
}

#[test]
fn backfill_reads_stdin_and_writes_stdout_and_summary() {
    let dir = tmp_dir("stdin");
    let hunt = write_hunt(&dir, HUNT);
    let summary = dir.join("summary.json");
    let mut child = bin()
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .arg("--summary")
        .arg(&summary)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(EVENTS.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        stdout,
        concat!(
            // Priority first: the reward (4) before the zone (2).
            "{\"time\":100,\"kind\":\"eligible\",\"player\":\"p1\",\"reward\":\"prize\",\"priority\":4}\n",
            "{\"time\":100,\"kind\":\"enter\",\"player\":\"p1\",\"zone\":\"square\",\"priority\":2}\n",
            "{\"time\":100,\"kind\":\"occupancy\",\"zone\":\"square\",\"count\":1}\n",
            "{\"time\":200,\"kind\":\"ineligible\",\"player\":\"p1\",\"reward\":\"prize\",\"priority\":4}\n",
            "{\"time\":200,\"kind\":\"exit\",\"player\":\"p1\",\"zone\":\"square\",\"priority\":2}\n",
            "{\"time\":200,\"kind\":\"occupancy\",\"zone\":\"square\",\"count\":0}\n",
        )
    );
    let expected = "{\"read\":3,\"accepted\":2,\"rejected\":{\"malformed\":1}}";
    assert_eq!(
        std::fs::read_to_string(&summary).expect("summary").trim(),
        expected
    );
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains(expected), "summary on stderr: {stderr}");
}

#[test]
fn progress_records_mark_complete_times() {
    let dir = tmp_dir("progress");
    let hunt = write_hunt(&dir, HUNT);
    let events = dir.join("events.jsonl");
    std::fs::write(&events, EVENTS).expect("write events");
    let out = bin()
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .arg("--progress")
        .arg(&events)
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    let mut last_time = 0u64;
    let mut complete_before = 0u64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let time = v["time"].as_u64().expect("time");
        if v["kind"] == "progress" {
            assert!(time >= complete_before, "progress never goes back");
            complete_before = time;
        } else {
            assert!(
                time >= complete_before,
                "{line} after progress {complete_before}"
            );
            assert!(time >= last_time);
            last_time = time;
        }
    }
    let plain: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"progress\""))
        .collect();
    assert_eq!(plain.len(), 6);
}

#[test]
fn bad_hunt_fails_with_file_and_item() {
    let dir = tmp_dir("badhunt");
    let hunt = write_hunt(
        &dir,
        "[[rewards]]\nid = \"golden-key\"\nzone = \"fountian\"\n",
    );
    let out = bin()
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains("hunt.toml"), "{stderr}");
    assert!(stderr.contains("golden-key"), "{stderr}");
    assert!(stderr.contains("fountian"), "{stderr}");
}

#[test]
fn missing_input_and_bad_arguments_fail() {
    let dir = tmp_dir("badargs");
    let hunt = write_hunt(&dir, HUNT);
    let out = bin()
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .arg(dir.join("no-such-file.jsonl"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains("no-such-file.jsonl"), "{stderr}");

    let out = bin()
        .arg("backfill")
        .arg("--hunt")
        .arg(&hunt)
        .output()
        .expect("run");
    assert!(!out.status.success(), "an input is required");

    let out = bin()
        .args(["backfill", "--hunt"])
        .arg(&hunt)
        .args(["-w", "0", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success(), "zero workers is refused");
}

#[test]
fn a_state_directory_refuses_another_hunt_before_touching_the_broker() {
    let dir = tmp_dir("hunt-record");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(state.join("hunt")).expect("state dir");
    // The state directory was built with the hunt as it was before an edit
    // that inserted a zone.
    std::fs::write(state.join("hunt/hunt.toml"), HUNT).expect("record");
    let edited = HUNT.replace(
        "[[zones]]\nid = \"square\"",
        "[[zones]]\nid = \"corner\"\npolygon = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]\n\n[[zones]]\nid = \"square\"",
    );
    let hunt = write_hunt(&dir, &edited);
    let started = std::time::Instant::now();
    // No broker listens on port 1: the refusal comes first.
    let out = bin()
        .args(["run", "--brokers", "127.0.0.1:1", "--topic", "events"])
        .args(["--output", "-", "--hunt"])
        .arg(&hunt)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(stderr.contains("hunt.toml line 7"), "{stderr}");
    assert!(stderr.contains("hunt-change"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing written");
    let entries: Vec<_> = std::fs::read_dir(&state)
        .expect("state")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("hunt")],
        "nothing added to the state"
    );
}

#[test]
fn hunt_change_writes_a_record_and_refuses_invalid_versions() {
    let dir = tmp_dir("hunt-change");
    let base = write_hunt(&dir, HUNT);
    let run = |hunt: &str, extra: &[&str]| {
        let path = dir.join("new.toml");
        std::fs::write(&path, hunt).expect("write version");
        bin()
            .args(["hunt-change", "--effective", "5000", "--hunt"])
            .arg(&path)
            .arg("--base")
            .arg(&base)
            .args(extra)
            .output()
            .expect("run")
    };
    // A valid version: one record on standard output, appended with --to.
    let moved = HUNT.replace("[1.0, 0.0], [1.0, 1.0]", "[2.0, 0.0], [2.0, 1.0]");
    let out = run(&moved, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(record["effective"], 5000);
    assert_eq!(record["hunt"].as_str(), Some(moved.as_str()));
    let log = dir.join("changes.jsonl");
    let _ = std::fs::remove_file(&log);
    for _ in 0..2 {
        let out = run(&moved, &["--to", log.to_str().unwrap()]);
        assert!(out.status.success());
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);

    // Invalid versions, each refused with the loader's message.
    for (version, says) in [
        (
            HUNT.replace("zone = \"square\"", "zone = \"sqare\""),
            "unknown zone \"sqare\"",
        ),
        (HUNT.replace("priority = 4", "priority = 12"), "priority"),
        (HUNT.replace("[[zones]]", "[[zones]"), "new.toml: line"),
        (
            HUNT.replace("max_lateness_ms = 1000", "max_lateness_ms = 2000"),
            "max_lateness_ms 2000 differs",
        ),
    ] {
        let out = run(&version, &[]);
        assert_eq!(out.status.code(), Some(2), "{version}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("new.toml"), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn sigterm_while_the_broker_is_away_stops_the_job() {
    // A port where nothing listens: the job cannot start and retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tmp_dir("sigterm-away");
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let mut child = bin()
        .args(["run", "--brokers", &format!("127.0.0.1:{port}")])
        .arg("--hunt")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml"))
        .args(["--topic", "events", "--output", "-", "--state-dir"])
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let retrying = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("starting again"));
    assert!(retrying.is_some(), "the job did not say it retries");
    let asked = std::time::Instant::now();
    // SAFETY: kill(2) on the child's own process id.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {rest:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped before starting again")),
        "{rest:?}"
    );
}
