//! The continuous job through a real broker (tansu, memory storage, started
//! by `scripts/broker.sh`; built into the tool cache on first use):
//!
//! 1. catch-up: the 1M-event bench dataset is produced into a 2-partition
//!    topic, then `huntflow run -w 2` starts and reads it all; prints events/s
//!    from start to "every partition read and every completable time written"
//!    (`status.json`), and the job's peak RSS;
//! 2. latency: a fresh job reads a 1-partition topic fed at a steady
//!    `HUNTFLOW_CONTINUOUS_RATE` records/s (default 20,000); for each
//!    notification the wall time from the moment the input that completes
//!    its time was handed to the producer (the first record that lifts the
//!    partition frontier `max(0, M - L)` past it) to the moment the
//!    notification arrives on the job's standard output. Prints p50/p90/p99.
//!
//! Appends one JSON line per phase to `target/bench-results.jsonl`.
//! Run: `cargo bench --bench continuous`.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{dataset, results_file, target_dir, FrontierLog, Quantiles, ONE_MILLION};
use huntflow::kafka::producer::Producer;
use huntflow::kafka::{tools, KafkaConfig};

struct Broker {
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = target_dir().join("bench-broker");
        let _ = std::fs::remove_dir_all(&dir);
        let b = Broker { port, dir };
        assert!(
            b.script("start").success(),
            "scripts/broker.sh start failed"
        );
        b
    }

    fn script(&self, cmd: &str) -> std::process::ExitStatus {
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker.sh"))
            .arg(cmd)
            .env("HUNTFLOW_BROKER_PORT", self.port.to_string())
            .env("HUNTFLOW_BROKER_DIR", &self.dir)
            .status()
            .expect("run scripts/broker.sh")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.script("stop");
    }
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn job(bin: &str, broker: &Broker, hunt: &Path, topic: &str, state: &Path, out: Stdio) -> Child {
    let _ = std::fs::remove_dir_all(state);
    Command::new(bin)
        .args([
            "run",
            "--brokers",
            &broker.addr(),
            "--topic",
            topic,
            "-w",
            "2",
        ])
        .arg("--hunt")
        .arg(hunt)
        .args(["--output", "-", "--idle-ms", "0"])
        .arg("--rejects")
        .arg(state.with_extension("rejects.jsonl"))
        .arg("--state-dir")
        .arg(state)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn huntflow run")
}

fn status(state: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(state.join("status.json")).ok()?).ok()
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_huntflow");
    let broker = Broker::start();
    let cfg = KafkaConfig::new(&broker.addr(), &[]).expect("config");
    let (path, mut results) = results_file();

    // 1. Catch-up throughput.
    let (hunt, parts) = dataset(bin, &ONE_MILLION);
    let t = Instant::now();
    let produced = tools::produce(&cfg, "bench", 2, &parts, None, false).expect("produce");
    eprintln!(
        "produced {} records in {:.1?}",
        produced.records,
        t.elapsed()
    );
    let state = target_dir().join("bench-continuous-state");
    let started = Instant::now();
    let mut child = job(bin, &broker, &hunt, "bench", &state, Stdio::null());
    let (caught_up, rss) = loop {
        std::thread::sleep(Duration::from_millis(50));
        let Some(s) = status(&state) else { continue };
        let read = s["read"].as_u64().unwrap_or(0);
        let low = s["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["frontier"].as_u64())
            .min()
            .unwrap_or(0);
        if read == produced.records && s["written_frontier"].as_u64() >= Some(low) {
            break (started.elapsed(), peak_rss(child.id()));
        }
        assert!(started.elapsed() < Duration::from_secs(600), "no catch-up");
    };
    let _ = child.kill();
    let _ = child.wait();
    let rate = produced.records as f64 / caught_up.as_secs_f64();
    println!(
        "catch-up: {} events, -w 2, in {:.2?} (with start-up and the 1 s status period): {:.0} events/s, peak RSS {:.1} MiB",
        produced.records,
        caught_up,
        rate,
        rss as f64 / (1 << 20) as f64
    );
    writeln!(
        results,
        "{{\"bench\":\"continuous-catch-up\",\"events\":{},\"workers\":2,\"seconds\":{:.3},\"events_per_s\":{:.0},\"peak_rss\":{rss}}}",
        produced.records,
        caught_up.as_secs_f64(),
        rate
    )
    .expect("write result");

    // 2. Latency at a steady input rate, one partition.
    let rate: u64 = std::env::var("HUNTFLOW_CONTINUOUS_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let lateness = huntflow::model::hunt::Hunt::load(&hunt)
        .expect("hunt")
        .max_lateness_ms;
    huntflow::kafka::admin::Admin::new(&cfg)
        .expect("admin")
        .ensure_topic("paced", 1)
        .expect("topic");
    let state = target_dir().join("bench-continuous-paced");
    let mut child = job(bin, &broker, &hunt, "paced", &state, Stdio::piped());
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("\"progress\"") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).expect("notification");
            if tx
                .send((v["time"].as_u64().expect("time"), Instant::now()))
                .is_err()
            {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let producer = Producer::new(&cfg).expect("producer");
    let input = std::fs::read(&parts[0]).expect("partition");
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take((rate * 20) as usize)
        .collect();
    let per_ms = (rate / 1000).max(1) as usize;
    let start = Instant::now();
    let mut frontiers = FrontierLog::new(lateness);
    for (i, chunk) in lines.chunks(per_ms).enumerate() {
        if let Some(wait) =
            (start + Duration::from_millis(i as u64)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        for line in chunk {
            let v: serde_json::Value = serde_json::from_slice(line).expect("clean dataset");
            frontiers.saw(v["ts"].as_u64().expect("ts"));
            producer.send("paced", 0, None, line).expect("send");
        }
        frontiers.sent();
    }
    producer.flush().expect("flush");
    let sent = start.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    // A notification at time t is due once the frontier is above t.
    let latencies: Vec<f64> = rx
        .try_iter()
        .filter_map(|(t, arrived)| {
            frontiers
                .reached(t + 1)
                .map(|sent| arrived.saturating_duration_since(sent).as_secs_f64() * 1e3)
        })
        .collect();
    let q = Quantiles::of(latencies, "notifications");
    println!(
        "latency: {} records at {rate}/s in {:.1?}, {} notifications; ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        lines.len(),
        sent,
        q.count,
        q.p50,
        q.p90,
        q.p99,
        q.max
    );
    writeln!(
        results,
        "{{\"bench\":\"continuous-latency\",\"rate\":{rate},\"records\":{},\"notifications\":{},{}}}",
        lines.len(),
        q.count,
        q.json()
    )
    .expect("write result");
    eprintln!("results appended to {}", path.display());
}
