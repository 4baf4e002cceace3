//! Apache Kafka (started by `scripts/kafka.sh`) and the continuous job as a
//! child process, for the Kafka tests.
//!
//! The tests share one broker: the one at `HUNTFLOW_KAFKA_BROKERS`
//! (`scripts/test.sh` starts it), or else one this process starts on free
//! ports and that is stopped when the process ends. Each test names its
//! topics with a prefix of its own ([`Topics`]). A test that stops and
//! restarts its broker starts a private one ([`Broker::private`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use huntflow::kafka::admin::Admin;
use huntflow::kafka::partitioner::partition_of;
use huntflow::kafka::{tools, KafkaConfig};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Two distinct free ports on 127.0.0.1.
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

/// A broker run by `scripts/kafka.sh` in a directory of its own.
struct Script {
    port: u16,
    controller_port: u16,
    dir: PathBuf,
}

impl Script {
    fn on_free_ports(dir: PathBuf) -> Script {
        let (port, controller_port) = free_ports();
        Script {
            port,
            controller_port,
            dir,
        }
    }

    /// `bash` with the script's environment.
    fn bash(&self) -> Command {
        let mut cmd = Command::new("bash");
        cmd.env("HUNTFLOW_KAFKA_PORT", self.port.to_string())
            .env(
                "HUNTFLOW_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string(),
            )
            .env("HUNTFLOW_KAFKA_DIR", &self.dir);
        cmd
    }

    fn command(&self, action: &str) -> Command {
        let mut cmd = self.bash();
        cmd.arg(repo().join("scripts/kafka.sh")).arg(action);
        cmd
    }

    fn run(&self, action: &str) {
        let out = self
            .command(action)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "scripts/kafka.sh {action} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A Kafka broker the tests talk to.
pub struct Broker {
    addr: String,
    /// Set when this process started it.
    script: Option<Script>,
}

impl Broker {
    /// The broker the whole suite shares.
    pub fn shared() -> &'static Broker {
        static SHARED: OnceLock<Broker> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("HUNTFLOW_KAFKA_BROKERS") {
            Ok(addr) if !addr.is_empty() => Broker { addr, script: None },
            _ => {
                let dir = std::env::temp_dir()
                    .join(format!("huntflow-test-kafka-{}", std::process::id()));
                let script = Script::on_free_ports(dir);
                script.run("start");
                // A static is never dropped: a watcher, detached, stops the
                // broker and deletes its directory once this process is
                // gone, however it ends.
                let watcher = "(trap '' INT; while kill -0 \"$0\" 2>/dev/null; do sleep 1; done; \
                               exec bash \"$1\" clean) &";
                let started = script
                    .bash()
                    .args(["-c", watcher])
                    .arg(std::process::id().to_string())
                    .arg(repo().join("scripts/kafka.sh"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("start the broker's watcher");
                assert!(started.success(), "starting the broker's watcher failed");
                Broker {
                    addr: format!("127.0.0.1:{}", script.port),
                    script: Some(script),
                }
            }
        })
    }

    /// A broker of its own in `dir`, for a test that stops and restarts
    /// it; stopped when dropped.
    pub fn private(dir: &Path) -> Broker {
        let script = Script::on_free_ports(dir.join("broker"));
        script.run("start");
        Broker {
            addr: format!("127.0.0.1:{}", script.port),
            script: Some(script),
        }
    }

    fn script(&self) -> &Script {
        self.script
            .as_ref()
            .expect("only a broker this process started can be stopped")
    }

    /// Starts it again, with the data it had.
    pub fn up(&self) {
        self.script().run("start");
    }

    pub fn down(&self) {
        self.script().run("stop");
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(&self.addr, &[]).expect("config")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(script) = &self.script {
            let _ = script.command("stop").output();
        }
    }
}

/// Topic names no other test (nor another run against the same broker)
/// uses.
pub struct Topics {
    prefix: String,
    pub events: String,
    pub notifications: String,
    pub rejects: String,
}

impl Topics {
    pub fn new(test: &str) -> Topics {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let prefix = format!("{test}-{}-{nanos}", std::process::id());
        let name = |t: &str| format!("{prefix}.{t}");
        Topics {
            events: name("events"),
            notifications: name("notifications"),
            rejects: name("rejects"),
            prefix,
        }
    }

    /// Another topic of the test.
    pub fn name(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }
}

/// The continuous job, as a child process.
pub struct Job {
    child: Child,
    pub state: PathBuf,
}

impl Job {
    /// `huntflow run` on `broker` with state directory `state`.
    fn command<S: AsRef<OsStr>>(broker: &Broker, state: &Path, args: &[S]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huntflow"));
        cmd.arg("run")
            .arg("--brokers")
            .arg(broker.addr())
            .arg("--state-dir")
            .arg(state)
            .args(args);
        cmd
    }

    /// Runs the job to its end (one that refuses to start); its exit code
    /// and standard error.
    #[allow(dead_code)] // not every test crate uses it
    pub fn run_to_end<S: AsRef<OsStr>>(
        broker: &Broker,
        state: &Path,
        args: &[S],
    ) -> (Option<i32>, String) {
        let out = Self::command(broker, state, args)
            .stdin(Stdio::null())
            .output()
            .expect("run huntflow");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn start<S: AsRef<OsStr>>(broker: &Broker, state: &Path, args: &[S]) -> Job {
        Self::start_with_env(broker, state, args, &[])
    }

    /// [`Job::start`] with environment variables `env` set.
    pub fn start_with_env<S: AsRef<OsStr>>(
        broker: &Broker,
        state: &Path,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Job {
        std::fs::create_dir_all(state).expect("state dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join("job.log"))
            .expect("log");
        let child = Self::command(broker, state, args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start huntflow run");
        Job {
            child,
            state: state.to_owned(),
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the job's own process id.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// The manifest of the newest committed snapshot.
    pub fn last_manifest(&self) -> Value {
        last_manifest(&self.state)
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the job exited ({status}):\n{}",
                std::fs::read_to_string(self.state.join("job.log")).unwrap_or_default()
            );
        }
    }

    pub fn status(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.state.join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until every input partition is read to its end, every time
    /// that can complete is written, and a snapshot was committed after
    /// that (so the output is flushed). Returns the written frontier.
    pub fn wait_caught_up(&mut self, broker: &Broker, topic: &str, timeout: Duration) -> u64 {
        self.wait_until(broker, topic, timeout, true)
    }

    /// Waits until every input partition is read to its end and every time
    /// that can complete is written, snapshot or not.
    pub fn wait_written(&mut self, broker: &Broker, topic: &str, timeout: Duration) -> u64 {
        self.wait_until(broker, topic, timeout, false)
    }

    fn wait_until(
        &mut self,
        broker: &Broker,
        topic: &str,
        timeout: Duration,
        snapshot: bool,
    ) -> u64 {
        let admin = Admin::new(&broker.config()).expect("admin");
        let deadline = Instant::now() + timeout;
        let mut caught: Option<(u64, u64)> = None;
        loop {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the job did not catch up; last status: {:?}\n{}",
                self.status(),
                std::fs::read_to_string(self.state.join("job.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
            let Some(s) = self.status() else { continue };
            let n = admin.partitions(topic).expect("metadata").expect("topic");
            let parts = s["partitions"].as_array().cloned().unwrap_or_default();
            let mut all_read = true;
            let mut low = u64::MAX;
            for p in 0..n {
                let high = huntflow::kafka::admin::end_offset(&broker.config(), &admin, topic, p)
                    .expect("end offset");
                let part = parts.iter().find(|v| v["partition"] == p);
                let next = part.and_then(|v| v["next_offset"].as_i64()).unwrap_or(0);
                if next < high {
                    all_read = false;
                }
                if let Some(f) = part.and_then(|v| v["frontier"].as_u64()) {
                    low = low.min(f);
                }
            }
            let written = s["written_frontier"].as_u64().unwrap_or(0);
            let committed = s["snapshot_committed"].as_u64().unwrap_or(0);
            if !all_read || (low != u64::MAX && written < low) {
                caught = None;
                continue;
            }
            if !snapshot {
                return written;
            }
            match caught {
                None => caught = Some((written, committed)),
                Some((w, c)) if w == written && committed > c => return written,
                Some(_) => {}
            }
        }
    }

    /// Waits for the job to exit by itself; returns whether it succeeded and
    /// its log.
    pub fn wait_exit(&mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.state.join("job.log")).unwrap_or_default();
                return (status.success(), log);
            }
            assert!(
                Instant::now() < deadline,
                "the job did not exit:\n{}",
                std::fs::read_to_string(self.state.join("job.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The epochs of the committed snapshots.
    pub fn snapshots(&self) -> Vec<u64> {
        snapshots(&self.state)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The epochs of the snapshots committed in state directory `state`.
pub fn snapshots(state: &Path) -> Vec<u64> {
    let mut epochs: Vec<u64> = std::fs::read_dir(state.join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    epochs.sort_unstable();
    epochs
}

/// The manifest of the newest snapshot committed in `state`.
pub fn last_manifest(state: &Path) -> Value {
    let epoch = *snapshots(state).last().expect("a snapshot");
    let path = state
        .join("snapshots")
        .join(format!("{epoch:020}"))
        .join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("manifest")).expect("json")
}

/// Non-empty lines of every `part-NNN.jsonl` in `dir`, by partition.
pub fn read_parts(dir: &Path) -> Vec<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dump dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .expect("read part")
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// A backfill over a dump of the input topic: its notification lines and
/// its rejects by reason.
fn backfill_of_dump(
    broker: &Broker,
    work: &Path,
    hunt: &Path,
    input: &str,
    hunt_topic: Option<&str>,
) -> (String, BTreeMap<String, u64>) {
    let cfg = broker.config();
    let dump_in = work.join("dump-in");
    let inputs: Vec<PathBuf> = tools::dump(&cfg, input, &dump_in)
        .expect("dump input")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let expected_path = work.join("backfill.jsonl");
    let mut opts = huntflow::job::backfill::BackfillOptions::new(hunt.to_owned(), inputs);
    opts.output = Some(expected_path.clone());
    opts.derived = Some(work.join("backfill-derived"));
    if let Some(topic) = hunt_topic {
        let dumped = tools::dump(&cfg, topic, &work.join("dump-hunt")).expect("dump hunt topic");
        opts.hunt_changes = Some(dumped[0].0.clone());
    }
    let summary = huntflow::job::backfill::run(&opts).expect("backfill of the dump");
    let expected = std::fs::read_to_string(&expected_path).expect("backfill output");
    let reasons = summary
        .rejected
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    (expected, reasons)
}

/// Reject records, each written once, counted by reason.
fn reject_reasons(lines: &[String]) -> BTreeMap<String, u64> {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).expect("reject json");
        let origin = (
            v["partition"].as_u64().unwrap(),
            v["offset"].as_u64().unwrap(),
            v["line"].as_u64().unwrap(),
        );
        assert!(seen.insert(origin), "reject {origin:?} written twice");
        *reasons
            .entry(v["reason"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    reasons
}

/// Panics at the first difference of two sequences of lines.
fn assert_same_lines(what: &str, got: &[&str], want: &[&str]) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .or(Some(got.len().min(want.len())));
        panic!(
            "{what}: {} lines, the backfill gives {}; first difference at {:?}: {:?} vs {:?}",
            got.len(),
            want.len(),
            first,
            first.and_then(|i| got.get(i)),
            first.and_then(|i| want.get(i)),
        );
    }
}

/// Whether a notification line's time is below `written`.
fn below(line: &str, written: u64) -> bool {
    let v: Value = serde_json::from_str(line).expect("json");
    v["time"].as_u64().expect("time") < written
}

/// Compares the job's output topic with a backfill over a dump of the
/// input topic: per output partition, the same notifications, in the same
/// order, for every time below `written`; and the same rejects by reason.
pub fn check_against_backfill(
    broker: &Broker,
    work: &Path,
    hunt: &Path,
    input: &str,
    output: &str,
    rejects: &str,
    written: u64,
) {
    let expected = backfill_of_dump(broker, work, hunt, input, None);
    compare_topics(broker, work, expected, output, rejects, written);
}

/// As [`check_against_backfill`], the job reading hunt changes from
/// `hunt_topic` and the backfill its dump as a change log.
pub fn check_against_backfill_with_changes(
    broker: &Broker,
    work: &Path,
    hunt: &Path,
    topics: &Topics,
    hunt_topic: &str,
    written: u64,
) {
    let expected = backfill_of_dump(broker, work, hunt, &topics.events, Some(hunt_topic));
    compare_topics(
        broker,
        work,
        expected,
        &topics.notifications,
        &topics.rejects,
        written,
    );
}

/// The job's output and rejects topics against a backfill's output and
/// rejects by reason.
fn compare_topics(
    broker: &Broker,
    work: &Path,
    (expected, want_reasons): (String, BTreeMap<String, u64>),
    output: &str,
    rejects: &str,
    written: u64,
) {
    let cfg = broker.config();
    let dump_out = work.join("dump-out");
    tools::dump(&cfg, output, &dump_out).expect("dump output");
    let actual = read_parts(&dump_out);
    let n = actual.len() as u32;
    let mut by_part: Vec<Vec<&str>> = vec![Vec::new(); n as usize];
    for line in expected.lines().filter(|l| below(l, written)) {
        let v: Value = serde_json::from_str(line).expect("json");
        let key = if v["kind"] == "occupancy" {
            v["zone"].as_str()
        } else {
            v["player"].as_str()
        }
        .expect("key");
        by_part[partition_of(key.as_bytes(), n) as usize].push(line);
    }
    let mut total = 0;
    for (p, (got, want)) in actual.iter().zip(&by_part).enumerate() {
        let got: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains("\"progress\""))
            .collect();
        assert_same_lines(&format!("output partition {p}"), &got, want);
        total += got.len();
    }
    assert!(total > 1000, "too little output to compare: {total}");

    let dump_rej = work.join("dump-rejects");
    tools::dump(&cfg, rejects, &dump_rej).expect("dump rejects");
    let reasons = reject_reasons(&read_parts(&dump_rej).concat());
    assert_eq!(reasons, want_reasons, "rejects by reason");
}

/// As [`check_against_backfill`], for a job writing notifications and
/// rejects to files.
pub fn check_files_against_backfill(
    broker: &Broker,
    work: &Path,
    hunt: &Path,
    input: &str,
    output: &Path,
    rejects: &Path,
    written: u64,
) {
    let (expected, want_reasons) = backfill_of_dump(broker, work, hunt, input, None);
    let want: Vec<&str> = expected.lines().filter(|l| below(l, written)).collect();
    let text = std::fs::read_to_string(output).expect("output file");
    let got: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"progress\""))
        .collect();
    assert_same_lines("output file", &got, &want);
    assert!(
        got.len() > 1000,
        "too little output to compare: {}",
        got.len()
    );
    let lines: Vec<String> = std::fs::read_to_string(rejects)
        .expect("rejects file")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(reject_reasons(&lines), want_reasons, "rejects by reason");
}

/// Compares the job's derived interval files with those of the backfill
/// run by a `check_*_against_backfill`: the same intervals, in the same
/// order, for every one closed below `written`.
pub fn check_derived_against_backfill(work: &Path, derived: &Path, written: u64) {
    for name in huntflow::output::derived::FILES {
        let want = std::fs::read_to_string(work.join("backfill-derived").join(name))
            .expect("backfill derived file");
        let want: Vec<&str> = want
            .lines()
            .filter(|l| {
                let v: Value = serde_json::from_str(l).expect("json");
                v["until"].as_u64().is_some_and(|u| u < written)
            })
            .collect();
        let got = std::fs::read_to_string(derived.join(name)).expect("derived file");
        let got: Vec<&str> = got.lines().collect();
        assert_same_lines(name, &got, &want);
        assert!(got.len() > 100, "{name}: too few intervals: {}", got.len());
    }
}

/// The demo hunt edited into a new version, written beside a copy of its
/// GeoJSON zones; returns the TOML's path.
pub fn demo_version(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let demo = repo().join("dataflows/demo");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(demo.join("zones.geojson"), dir.join("zones.geojson")).unwrap();
    let text = edit(std::fs::read_to_string(demo.join("hunt.toml")).unwrap());
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Two versions of the demo hunt, under `work`: the fountain grows, a
/// square appears around the centre, a reward is retired and positions
/// live half as long; then the tower goes and a reward for the square
/// appears.
pub fn demo_changes(work: &Path) -> [PathBuf; 2] {
    let v1 = demo_version(&work.join("v1"), "hunt", |h| {
        h.replace("radius_m = 300.0 }", "radius_m = 600.0 }")
            .replace("position_ttl_ms = 60000", "position_ttl_ms = 30000")
            .replace(
                "# The well, after solving the first clue.\n[[rewards]]\nid = \"explorer-badge\"\npriority = 1\nzone = \"well\"\nrequires = [\"clue-1\"]\n",
                "",
            )
            + "\n[[zones]]\nid = \"square\"\npriority = 8\ncircle = { lat = 48.8560, lon = 2.3550, radius_m = 500.0 }\n"
    });
    let v2 = demo_version(&work.join("v2"), "hunt", |_| {
        std::fs::read_to_string(&v1).unwrap().replace(
            "[[zones]]\nid = \"tower\"\npriority = 1\ncircle = { lat = 48.8665, lon = 2.3620, radius_m = 400.0 }\n",
            "",
        ) + "\n[[rewards]]\nid = \"square-prize\"\npriority = 4\nzone = \"square\"\nrequires = [\"clue-1\"]\n"
    });
    [v1, v2]
}

/// `huntflow hunt-change` publishing a version of the demo hunt to the
/// hunt topic.
pub fn publish_change(broker: &Broker, topic: &str, version: &Path, effective: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .args(["hunt-change", "--brokers", &broker.addr(), "--topic", topic])
        .arg("--hunt")
        .arg(version)
        .arg("--base")
        .arg(repo().join("dataflows/demo/hunt.toml"))
        .args(["--effective", &effective.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hunt-change: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
