//! The continuous job as a cluster of two processes on 127.0.0.1, against
//! Apache Kafka (see `scripts/kafka.sh`): a process killed at random
//! moments stops the other within seconds with a message naming it; both
//! started again resume together, and the output topic ends up equal to a
//! backfill of the dumped input, without a gap or a duplicate, also with
//! hunt changes published meanwhile. A state directory refuses a process
//! started with another cluster layout.

mod common;
#[allow(dead_code)]
mod kafka_harness;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use huntflow::kafka::tools;
use kafka_harness::{
    check_against_backfill, check_against_backfill_with_changes, demo_changes, last_manifest,
    publish_change, Broker, Job, Topics,
};
use rand::{Rng, SeedableRng};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo_hunt() -> PathBuf {
    repo().join("dataflows/demo/hunt.toml")
}

fn demo_files() -> Vec<PathBuf> {
    let dir = repo().join("datasets/demo");
    vec![dir.join("part-000.jsonl"), dir.join("part-001.jsonl")]
}

/// A hostfile of `n` processes on free ports of 127.0.0.1.
fn hostfile(dir: &Path, n: usize) -> PathBuf {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    let text: String = listeners
        .iter()
        .map(|l| format!("127.0.0.1:{}\n", l.local_addr().expect("address").port()))
        .collect();
    let path = dir.join(format!("hosts-{n}"));
    std::fs::write(&path, text).expect("write hostfile");
    path
}

/// The job's arguments for process `p` of `n` (one worker each).
fn args(t: &Topics, hosts: &Path, (n, w, p): (usize, usize, usize)) -> Vec<String> {
    let hunt = demo_hunt();
    [
        "--hunt",
        hunt.to_str().unwrap(),
        "--topic",
        &t.events,
        "--output",
        &format!("kafka:{}", t.notifications),
        "--rejects",
        &format!("kafka:{}", t.rejects),
        "--idle-ms",
        "0",
        "--snapshot-ms",
        "300",
        "--connect-timeout",
        "30",
        "-w",
        &w.to_string(),
        "-n",
        &n.to_string(),
        "-p",
        &p.to_string(),
        "-h",
        hosts.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// A test's broker, topics, scratch directory, hostfile of two processes
/// and their state directories.
struct Case {
    broker: &'static Broker,
    t: Topics,
    work: common::Scratch,
    hosts: PathBuf,
    states: [PathBuf; 2],
}

impl Case {
    fn new(name: &str) -> Case {
        let work = common::Scratch::new(&format!("cluster-kafka-{name}"));
        let hosts = hostfile(&work.path, 2);
        let states = [work.join("state-0"), work.join("state-1")];
        Case {
            broker: Broker::shared(),
            t: Topics::new(name),
            work,
            hosts,
            states,
        }
    }

    /// Process `p` of two, `w` workers each.
    fn start(&self, w: usize, p: usize) -> Job {
        self.start_with(w, p, &[])
    }

    /// The same, with `extra` arguments.
    fn start_with(&self, w: usize, p: usize, extra: &[String]) -> Job {
        let mut args = args(&self.t, &self.hosts, (2, w, p));
        args.extend_from_slice(extra);
        Job::start(self.broker, &self.states[p], &args)
    }

    /// The demo `files` into the events topic, with `partitions` partitions.
    fn produce(&self, partitions: u32, files: &[PathBuf]) {
        let cfg = self.broker.config();
        tools::produce(&cfg, &self.t.events, partitions, files, None, false).unwrap();
    }

    /// The demo into a 4-partition events topic at `rate` records/s, on a
    /// thread of its own, while the processes run.
    fn feed(&self, rate: f64) -> std::thread::JoinHandle<tools::Produced> {
        let cfg = self.broker.config();
        huntflow::kafka::admin::Admin::new(&cfg)
            .unwrap()
            .ensure_topic(&self.t.events, 4)
            .unwrap();
        let events = self.t.events.clone();
        std::thread::spawn(move || {
            tools::produce(&cfg, &events, 4, &demo_files(), Some(rate), false).unwrap()
        })
    }

    fn start_both(&self, w: usize) -> [Job; 2] {
        [self.start(w, 0), self.start(w, 1)]
    }

    /// Starts both processes, waits until they caught up, checks the
    /// partitions process 1 reads, and compares the output topic with a
    /// backfill of the dumped input.
    fn catch_up_and_compare(&self, w: usize, partitions_of_1: &[u64]) {
        let mut jobs = self.start_both(w);
        let written = jobs[0].wait_caught_up(self.broker, &self.t.events, Duration::from_secs(240));
        jobs[1].assert_running();
        let status = jobs[1].status().expect("process 1's status");
        let parts: Vec<u64> = status["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| p["partition"].as_u64().expect("partition"))
            .collect();
        assert_eq!(parts, partitions_of_1, "{status}");
        // Each process writes the output partitions its workers own
        // (partition p on global worker p % 2w) and marks only those.
        for (p, job) in jobs.iter().enumerate() {
            let manifest = job.last_manifest();
            let marks = manifest["outputs"]["notifications"]
                .as_array()
                .expect("notification marks")
                .clone();
            for (q, mark) in marks.iter().enumerate() {
                let mark = mark.as_i64().expect("a mark");
                let mine = (q % (2 * w)) / w == p;
                assert_eq!(mark >= 0, mine, "process {p}, partition {q}: {manifest}");
            }
        }
        check_against_backfill(
            self.broker,
            &self.work.path,
            &demo_hunt(),
            &self.t.events,
            &self.t.notifications,
            &self.t.rejects,
            written,
        );
    }
}

/// The job's arguments for a single process (`-n 1`, no hostfile).
fn alone(t: &Topics, hosts: &Path) -> Vec<String> {
    let mut single = args(t, hosts, (1, 1, 0));
    let at = single.iter().position(|a| a == "-h").expect("-h");
    single.drain(at..at + 2);
    single
}

/// The job's log from byte `from` on.
fn log_since(state: &Path, from: u64) -> String {
    let text = std::fs::read(state.join("job.log")).unwrap_or_default();
    String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned()
}

fn log_len(state: &Path) -> u64 {
    std::fs::metadata(state.join("job.log")).map_or(0, |m| m.len())
}

#[test]
fn a_cluster_of_two_loses_and_duplicates_nothing_through_sigkills() {
    let c = Case::new("cluster-crash");
    // Input keeps arriving while processes are killed and restarted (a
    // process takes some seconds to start: it reads what its outputs hold).
    let feeder = c.feed(6_000.0);
    let states = &c.states;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut committed_before_kill = 0;
    for round in 0..4 {
        let from = [log_len(&states[0]), log_len(&states[1])];
        let mut jobs = c.start_both(1);
        std::thread::sleep(Duration::from_millis(rng.random_range(5000..9000)));
        for job in jobs.iter_mut() {
            job.assert_running();
        }
        if !jobs[0].snapshots().is_empty() {
            committed_before_kill += 1;
        }
        let victim = rng.random_range(0..2usize);
        jobs[victim].kill9();
        let started = Instant::now();
        let other = 1 - victim;
        let (ok, _) = jobs[other].wait_exit(Duration::from_secs(20));
        let said = log_since(&states[other], from[other]);
        assert!(
            !ok,
            "round {round}: process {other} exited with success:\n{said}"
        );
        assert!(
            said.contains(&format!("lost process {victim} (127.0.0.1:")),
            "round {round}: process {other} did not name process {victim}:\n{said}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "round {round}: process {other} took {:?} to notice",
            started.elapsed()
        );
    }
    assert!(
        committed_before_kill >= 2,
        "too few rounds got as far as a snapshot: {committed_before_kill}"
    );
    feeder.join().unwrap();
    // Process 1 reads partitions 1 and 3.
    c.catch_up_and_compare(1, &[1, 3]);
}

#[test]
fn hunt_changes_reach_every_process_through_sigkills() {
    let c = Case::new("cluster-changes");
    let hunt_topic = c.t.name("hunt");
    let extra = ["--hunt-topic".to_string(), hunt_topic.clone()];
    let [v1, v2] = demo_changes(&c.work.path);
    // Slow enough that both changes are ahead of the input frontier when
    // process 0 reads them in the first round.
    let feeder = c.feed(3_000.0);
    let log = c.states[0].join("hunt-changes.jsonl");
    let decided = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for round in 0..4 {
        let mut jobs = [c.start_with(1, 0, &extra), c.start_with(1, 1, &extra)];
        if round == 0 {
            publish_change(c.broker, &hunt_topic, &v1, 2_000_000);
            publish_change(c.broker, &hunt_topic, &v2, 2_600_000);
            let deadline = Instant::now() + Duration::from_secs(60);
            while decided().lines().count() < 2 {
                jobs[0].assert_running();
                assert!(Instant::now() < deadline, "no decisions: {}", decided());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(3000..6000)));
        let victim = rng.random_range(0..2usize);
        jobs[victim].kill9();
        let (ok, said) = jobs[1 - victim].wait_exit(Duration::from_secs(20));
        assert!(
            !ok,
            "round {round}: the other process exited with success:\n{said}"
        );
    }
    feeder.join().unwrap();
    assert_eq!(
        decided().matches("\"accepted\"").count(),
        2,
        "{}",
        decided()
    );
    // Process 1 reads no hunt topic: it starts again knowing both versions
    // from its own snapshot.
    let manifest = last_manifest(&c.states[1]);
    let known = manifest["versions"].as_array().map_or(0, Vec::len);
    assert_eq!(known, 2, "process 1's last snapshot: {manifest}");
    let mut jobs = [c.start_with(1, 0, &extra), c.start_with(1, 1, &extra)];
    let written = jobs[0].wait_caught_up(c.broker, &c.t.events, Duration::from_secs(240));
    jobs[1].assert_running();
    assert!(written > 2_600_000, "frontier {written}");
    check_against_backfill_with_changes(
        c.broker,
        &c.work.path,
        &demo_hunt(),
        &c.t,
        &hunt_topic,
        written,
    );
}

#[test]
fn a_process_that_reads_no_partition_follows_the_others() {
    // Two partitions over 2×2 workers: process 1's workers read none.
    let c = Case::new("cluster-idle-process");
    c.produce(2, &demo_files());
    {
        let mut jobs = c.start_both(2);
        wait_for_snapshots(&mut jobs, 1);
        std::thread::sleep(Duration::from_millis(1500));
        kill_process_0(&mut jobs);
    }
    c.catch_up_and_compare(2, &[]);
}

#[test]
fn a_process_ahead_of_process_0_drops_its_newer_snapshot() {
    let c = Case::new("cluster-ahead");
    c.produce(4, &demo_files());
    let mut jobs = c.start_both(1);
    wait_for_snapshots(&mut jobs, 2);
    kill_process_0(&mut jobs);
    // As if process 0 had been killed before it committed its newest
    // snapshot, which process 1 holds.
    let newest = *jobs[0].snapshots().last().expect("a snapshot");
    let dir = c.states[0].join(format!("snapshots/{newest:020}"));
    std::fs::remove_dir_all(dir).unwrap();
    assert!(jobs[1].snapshots().contains(&newest));
    drop(jobs);
    let from = log_len(&c.states[1]);
    c.catch_up_and_compare(1, &[1, 3]);
    let said = log_since(&c.states[1], from);
    assert!(
        said.contains(&format!(
            "resuming from snapshot {}, the newest every process holds",
            newest - 1
        )),
        "{said}"
    );
}

#[test]
fn process_0_serves_the_players_of_every_process() {
    let c = Case::new("cluster-serve");
    c.produce(4, &demo_files());
    let addr = format!(
        "127.0.0.1:{}",
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    );
    let start = |p: usize| {
        let mut a = args(&c.t, &c.hosts, (2, 1, p));
        a.extend(["--serve".to_string(), addr.clone()]);
        Job::start(c.broker, &c.states[p], &a)
    };
    let mut jobs = [start(0), start(1)];
    let written = jobs[0].wait_caught_up(c.broker, &c.t.events, Duration::from_secs(240));
    jobs[1].assert_running();
    // The players of the output, by the process whose worker owns them.
    let dump = c.work.join("dump-served");
    tools::dump(&c.broker.config(), &c.t.notifications, &dump).unwrap();
    let lines: Vec<serde_json::Value> = kafka_harness::read_parts(&dump)
        .concat()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut players: Vec<String> = lines
        .iter()
        .filter_map(|v| v["player"].as_str().map(str::to_string))
        .collect();
    players.sort();
    players.dedup();
    let owner = |p: &str| huntflow::dataflow::facts::player_hash(p) % 2;
    let mut asked = [0, 0];
    for p in players.iter().take(40) {
        let (status, got) = common::http::json(&addr, &format!("/v1/players/{p}"));
        assert_eq!(status, 200, "player {p}: {got}");
        let as_of = got["as_of"].as_u64().expect("as_of");
        assert!(
            as_of < written,
            "player {p}: as_of {as_of}, written {written}"
        );
        // Its zones: those it entered and did not leave, by the output.
        let mut zones = std::collections::BTreeSet::new();
        for v in lines.iter().filter(|v| v["player"] == p.as_str()) {
            if v["time"].as_u64().unwrap() > as_of {
                continue;
            }
            let zone = v["zone"].as_str().map(str::to_string);
            match (v["kind"].as_str(), zone) {
                (Some("enter"), Some(z)) => zones.insert(z),
                (Some("exit"), Some(z)) => zones.remove(&z),
                _ => false,
            };
        }
        let want: Vec<&String> = zones.iter().collect();
        assert_eq!(
            got["zones"],
            serde_json::json!(want),
            "player {p} at {as_of}"
        );
        asked[owner(p) as usize] += 1;
    }
    assert!(
        asked[0] > 5 && asked[1] > 5,
        "players by process: {asked:?}"
    );
    let (status, _) = common::http::json(&addr, "/v1/players/nobody-at-all");
    assert_eq!(status, 404);
    // Process 0 counts what every process read.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = jobs[0].status().expect("process 0's status");
        let (read, accepted, rejected) = (&s["read"], &s["accepted"], &s["rejected"]);
        if read == 50_000 {
            assert_eq!(
                accepted.as_u64().unwrap() + rejected.as_u64().unwrap(),
                50_000,
                "{s}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "process 0 counts {read}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every one of `jobs` holds `n` snapshots.
fn wait_for_snapshots(jobs: &mut [Job], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs.iter().any(|j| j.snapshots().len() < n) {
        for job in jobs.iter_mut() {
            job.assert_running();
        }
        assert!(Instant::now() < deadline, "not {n} snapshots within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills process 0; process 1 stops by itself, naming it.
fn kill_process_0(jobs: &mut [Job; 2]) {
    jobs[0].kill9();
    let (ok, said) = jobs[1].wait_exit(Duration::from_secs(20));
    assert!(!ok && said.contains("lost process 0"), "{said}");
}

#[test]
fn a_state_dir_refuses_another_cluster_layout() {
    let c = Case::new("cluster-layout");
    let (broker, t, work, hosts, states) = (c.broker, &c.t, &c.work, &c.hosts, &c.states);
    c.produce(2, &demo_files()[..1]);
    {
        let mut jobs = c.start_both(1);
        wait_for_snapshots(&mut jobs, 1);
    }
    let state1 = states[1].display().to_string();
    // One process alone (-n 1) on process 1's state directory.
    let (code, said) = Job::run_to_end(broker, &states[1], &alone(t, hosts));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains(&state1) && said.contains("built with -n 2, started with -n 1"),
        "{said}"
    );
    // Three processes.
    let hosts3 = hostfile(&work.path, 3);
    let (code, said) = Job::run_to_end(broker, &states[1], &args(t, &hosts3, (3, 1, 1)));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains(&state1) && said.contains("built with -n 2, started with -n 3"),
        "{said}"
    );
    // Other worker threads.
    let (code, said) = Job::run_to_end(broker, &states[1], &args(t, hosts, (2, 2, 1)));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("built with -w 1, started with -w 2"),
        "{said}"
    );
    // Another process's state directory.
    let (code, said) = Job::run_to_end(broker, &states[1], &args(t, hosts, (2, 1, 0)));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("built by process -p 1, started as -p 0"),
        "{said}"
    );
    // A single process's state directory joined to a cluster.
    let lone = work.join("state-lone");
    {
        let mut job = Job::start(broker, &lone, &alone(t, hosts));
        wait_for_snapshots(std::slice::from_mut(&mut job), 1);
    }
    let (code, said) = Job::run_to_end(broker, &lone, &args(t, hosts, (2, 1, 0)));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("built by a single process (-n 1), started with -n 2"),
        "{said}"
    );
}
