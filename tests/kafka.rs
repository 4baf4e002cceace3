//! The continuous job against Apache Kafka (see `scripts/kafka.sh`): its
//! output equals a backfill over the same partitions, through SIGKILLs, a
//! broker outage, and bad input.

mod common;
mod kafka_harness;

use std::path::PathBuf;
use std::time::Duration;

use huntflow::kafka::producer::Producer;
use huntflow::kafka::tools;
use kafka_harness::{
    check_against_backfill, check_against_backfill_with_changes, check_derived_against_backfill,
    check_files_against_backfill, demo_changes, demo_version, publish_change, read_parts, Broker,
    Job, Topics,
};
use rand::{Rng, SeedableRng};

fn demo_hunt() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml")
}

fn demo_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/demo");
    vec![dir.join("part-000.jsonl"), dir.join("part-001.jsonl")]
}

/// A scratch directory `kafka-<name>` and topics `<name>`, the events
/// topic created with 4 partitions on the shared broker.
fn four_partitions(name: &str) -> (common::Scratch, Topics, &'static Broker) {
    let broker = Broker::shared();
    let t = Topics::new(name);
    huntflow::kafka::admin::Admin::new(&broker.config())
        .unwrap()
        .ensure_topic(&t.events, 4)
        .unwrap();
    (common::Scratch::new(&format!("kafka-{name}")), t, broker)
}

/// Starts the job `rounds` times, each killed with SIGKILL after 0.3–1.5 s
/// (drawn from `seed`); `started(round)` runs right after each start.
fn kill_at_random(
    broker: &Broker,
    state: &std::path::Path,
    args: &[String],
    (rounds, seed): (usize, u64),
    mut started: impl FnMut(usize),
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for round in 0..rounds {
        let mut job = Job::start(broker, state, args);
        started(round);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        job.assert_running();
        job.kill9();
    }
}

/// Publishes the demo into `events` (4 partitions) at 12,000 records/s on
/// a thread of its own, while the job runs.
fn feed_demo(
    cfg: &huntflow::kafka::KafkaConfig,
    events: &str,
) -> std::thread::JoinHandle<tools::Produced> {
    let (cfg, events) = (cfg.clone(), events.to_string());
    std::thread::spawn(move || {
        tools::produce(&cfg, &events, 4, &demo_files(), Some(12_000.0), false).unwrap()
    })
}

/// The job's topics against a backfill of the dumped input.
fn compare(
    broker: &Broker,
    t: &Topics,
    work: &common::Scratch,
    hunt: &std::path::Path,
    written: u64,
) {
    check_against_backfill(
        broker,
        &work.path,
        hunt,
        &t.events,
        &t.notifications,
        &t.rejects,
        written,
    );
}

fn job_args(t: &Topics, hunt: &str, workers: &str) -> Vec<String> {
    [
        "--hunt",
        hunt,
        "--topic",
        &t.events,
        "-w",
        workers,
        "--output",
        &format!("kafka:{}", t.notifications),
        "--rejects",
        &format!("kafka:{}", t.rejects),
        "--idle-ms",
        "0",
        "--snapshot-ms",
        "300",
    ]
    .map(String::from)
    .to_vec()
}

/// The demo produced through `cfg` into a 4-partition topic of test
/// `name`, then the job at 2 workers with `extra` arguments and `env` set,
/// until caught up: its outputs equal a backfill of the dumped input.
/// Returns the job's written frontier.
fn caught_up_equals_a_backfill(
    name: &str,
    cfg: Option<huntflow::kafka::KafkaConfig>,
    extra: &[String],
    env: &[(&str, &str)],
) -> u64 {
    let work = common::Scratch::new(&format!("kafka-{name}"));
    let t = Topics::new(name);
    let broker = Broker::shared();
    let cfg = cfg.unwrap_or_else(|| broker.config());
    let produced = tools::produce(&cfg, &t.events, 4, &demo_files(), None, false).unwrap();
    assert_eq!(produced.partitions, 4);
    let hunt = demo_hunt();
    let mut args = job_args(&t, hunt.to_str().unwrap(), "2");
    args.extend_from_slice(extra);
    let mut job = Job::start_with_env(broker, &work.join("state"), &args, env);
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(180));
    compare(broker, &t, &work, &hunt, written);
    written
}

#[test]
fn end_to_end_equals_a_backfill_of_the_dumped_input() {
    let written = caught_up_equals_a_backfill("e2e", None, &[], &[]);
    assert!(written > 3_000_000, "frontier {written}");
}

/// Input compressed with zstd (as many producers are configured) is read,
/// and the job's output may be compressed too (`-X compression.type`).
#[test]
fn compressed_input_and_output_equal_a_backfill() {
    let zstd = "compression.type=zstd".to_string();
    let addr = Broker::shared().addr();
    let cfg = huntflow::kafka::KafkaConfig::new(&addr, std::slice::from_ref(&zstd)).unwrap();
    caught_up_equals_a_backfill("zstd", Some(cfg), &["-X".to_string(), zstd], &[]);
}

/// Records the fetcher delivers before a partition's queue is split off
/// land in the consumer's main queue; they are read like the rest.
#[test]
fn records_fetched_before_the_partition_queues_are_split_are_read() {
    let delay = [("HUNTFLOW_TEST_SPLIT_DELAY_MS", "1500")];
    caught_up_equals_a_backfill("split", None, &[], &delay);
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let (work, t, broker) = four_partitions("crash");
    let cfg = broker.config();
    // Input keeps arriving while the job is killed and restarted.
    let feeder = feed_demo(&cfg, &t.events);
    let hunt = demo_hunt();
    let hunt_s = hunt.to_str().unwrap();
    let state = work.join("state");
    let derived = work.join("derived");
    let mut args = job_args(&t, hunt_s, "2");
    args.extend(["--derived".into(), derived.to_str().unwrap().into()]);
    kill_at_random(broker, &state, &args, (6, 7), |_| {});
    feeder.join().unwrap();
    let mut job = Job::start(broker, &state, &args);
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(180));
    compare(broker, &t, &work, &hunt, written);
    check_derived_against_backfill(&work.path, &derived, written);
}

/// The demo files split by event time into two halves.
fn demo_halves(dir: &std::path::Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (i, file) in demo_files().iter().enumerate() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for line in std::fs::read(file).unwrap().split(|&c| c == b'\n') {
            let ts = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["ts"].as_u64())
                .unwrap_or(0);
            let half = if ts < 1_750_000 { &mut a } else { &mut b };
            half.extend_from_slice(line);
            half.push(b'\n');
        }
        let (pa, pb) = (
            dir.join(format!("a{i}.jsonl")),
            dir.join(format!("b{i}.jsonl")),
        );
        std::fs::write(&pa, a).unwrap();
        std::fs::write(&pb, b).unwrap();
        first.push(pa);
        second.push(pb);
    }
    (first, second)
}

#[test]
fn a_broker_outage_is_survived_without_a_restart() {
    let work = common::Scratch::new("kafka-outage");
    let t = Topics::new("outage");
    let broker = Broker::private(&work.path);
    let cfg = broker.config();
    let (first, second) = demo_halves(&work.path);
    tools::produce(&cfg, &t.events, 4, &first, None, false).unwrap();
    let hunt = demo_hunt();
    let hunt_s = hunt.to_str().unwrap();
    let mut job = Job::start(&broker, &work.join("state"), &job_args(&t, hunt_s, "2"));
    job.wait_caught_up(&broker, &t.events, Duration::from_secs(120));
    // Down while the job polls, snapshots and flushes; it must ride it out.
    broker.down();
    std::thread::sleep(Duration::from_secs(5));
    job.assert_running();
    broker.up();
    tools::produce(&cfg, &t.events, 4, &second, None, false).unwrap();
    let written = job.wait_caught_up(&broker, &t.events, Duration::from_secs(240));
    assert!(written > 3_000_000, "frontier {written}");
    job.assert_running();
    compare(&broker, &t, &work, &hunt, written);
}

#[test]
fn bad_messages_land_in_the_rejects_topic_with_their_offsets() {
    let work = common::Scratch::new("kafka-bad");
    let t = Topics::new("bad");
    let (raw, raw_out, raw_rejects) = (t.name("raw"), t.name("raw-out"), t.name("raw-rejects"));
    let broker = Broker::shared();
    let cfg = broker.config();
    huntflow::kafka::admin::Admin::new(&cfg)
        .unwrap()
        .ensure_topic(&raw, 1)
        .unwrap();
    let good =
        br#"{"id":"g1","type":"position","player":"p1","ts":1000,"lat":48.853,"lon":2.3499}"#;
    let messages: Vec<&[u8]> = vec![
        b"\xff\xfe not UTF-8 \xc3",
        b"{\"id\":\"x\", bad json",
        b"\x00\x01\x02\x03binary\x00",
        good,
        br#"{"id":"m1","type":"position","player":"p1"}"#,
        br#"{"id":"g2","type":"position","player":"p2","ts":2000,"lat":48.853,"lon":2.3499}"#,
    ];
    let producer = Producer::new(&cfg).unwrap();
    for m in &messages {
        producer.send(&raw, 0, None, m).unwrap();
    }
    producer.flush().unwrap();

    let hunt = demo_hunt();
    let mut job = Job::start(
        broker,
        &work.join("state"),
        &[
            "--hunt",
            hunt.to_str().unwrap(),
            "--topic",
            &raw,
            "--output",
            &format!("kafka:{raw_out}"),
            "--rejects",
            &format!("kafka:{raw_rejects}"),
            "--idle-ms",
            "0",
            "--snapshot-ms",
            "200",
        ],
    );
    job.wait_caught_up(broker, &raw, Duration::from_secs(60));
    let status = job.status().unwrap();
    assert_eq!(status["read"], 6);
    assert_eq!(status["accepted"], 2);
    tools::dump(&cfg, &raw_rejects, &work.join("rej")).unwrap();
    let rejects: Vec<serde_json::Value> = read_parts(&work.join("rej"))
        .concat()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r["offset"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "malformed"),
            (1, "malformed"),
            (2, "malformed"),
            (4, "missing_field")
        ]
    );
    for r in &rejects {
        assert_eq!(r["topic"], raw.as_str());
        assert_eq!(r["partition"], 0);
        let offset = r["offset"].as_u64().unwrap() as usize;
        let raw: Vec<u8> = match r["raw_base64"].as_str() {
            Some(b64) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            }
            None => r["raw"].as_str().unwrap().as_bytes().to_vec(),
        };
        assert_eq!(raw, messages[offset], "raw bytes of offset {offset}");
    }
}

#[test]
fn an_idle_partition_advances_by_wall_clock_and_a_restart_keeps_what_was_written() {
    let work = common::Scratch::new("kafka-idle");
    let quiet = Topics::new("idle").name("quiet");
    let broker = Broker::shared();
    let cfg = broker.config();
    huntflow::kafka::admin::Admin::new(&cfg)
        .unwrap()
        .ensure_topic(&quiet, 1)
        .unwrap();
    let producer = Producer::new(&cfg).unwrap();
    let event =
        br#"{"id":"e1","type":"position","player":"p1","ts":1000,"lat":48.853,"lon":2.3499}"#;
    producer.send(&quiet, 0, Some(b"p1"), event).unwrap();
    producer.flush().unwrap();

    let hunt = demo_hunt();
    let out = work.join("out.jsonl");
    let args = [
        "--hunt",
        hunt.to_str().unwrap(),
        "--topic",
        &quiet,
        "--output",
        out.to_str().unwrap(),
        "--idle-ms",
        "200",
        "--snapshot-ms",
        "200",
    ];
    let enters = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"enter\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Without new events the lateness window (5 s) would hold time 1000
    // back forever; the idle advance lets it complete.
    let mut job = Job::start(broker, &work.join("state"), &args);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while enters().is_empty() {
        job.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "no enter notification"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        enters(),
        vec![r#"{"time":1000,"kind":"enter","player":"p1","zone":"fountain","priority":3}"#]
    );
    let log = std::fs::read_to_string(work.join("state/advances.jsonl")).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(500));
    job.kill9();
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("advances are logged")).unwrap();
    assert_eq!(first["partition"], 0);
    assert_eq!(first["next"], 1);
    assert!(first["m"].as_u64().unwrap() > 1000);
    let mut job = Job::start(broker, &work.join("state"), &args);
    std::thread::sleep(Duration::from_secs(3));
    job.assert_running();
    assert_eq!(enters().len(), 1, "written once across the restart");
}

/// Interval files cannot start from a snapshot taken without them: the
/// intervals open then are unknown.
#[test]
fn derived_files_are_refused_on_a_state_without_them() {
    let work = common::Scratch::new("kafka-derived-late");
    let t = Topics::new("derived-late");
    let broker = Broker::shared();
    let cfg = broker.config();
    tools::produce(&cfg, &t.events, 2, &demo_files(), None, false).unwrap();
    let hunt = demo_hunt();
    let args = job_args(&t, hunt.to_str().unwrap(), "1");
    let state = work.join("state");
    let mut job = Job::start(broker, &state, &args);
    job.wait_caught_up(broker, &t.events, Duration::from_secs(120));
    job.kill9();

    let derived = work.join("derived");
    let mut late = args.clone();
    late.extend(["--derived".into(), derived.to_str().unwrap().into()]);
    let mut job = Job::start(broker, &state, &late);
    let (ok, log) = job.wait_exit(Duration::from_secs(60));
    assert!(!ok, "the job started:\n{log}");
    assert!(
        log.contains("was taken without --derived") && log.contains(state.to_str().unwrap()),
        "{log}"
    );
    assert!(!derived.join("presence.jsonl").exists());
}

/// The address a job printed for `--serve`.
fn served_addr(job: &Job) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(job.state.join("job.log")).unwrap_or_default();
        if let Some(line) = log
            .lines()
            .rev()
            .find(|l| l.starts_with("serving on http://"))
        {
            return line["serving on http://".len()..].to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no serving line:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_api_of_a_restarted_job_answers_as_before_the_crash() {
    let work = common::Scratch::new("kafka-serve");
    let t = Topics::new("serve");
    let broker = Broker::shared();
    let cfg = broker.config();
    tools::produce(&cfg, &t.events, 2, &demo_files(), None, false).unwrap();
    let hunt = demo_hunt();
    let mut args = job_args(&t, hunt.to_str().unwrap(), "2");
    args.extend(["--serve".into(), "127.0.0.1:0".into()]);
    let state = work.join("state");

    let mut job = Job::start(broker, &state, &args);
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(120));
    let addr = served_addr(&job);
    let (status, before) = common::http::json(&addr, "/v1/zones");
    assert_eq!(status, 200);
    assert_eq!(before["as_of"], written - 1);
    let (_, player_before) = common::http::json(&addr, "/v1/players/p1");
    job.kill9();
    std::fs::remove_file(state.join("job.log")).unwrap();

    let mut job = Job::start(broker, &state, &args);
    job.wait_caught_up(broker, &t.events, Duration::from_secs(120));
    let addr = served_addr(&job);
    // Rebuilt from the snapshot and the input since: the same answers.
    assert_eq!(common::http::json(&addr, "/v1/zones").1, before);
    assert_eq!(common::http::json(&addr, "/v1/players/p1").1, player_before);
    let occupied: i64 = before["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["occupancy"].as_i64().unwrap())
        .sum();
    assert!(occupied > 10, "live state too thin: {occupied}");
}

/// A job restarted from an old snapshot re-creates what it wrote after it;
/// if it snapshots before it has re-created all of that and is killed
/// again, the next start must still skip exactly what the outputs hold.
#[test]
fn a_second_crash_soon_after_a_restart_duplicates_nothing() {
    let work = common::Scratch::new("kafka-crash2");
    let t = Topics::new("crash2");
    let broker = Broker::shared();
    let cfg = broker.config();
    let (first, second) = demo_halves(&work.path);
    tools::produce(&cfg, &t.events, 4, &first, None, false).unwrap();
    let hunt = demo_hunt();
    let (out, rejects) = (work.join("out.jsonl"), work.join("rejects.jsonl"));
    let derived = work.join("derived");
    let state = work.join("state");
    let args = |snapshot_ms: &'static str| {
        vec![
            "--hunt",
            hunt.to_str().unwrap(),
            "--topic",
            &t.events,
            "-w",
            "2",
            "--output",
            out.to_str().unwrap(),
            "--rejects",
            rejects.to_str().unwrap(),
            "--idle-ms",
            "0",
            "--snapshot-ms",
            snapshot_ms,
            "--derived",
            derived.to_str().unwrap(),
        ]
    };

    // A snapshot at the end of the first half.
    let mut job = Job::start(broker, &state, &args("300"));
    job.wait_caught_up(broker, &t.events, Duration::from_secs(120));
    job.kill9();
    let before = job.snapshots();

    // The second half written with no snapshot after it.
    tools::produce(&cfg, &t.events, 4, &second, None, false).unwrap();
    let mut job = Job::start(broker, &state, &args("3600000"));
    job.wait_written(broker, &t.events, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(1));
    job.kill9();
    assert_eq!(job.snapshots(), before, "a snapshot after the first half");

    // Restarted from the first snapshot, it snapshots as soon as it may,
    // and is killed right after its first snapshot.
    let mut job = Job::start(broker, &state, &args("1"));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while job.snapshots().last() == before.last() {
        job.assert_running();
        assert!(std::time::Instant::now() < deadline, "no new snapshot");
        std::thread::sleep(Duration::from_millis(2));
    }
    job.kill9();

    let mut job = Job::start(broker, &state, &args("300"));
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(120));
    check_files_against_backfill(
        broker, &work.path, &hunt, &t.events, &out, &rejects, written,
    );
    check_derived_against_backfill(&work.path, &derived, written);
}

#[test]
fn hunt_changes_published_while_events_flow_survive_sigkills() {
    let (work, t, broker) = four_partitions("changes");
    let cfg = broker.config();
    let hunt_topic = t.name("hunt");
    let [v1, v2] = demo_changes(&work.path);
    let feeder = feed_demo(&cfg, &t.events);
    let hunt = demo_hunt();
    let hunt_s = hunt.to_str().unwrap();
    let state = work.join("state");
    let mut args = job_args(&t, hunt_s, "2");
    args.extend(["--hunt-topic".into(), hunt_topic.clone()]);
    // Published while the first jobs run, ahead of what they have read.
    let versions = [(v1.clone(), 2_000_000), (v2.clone(), 2_600_000)];
    kill_at_random(broker, &state, &args, (5, 11), |round| {
        if let Some((v, at)) = versions.get(round) {
            publish_change(broker, &hunt_topic, v, *at);
        }
    });
    feeder.join().unwrap();
    let mut job = Job::start(broker, &state, &args);
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(180));
    // Both changes were accepted: the backfill's change log is the topic.
    let log = std::fs::read_to_string(state.join("hunt-changes.jsonl")).unwrap();
    assert_eq!(log.matches("\"accepted\"").count(), 2, "{log}");
    assert!(written > 2_600_000, "frontier {written}");
    check_against_backfill_with_changes(broker, &work.path, &hunt, &t, &hunt_topic, written);
    job.kill9();

    // Started again with the hunt edited in place: refused, nothing written.
    let before = tools::dump(&cfg, &t.notifications, &work.join("before")).unwrap();
    let edited = demo_version(&work.join("edited"), "hunt", |h| {
        h.replace("radius_m = 300.0 }", "radius_m = 310.0 }")
    });
    let mut edited_args = job_args(&t, edited.to_str().unwrap(), "2");
    edited_args.extend(["--hunt-topic".into(), hunt_topic.clone()]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .arg("run")
        .args(["--brokers", &broker.addr(), "--state-dir"])
        .arg(&state)
        .args(&edited_args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(stderr.contains("hunt.toml line 15"), "{stderr}");
    assert!(stderr.contains("hunt-change"), "{stderr}");
    let after = tools::dump(&cfg, &t.notifications, &work.join("after")).unwrap();
    let counts = |d: Vec<(PathBuf, u64)>| d.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        counts(before),
        counts(after),
        "the refused job wrote nothing"
    );
}

#[test]
fn sigterm_takes_a_last_snapshot_and_a_restart_replays_nothing_past_it() {
    let (work, t, broker) = four_partitions("sigterm");
    let cfg = broker.config();
    let feeder = feed_demo(&cfg, &t.events);
    let hunt = demo_hunt();
    let state = work.join("state");
    let mut args = job_args(&t, hunt.to_str().unwrap(), "2");
    // Snapshots only when asked to stop.
    let every = args.iter().position(|a| a == "--snapshot-ms").unwrap();
    let usual = std::mem::replace(&mut args[every + 1], "600000".into());
    for _ in 0..2 {
        let mut job = Job::start(broker, &state, &args);
        std::thread::sleep(Duration::from_millis(3000));
        job.assert_running();
        let asked = std::time::Instant::now();
        job.terminate();
        let (ok, log) = job.wait_exit(Duration::from_secs(20));
        assert!(ok, "a graceful stop exits 0:\n{log}");
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "{:?}",
            asked.elapsed()
        );
        assert!(log.contains("stopped after snapshot"), "{log}");
        // Everything written is below the last snapshot's marks: a restart
        // re-creates nothing.
        let manifest = job.last_manifest();
        for (name, topic) in [("notifications", &t.notifications), ("rejects", &t.rejects)] {
            let marks: Vec<i64> = manifest["outputs"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_i64().unwrap())
                .collect();
            let admin = huntflow::kafka::admin::Admin::new(&cfg).unwrap();
            for (p, mark) in marks.iter().enumerate() {
                let end =
                    huntflow::kafka::admin::end_offset(&cfg, &admin, topic, p as u32).unwrap();
                assert_eq!(
                    end, *mark,
                    "{name} partition {p}: the topic ends at its mark"
                );
            }
        }
    }
    feeder.join().unwrap();
    // The last run snapshots as usual, so that catching up is observable.
    args[every + 1] = usual;
    let mut job = Job::start(broker, &state, &args);
    let written = job.wait_caught_up(broker, &t.events, Duration::from_secs(180));
    compare(broker, &t, &work, &hunt, written);
}
