//! Apache Kafka for the bench, run by `scripts/kafka.sh` on free ports in a
//! temporary directory, and the clients the bench measures with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huntflow::kafka::admin::Admin;
use huntflow::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// A broker of the bench's own; stopped and its directory deleted when
/// dropped (after a panic too) or when the bench's process ends.
pub struct Kafka {
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    /// Stops the broker and deletes its directory when its input closes.
    watcher: Option<Child>,
}

fn free_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")
}

impl Kafka {
    pub fn start() -> Kafka {
        // Both listeners held at once, so that the two ports differ.
        let (a, b) = (free_port(), free_port());
        let port_of = |l: &std::net::TcpListener| l.local_addr().expect("local address").port();
        let dir = format!("huntflow-bench-kafka-{}", std::process::id());
        let mut kafka = Kafka {
            port: port_of(&a),
            controller_port: port_of(&b),
            dir: std::env::temp_dir().join(dir),
            watcher: None,
        };
        drop((a, b));
        kafka.watcher = Some(kafka.watch());
        // The script says where the broker runs (and shows its log if it
        // fails to start) on standard error.
        let started = kafka
            .script("start")
            .stdin(Stdio::null())
            .status()
            .expect("run scripts/kafka.sh");
        assert!(started.success(), "scripts/kafka.sh start failed");
        kafka
    }

    /// `bash` with the script's environment.
    fn bash(&self) -> Command {
        let mut cmd = Command::new("bash");
        cmd.envs([
            ("HUNTFLOW_KAFKA_PORT", self.port.to_string().into()),
            (
                "HUNTFLOW_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string().into(),
            ),
            ("HUNTFLOW_KAFKA_DIR", self.dir.clone().into_os_string()),
        ]);
        cmd
    }

    fn script(&self, action: &str) -> Command {
        let mut cmd = self.bash();
        cmd.arg(script_path()).arg(action);
        cmd
    }

    /// A shell that runs `scripts/kafka.sh clean` once its standard input
    /// closes: when this bench drops the broker, or its process ends however
    /// it ends (the shell ignores the terminal's Ctrl-C).
    fn watch(&self) -> Child {
        self.bash()
            .arg("-c")
            .arg("trap '' INT; read -r _; exec bash \"$0\" clean")
            .arg(script_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the broker's watcher")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(&self.addr(), &[]).expect("Kafka configuration")
    }

    /// The broker's process id.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn topic(&self, topic: &str, partitions: u32) {
        let n = Admin::new(&self.config())
            .expect("admin client")
            .ensure_topic(topic, partitions)
            .expect("create topic");
        assert_eq!(n, partitions, "topic {topic} already exists");
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut watcher) = self.watcher.take() {
            drop(watcher.stdin.take());
            let _ = watcher.wait();
        }
    }
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

/// An outside reader of a topic: every partition from its beginning, with
/// the consumer settings the job itself reads with (`isolation.level=
/// read_committed`, `fetch.wait.max.ms=20`). On a thread of its own, calls
/// `f(state, partition, payload, arrival)` for each record until stopped.
pub struct Reader<S> {
    state: Arc<Mutex<S>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: Send + 'static> Reader<S> {
    pub fn start(
        kafka: &Kafka,
        topic: &str,
        partitions: u32,
        state: S,
        mut f: impl FnMut(&mut S, u32, &[u8], Instant) + Send + 'static,
    ) -> Reader<S> {
        let consumer: BaseConsumer = kafka
            .config()
            .consumer("huntflow-bench-reader")
            .create()
            .expect("create a consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
                .expect("assign a partition");
        }
        consumer.assign(&tpl).expect("assign the partitions");
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let at = Instant::now();
                        let mut s = shared.lock().expect("reader state");
                        f(&mut s, m.partition() as u32, m.payload().unwrap_or(&[]), at);
                    }
                    Some(Err(RdError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => panic!("reading a topic: {e}"),
                }
            }
        });
        Reader {
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// A look at what was read so far.
    pub fn with<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.state.lock().expect("reader state"))
    }

    /// Waits (at most `timeout`) until `done` holds of what was read.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&S) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.with(&done) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Stops reading and returns what was read; a panic of the reading
    /// thread is passed on.
    pub fn stop(mut self) -> S {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if let Err(e) = t.join() {
                std::panic::resume_unwind(e);
            }
        }
        let state = Arc::clone(&self.state);
        drop(self);
        match Arc::try_unwrap(state) {
            Ok(m) => m.into_inner().expect("reader state"),
            Err(_) => panic!("the reader's state is still shared"),
        }
    }
}

impl<S> Drop for Reader<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15 of the line, counted from 1.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// The peak resident set of a running process, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
