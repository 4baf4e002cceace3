//! The continuous job (`huntflow run`) against Apache Kafka, run by
//! `scripts/kafka.sh` on free ports in a temporary directory:
//!
//! 1. **latency**, at each rate of `HUNTFLOW_CONTINUOUS_RATES`: first the
//!    broker's own round trip (events produced into a topic and read back
//!    by an outside consumer), then the job's: events produced into the
//!    job's input topic, the job writing to an output topic, an outside
//!    consumer (`isolation.level=read_committed`) reading it. A lateness-0
//!    hunt where every event moves its player into or out of a zone, so
//!    that each event causes one `enter` or `exit` whose `(player, time)`
//!    names it; latency = the notification's arrival at the consumer minus
//!    the moment its event was handed to the producer. Prints p50/p90/p99/
//!    max, a p99 series per bucket of send time with the job's snapshots
//!    marked, and the output's lag behind the input;
//! 2. **catch-up** (run alone, after a broker warm-up as in 1): the
//!    1M-event bench dataset in a 2-partition topic
//!    (`huntflow produce`), then `huntflow run`; events/s from the job's
//!    start until an outside consumer has read every notification below
//!    the end frontier (the job's written frontier, from `status.json`,
//!    having reached the least partition frontier with every partition
//!    read to its end).
//!
//! `cargo bench --bench continuous [-- latency | -- catch-up]`; the knobs
//! are environment variables (benches/README.md). Appends one JSON line
//! per result to `target/bench-results.jsonl`.

#[path = "continuous/broker.rs"]
mod broker;
#[path = "common/mod.rs"]
mod common;
#[path = "continuous/feed.rs"]
mod feed;
#[path = "continuous/job.rs"]
mod job;
#[path = "continuous/report.rs"]
mod report;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker::{cpu_seconds, peak_rss, Kafka, Reader};
use common::{dataset, filter, results_file, selected, target_dir, Quantiles, ONE_MILLION};
use feed::{event_number, match_job, send, write_hunt, Players, Seen, Sent};
use huntflow::kafka::admin::Admin;
use huntflow::kafka::producer::Producer;
use job::{Job, SnapshotWatch};
use report::Samples;

/// An environment variable, or its default.
fn knob<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: not a valid value")),
        Err(_) => default,
    }
}

/// A comma-separated list in an environment variable, or its default.
fn list<T: FromStr>(name: &str, default: &str) -> Vec<T> {
    let text: String = knob(name, default.to_string());
    text.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a valid value"))
        })
        .collect()
}

/// The bench's settings.
struct Knobs {
    rates: Vec<u64>,
    seconds: f64,
    broker_seconds: f64,
    warmup: f64,
    broker_warmup: f64,
    partitions: u32,
    /// The job's `-w` in the latency phase, one run per count and rate.
    workers: Vec<u32>,
    /// The job's `-w` in the catch-up.
    catch_up_workers: u32,
    players: u32,
    zones: u32,
    snapshot_ms: u64,
    idle_ms: u64,
    bucket_ms: u64,
    /// More arguments for every `huntflow run`.
    job_args: Vec<OsString>,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            rates: list("HUNTFLOW_CONTINUOUS_RATES", "5000,20000,50000"),
            seconds: knob("HUNTFLOW_CONTINUOUS_SECONDS", 20.0),
            broker_seconds: knob("HUNTFLOW_CONTINUOUS_BROKER_SECONDS", 10.0),
            warmup: knob("HUNTFLOW_CONTINUOUS_WARMUP_SECONDS", 2.0),
            broker_warmup: knob("HUNTFLOW_CONTINUOUS_BROKER_WARMUP_SECONDS", 10.0),
            partitions: knob("HUNTFLOW_CONTINUOUS_PARTITIONS", 2),
            workers: list("HUNTFLOW_CONTINUOUS_WORKERS", "1,2"),
            catch_up_workers: knob("HUNTFLOW_CONTINUOUS_CATCH_UP_WORKERS", 2),
            players: knob("HUNTFLOW_CONTINUOUS_PLAYERS", 10_000),
            zones: knob("HUNTFLOW_CONTINUOUS_ZONES", 20),
            snapshot_ms: knob("HUNTFLOW_CONTINUOUS_SNAPSHOT_MS", 5_000),
            idle_ms: knob("HUNTFLOW_CONTINUOUS_IDLE_MS", 10_000),
            bucket_ms: knob("HUNTFLOW_CONTINUOUS_BUCKET_MS", 250),
            job_args: knob("HUNTFLOW_CONTINUOUS_JOB_ARGS", String::new())
                .split_whitespace()
                .map(OsString::from)
                .collect(),
        }
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn work_dir() -> std::path::PathBuf {
    target_dir().join("tmp").join("bench-continuous")
}

/// `huntflow run` reading `input` and writing notifications to
/// `kafka:output`, with the knobs' settings and extra arguments.
fn start_job(
    kafka: &Kafka,
    k: &Knobs,
    state: &Path,
    hunt: &Path,
    topics: (&str, &str),
    workers: u32,
    idle_ms: u64,
) -> Job {
    let settings = [
        "run".to_string(),
        "--brokers".into(),
        kafka.addr(),
        "--topic".into(),
        topics.0.into(),
        "-w".into(),
        workers.to_string(),
        "--output".into(),
        format!("kafka:{}", topics.1),
        "--idle-ms".into(),
        idle_ms.to_string(),
        "--snapshot-ms".into(),
        k.snapshot_ms.to_string(),
    ];
    let mut run: Vec<OsString> = settings.into_iter().map(OsString::from).collect();
    run.extend([
        "--hunt".into(),
        hunt.into(),
        "--state-dir".into(),
        state.into(),
    ]);
    run.extend(k.job_args.iter().cloned());
    Job::start(state, &run)
}

fn fmt_q(q: &Option<Quantiles>) -> String {
    q.as_ref().map_or("no samples".into(), |q| {
        format!(
            "p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} ms ({} events)",
            q.p50, q.p90, q.p99, q.max, q.count
        )
    })
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The samples of the events sent after the warm-up, in send order.
fn measured(
    sent: &Sent,
    warmup: Duration,
    latency: impl Fn(usize) -> Option<Duration>,
) -> (Samples, usize) {
    let from = sent.began + warmup;
    let mut samples = Vec::new();
    let mut missing = 0;
    for (n, &at) in sent.at.iter().enumerate() {
        if at < from {
            continue;
        }
        match latency(n) {
            Some(d) => samples.push((at, d.as_secs_f64() * 1e3)),
            None => missing += 1,
        }
    }
    (samples, missing)
}

fn achieved(sent: &Sent) -> f64 {
    sent.ts.len() as f64 / sent.ended.duration_since(sent.began).as_secs_f64()
}

/// Sends `rate` events/s into `topic` for the warm-up and `seconds` more.
fn feed(kafka: &Kafka, k: &Knobs, topic: &str, players: &Players, rate: u64, seconds: f64) -> Sent {
    let producer = Producer::new(&kafka.config()).expect("producer");
    let duration = k.warmup() + Duration::from_secs_f64(seconds);
    send(
        &producer,
        topic,
        k.partitions,
        players,
        rate,
        duration,
        now_ms(),
    )
}

/// The broker's own produce → consume round trip at `rate`, `seconds`
/// after the warm-up; a topic of its own each time.
fn round_trip(kafka: &Kafka, k: &Knobs, players: &Players, rate: u64, seconds: f64) -> RoundTrip {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let topic = format!("round-trip-{}-{rate}", RUNS.fetch_add(1, Ordering::Relaxed));
    kafka.topic(&topic, k.partitions);
    let reader = Reader::start(
        kafka,
        &topic,
        k.partitions,
        Vec::new(),
        |v: &mut Vec<(u64, Instant)>, _, payload, at| {
            if let Some(n) = event_number(payload) {
                v.push((n, at));
            }
        },
    );
    let broker_pid = kafka.pid().expect("the broker's pid");
    let cpu0 = cpu_seconds(broker_pid);
    let sent = feed(kafka, k, &topic, players, rate, seconds);
    let cpu =
        (cpu_seconds(broker_pid) - cpu0) / sent.ended.duration_since(sent.began).as_secs_f64();
    let total = sent.ts.len();
    reader.wait_for(Duration::from_secs(30), |v| v.len() >= total);
    let mut arrived = vec![None; total];
    for (n, at) in reader.stop() {
        if let Some(slot) = arrived.get_mut(n as usize) {
            slot.get_or_insert(at);
        }
    }
    let (samples, missing) = measured(&sent, k.warmup(), |n| {
        arrived[n].map(|a: Instant| a.saturating_duration_since(sent.at[n]))
    });
    RoundTrip {
        q: report::quantiles(&samples),
        achieved: achieved(&sent),
        missing,
        broker_cpu: cpu,
    }
}

/// What a rate's broker round trip gave.
struct RoundTrip {
    q: Option<Quantiles>,
    achieved: f64,
    missing: usize,
    broker_cpu: f64,
}

/// What a rate's job phase gave.
struct JobResult {
    q: Option<Quantiles>,
    near: Option<f64>,
    elsewhere: Option<f64>,
    near_count: usize,
    achieved: f64,
    missing: usize,
    drift: (Option<f64>, Option<f64>),
    lag: Option<(f64, f64, f64)>,
    drain: Option<Duration>,
    job_cpu: f64,
    broker_cpu: f64,
    snapshots: usize,
}

/// The job's latency at `rate`; prints the series and the snapshots.
fn job_latency(
    kafka: &Kafka,
    k: &Knobs,
    hunt: &Path,
    players: &Players,
    (rate, workers): (u64, u32),
) -> JobResult {
    // Topics and state of this run alone.
    let run = format!("{rate}-w{workers}");
    let (input, output) = (format!("events-{run}"), format!("notifications-{run}"));
    kafka.topic(&input, k.partitions);
    kafka.topic(&output, k.partitions);
    let reader = Reader::start(
        kafka,
        &output,
        k.partitions,
        Seen::default(),
        |s: &mut Seen, _, payload, at| s.record(payload, at),
    );
    let state = work_dir().join(format!("state-{run}"));
    let mut job = start_job(
        kafka,
        k,
        &state,
        hunt,
        (&input[..], &output[..]),
        workers,
        k.idle_ms,
    );
    job.wait_ready(k.partitions as usize);
    let broker_pid = kafka.pid().expect("the broker's pid");
    let cpu0 = (cpu_seconds(job.pid()), cpu_seconds(broker_pid));
    let watch = SnapshotWatch::start(&job.state);
    let sent = feed(kafka, k, &input, players, rate, k.seconds);
    let wall = sent.ended.duration_since(sent.began).as_secs_f64();
    let cpu1 = (cpu_seconds(job.pid()), cpu_seconds(broker_pid));
    // The last events complete every time sent: each event's notification
    // is due. (Progress records cannot tell: the job may hold its last one
    // back until the output's next change.)
    let total = sent.ts.len();
    reader.wait_for(Duration::from_secs(60), |s: &Seen| s.players.len() >= total);
    job.assert_running();
    let snapshots = watch.stop();
    let seen = reader.stop();
    let rejects = job.rejects();
    drop(job);
    assert_eq!(
        rejects,
        0,
        "the job rejected records: see {}",
        state.join("rejects.jsonl").display()
    );
    let drain = seen
        .players
        .iter()
        .map(|a| a.at)
        .max()
        .map(|at| at.saturating_duration_since(sent.ended));

    let (latency, unmatched) = match_job(&sent, players, &seen);
    let (samples, missing) = measured(&sent, k.warmup(), |n| latency[n]);
    let from = sent.began + k.warmup();
    let to = sent.ended;
    let commits = report::commits_within(&snapshots, from, to);
    let (near, elsewhere, near_count) = report::near_and_elsewhere(&samples, &commits);
    let q = report::quantiles(&samples);
    println!(
        "  job: {}; {} without a notification, {unmatched} notifications matching no event, {} occupancy records",
        fmt_q(&q),
        missing,
        seen.occupancy
    );
    println!(
        "  p99 by {} ms of send time from the end of the warm-up (* a snapshot committed in the bucket):",
        k.bucket_ms
    );
    print!(
        "{}",
        report::series(
            &samples,
            from,
            to,
            Duration::from_millis(k.bucket_ms),
            &commits
        )
    );
    println!(
        "  snapshots, from the end of the warm-up:{}",
        report::snapshot_times(&snapshots, from)
    );
    JobResult {
        q,
        near,
        elsewhere,
        near_count,
        achieved: achieved(&sent),
        missing,
        drift: report::drift(&samples, from, to, Duration::from_secs(2)),
        lag: report::progress_lag(&sent, &seen.progress, from, to),
        drain,
        job_cpu: (cpu1.0 - cpu0.0) / wall,
        broker_cpu: (cpu1.1 - cpu0.1) / wall,
        snapshots: commits.len(),
    }
}

fn latency(kafka: &Kafka, k: &Knobs, results: &mut std::fs::File) -> String {
    let hunt = write_hunt(&work_dir().join("hunt"), k.zones);
    let players = Players::new(k.players, k.zones);
    println!(
        "latency: {} players over {} zones, {} partitions, huntflow run -w {:?} --idle-ms {} --snapshot-ms {}; warm-up {} s, then {} s (job) and {} s (broker) per rate",
        k.players, k.zones, k.partitions, k.workers, k.idle_ms, k.snapshot_ms, k.warmup, k.seconds, k.broker_seconds
    );
    let mut table = String::from(
        "| rate (events/s) | workers | sent at (events/s) | broker p50 / p90 / p99 / max (ms) | job p50 / p90 / p99 / max (ms) | job p99 within 0.5 s of a snapshot / elsewhere (ms) | job p50 first / last 2 s (ms) | output lag first / last s, max (ms) | last notification after the last send (ms) | CPU: job / broker / broker in the round trip |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    warm_up_broker(kafka, k);
    for &rate in &k.rates {
        println!("rate {rate} events/s");
        let b = round_trip(kafka, k, &players, rate, k.broker_seconds);
        println!(
            "  broker: {} sent at {:.0} events/s; {} never read; broker CPU {:.0}%",
            fmt_q(&b.q),
            b.achieved,
            b.missing,
            b.broker_cpu * 100.0
        );
        record(results, "broker", rate, None, &b.q, b.achieved, b.missing);
        for &workers in &k.workers {
            println!("  job at -w {workers}");
            let j = job_latency(kafka, k, &hunt, &players, (rate, workers));
            table_row(&mut table, (rate, workers), &b, &j);
            print_job(&j);
            record(
                results,
                "job",
                rate,
                Some(workers),
                &j.q,
                j.achieved,
                j.missing,
            );
        }
    }
    table
}

/// One row of the latency table: the job at `(rate, workers)` beside the
/// broker's round trip at that rate.
fn table_row(table: &mut String, (rate, workers): (u64, u32), b: &RoundTrip, j: &JobResult) {
    let q4 = |q: &Option<Quantiles>| {
        q.as_ref().map_or("-".into(), |q| {
            format!("{:.1} / {:.1} / {:.1} / {:.1}", q.p50, q.p90, q.p99, q.max)
        })
    };
    let lag = j.lag.map_or("-".into(), |(first, last, max)| {
        format!("{first:.0} / {last:.0}, {max:.0}")
    });
    let _ = writeln!(
        table,
        "| {rate} | {workers} | {:.0} | {} | {} | {} / {} ({} events near) | {} / {} | {lag} | {} | {:.0}% / {:.0}% / {:.0}% |",
        j.achieved,
        q4(&b.q),
        q4(&j.q),
        fmt_ms(j.near),
        fmt_ms(j.elsewhere),
        j.near_count,
        fmt_ms(j.drift.0),
        fmt_ms(j.drift.1),
        j.drain.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3)),
        j.job_cpu * 100.0,
        j.broker_cpu * 100.0,
        b.broker_cpu * 100.0
    );
}

fn print_job(j: &JobResult) {
    println!(
        "  job sent at {:.0} events/s; p99 within {} ms of one of {} snapshot commits {} ms, elsewhere {} ms; output lag (event time, ms) first s {}, last s {}, max {}; last notification read {} after the last event was sent; CPU job {:.0}%, broker {:.0}%",
        j.achieved,
        report::NEAR.as_millis(),
        j.snapshots,
        fmt_ms(j.near),
        fmt_ms(j.elsewhere),
        fmt_ms(j.lag.map(|l| l.0)),
        fmt_ms(j.lag.map(|l| l.1)),
        fmt_ms(j.lag.map(|l| l.2)),
        j.drain.map_or("never".into(), |d| format!("{d:.1?}")),
        j.job_cpu * 100.0,
        j.broker_cpu * 100.0
    );
}

/// Appends one latency result (the broker's, or the job's at `workers`).
fn record(
    results: &mut std::fs::File,
    what: &str,
    rate: u64,
    workers: Option<u32>,
    q: &Option<Quantiles>,
    sent_at: f64,
    missing: usize,
) {
    let Some(q) = q else {
        return;
    };
    let workers = workers.map_or(String::new(), |w| format!("\"workers\":{w},"));
    writeln!(
        results,
        "{{\"bench\":\"continuous-latency\",\"what\":\"{what}\",\"rate\":{rate},{workers}\"sent_per_s\":{sent_at:.0},\"missing\":{missing},\"events\":{},{}}}",
        q.count,
        q.json()
    )
    .expect("write result");
}

/// A broker just started runs its first seconds of load interpreted, on
/// the job's cores: the catch-up run alone first has it carry a round trip
/// at the highest rate, as the latency phase does, not counted.
fn warm_up_broker(kafka: &Kafka, k: &Knobs) {
    let Some(&rate) = k.rates.iter().max().filter(|_| k.broker_warmup > 0.0) else {
        return;
    };
    let players = Players::new(k.players, k.zones);
    let t = Instant::now();
    let w = round_trip(kafka, k, &players, rate, k.broker_warmup);
    eprintln!(
        "broker warm-up: {:.1?} at {rate} events/s ({}), not counted",
        t.elapsed(),
        fmt_q(&w.q)
    );
}

/// Catch-up: the 1M dataset already in the topic, then the job.
fn catch_up(kafka: &Kafka, k: &Knobs, results: &mut std::fs::File) {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let (hunt, files) = dataset(bin, &ONE_MILLION);
    let (input, output) = ("catch-up-events", "catch-up-notifications");
    let t = Instant::now();
    let status = Command::new(bin)
        .args([
            "produce",
            "--brokers",
            &kafka.addr(),
            "--topic",
            input,
            "--partitions",
            "2",
        ])
        .args(&files)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run huntflow produce");
    assert!(status.success(), "huntflow produce failed");
    let cfg = kafka.config();
    let admin = Admin::new(&cfg).expect("admin");
    let ends: Vec<i64> = (0..2)
        .map(|p| admin.watermarks(input, p).expect("watermarks").1)
        .collect();
    let records: i64 = ends.iter().sum();
    eprintln!(
        "produced {records} records in {:.1?} (huntflow produce)",
        t.elapsed()
    );
    kafka.topic(output, 2);
    // Per output record: its time (`T` for a progress record), whether it
    // is a progress record, and its arrival.
    let reader = Reader::start(
        kafka,
        output,
        2,
        Vec::new(),
        |v: &mut Vec<(u64, bool, Instant)>, _, payload, at| {
            if let Ok(note) = serde_json::from_slice::<feed::Note>(payload) {
                v.push((note.time, note.kind == "progress", at));
            }
        },
    );
    let state = work_dir().join("state-catch-up");
    let broker_pid = kafka.pid().expect("the broker's pid");
    let broker_cpu0 = cpu_seconds(broker_pid);
    let started = Instant::now();
    let mut job = start_job(
        kafka,
        k,
        &state,
        &hunt,
        (input, output),
        k.catch_up_workers,
        0,
    );
    // status.json (rewritten every second): every partition read to its
    // end and the written frontier at the least partition frontier.
    let mut first_status = None;
    let (by_status, target) = loop {
        job.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no catch-up in 600 s: {:?}",
            job.status()
        );
        std::thread::sleep(Duration::from_millis(20));
        let Some(s) = job.status() else { continue };
        first_status.get_or_insert(started.elapsed());
        let parts = s["partitions"].as_array().cloned().unwrap_or_default();
        let all_read = (0..2).all(|p| {
            parts
                .iter()
                .find(|v| v["partition"] == p)
                .and_then(|v| v["next_offset"].as_i64())
                .is_some_and(|next| next >= ends[p as usize])
        });
        let low = parts.iter().filter_map(|v| v["frontier"].as_u64()).min();
        let written = s["written_frontier"].as_u64().unwrap_or(0);
        if let Some(low) = low.filter(|&l| all_read && written >= l) {
            break (started.elapsed(), low);
        }
    };
    // The moment a consumer could read every notification below the end
    // frontier: the last arrival of one, once the output has been quiet
    // for a second. (The job's last progress record can be held back until
    // the output's next change, so it is not waited for.)
    let quiet = |v: &Vec<(u64, bool, Instant)>| {
        v.last()
            .is_some_and(|(_, _, at)| at.elapsed() > Duration::from_secs(1))
    };
    reader.wait_for(Duration::from_secs(60), quiet);
    let rss = peak_rss(job.pid());
    let cpu = cpu_seconds(job.pid());
    let broker_cpu = cpu_seconds(broker_pid) - broker_cpu0;
    drop(job);
    let seen = reader.stop();
    let since_start = |at: &Instant| at.duration_since(started);
    let first = seen.first().map(|(_, _, at)| since_start(at));
    let by_output = seen
        .iter()
        .filter(|(t, progress, _)| !progress && *t < target)
        .map(|(_, _, at)| since_start(at))
        .max();
    let progress = seen
        .iter()
        .filter(|(t, progress, _)| *progress && *t >= target)
        .map(|(_, _, at)| since_start(at))
        .min();
    let secs = by_output.unwrap_or(by_status).as_secs_f64();
    let rate = records as f64 / secs;
    let show = |d: Option<Duration>| d.map_or("never".into(), |d| format!("{d:.2?}"));
    println!(
        "catch-up: {records} events in 2 partitions, huntflow run -w {} --idle-ms 0; from the job's start: status.json first written after {}, first output record read after {}, every notification below the end frontier readable after {} ({rate:.0} events/s), a progress record at the end frontier read after {}; status.json said caught up after {by_status:.2?} (it is rewritten every second); {} output records; peak RSS {:.1} MiB; CPU time: job {cpu:.1} s, broker {broker_cpu:.1} s",
        k.catch_up_workers,
        show(first_status),
        show(first),
        show(by_output),
        show(progress),
        seen.len(),
        rss as f64 / f64::from(1 << 20)
    );
    writeln!(
        results,
        "{{\"bench\":\"continuous-catch-up\",\"events\":{records},\"workers\":{},\"seconds\":{secs:.3},\"events_per_s\":{rate:.0},\"peak_rss\":{rss}}}",
        k.catch_up_workers
    )
    .expect("write result");
}

fn main() {
    let k = Knobs::from_env();
    let filter = filter();
    let kafka = Kafka::start();
    let (path, mut results) = results_file();
    if selected(&filter, "latency") {
        let table = latency(&kafka, &k, &mut results);
        println!("\n{table}");
    }
    if selected(&filter, "catch-up") {
        if !selected(&filter, "latency") {
            warm_up_broker(&kafka, &k);
        }
        catch_up(&kafka, &k, &mut results);
    }
    eprintln!("results appended to {}", path.display());
}
