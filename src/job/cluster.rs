//! Timely's cluster mode, for both jobs: `-w` worker threads per process,
//! `-n` processes, `-p` this process's index, `-h` a hostfile with one
//! `host:port` a line. [`ClusterFlags`] are the flags as given;
//! [`Cluster::load`] checks them (naming the flag, or the hostfile and its
//! line) and [`Cluster::timely_config`] is timely's configuration built from
//! them; [`Cluster::execute`] starts the workers.
//!
//! Workers are numbered globally: process `p` runs workers `p·w` to
//! `p·w + w - 1`, so worker 0 is on process 0.
//!
//! Connecting: process `p` listens on its own address and connects to every
//! process below it, as timely does, but with a deadline (`connect_timeout`),
//! a second connection for the heartbeat, and a handshake: each connection starts with both processes' index,
//! `-n`, `-w` and a fingerprint of the job's arguments, so that a process
//! started with other arguments, or twice with one index, is refused with a
//! message instead of computing garbage; and with the snapshots each holds
//! (the continuous job resumes from the newest every process holds:
//! [`Cluster::connect`], then [`Connected::execute`]). Nothing is printed on standard
//! output (timely's own connection code prints there).
//!
//! Failures: when a connection fails (a peer's process ended, its machine
//! rebooted), timely's communication thread panics; in cluster mode a panic
//! hook turns that into a message naming the peer and its address, and
//! ends the process (status 2) instead of leaving workers waiting for a
//! peer that will not answer. A panic of any other timely thread ends the
//! process too, which its peers then notice the same way. A peer that stops
//! answering without its connections failing (its machine cut off the
//! network, the process frozen) is caught by a heartbeat: every pair of
//! processes keeps a second connection on which each sends a byte every
//! second; ten seconds of silence end the process the same way. The data
//! connections also keep TCP keepalive probes and a send timeout. Once this
//! process's work is done ([`mark_done`]), a peer going away ends the
//! process with status 0 (a backfill's processes serving its final state
//! stop when process 0 stops).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, WorkerGuards};
use timely::worker::Worker;
use timely::{CommunicationConfig, WorkerConfig};

/// How long a process waits for its peers to start, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster flags as given on the command line.
#[derive(Clone, Debug)]
pub struct ClusterFlags {
    /// `-n`: processes.
    pub processes: usize,
    /// `-p`: this process's index.
    pub process: usize,
    /// `-h`: one `host:port` a line, in process order.
    pub hostfile: Option<PathBuf>,
    /// How long to wait for the other processes at start.
    pub connect_timeout: Duration,
}

impl Default for ClusterFlags {
    fn default() -> Self {
        ClusterFlags {
            processes: 1,
            process: 0,
            hostfile: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A configuration that cannot run, or a cluster that did not form.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("-w (worker threads per process) must be at least 1")]
    NoWorkers,
    #[error("-n (processes) must be at least 1")]
    NoProcesses,
    #[error("-p {process} is not below -n {processes}: processes are numbered 0 to {}", processes - 1)]
    Index { process: usize, processes: usize },
    #[error("-n {processes} needs a hostfile (-h FILE): one host:port a line, one line a process")]
    NoHostfile { processes: usize },
    #[error("{}: cannot read the hostfile: {source}", path.display())]
    Hostfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {text:?} is not host:port ({reason})", path.display())]
    Address {
        path: PathBuf,
        line: usize,
        text: String,
        reason: String,
    },
    #[error("{}, line {line}: {address} is process {first}'s address already (line {first_line})", path.display())]
    SameAddress {
        path: PathBuf,
        line: usize,
        address: String,
        first: usize,
        first_line: usize,
    },
    #[error("{}, line {line}: more addresses than -n {processes}: exactly one a process", path.display())]
    TooMany {
        path: PathBuf,
        line: usize,
        processes: usize,
    },
    #[error("{}: {found} address(es) for -n {processes}: exactly one a process", path.display())]
    TooFew {
        path: PathBuf,
        found: usize,
        processes: usize,
    },
    #[error(
        "cannot listen on {address} (this process's line of the hostfile, -p {process}): {source}"
    )]
    Listen {
        address: String,
        process: usize,
        source: std::io::Error,
    },
    #[error("process {peer} ({address}) could not be reached within {}s: {last}", timeout.as_secs())]
    Unreachable {
        peer: usize,
        address: String,
        timeout: Duration,
        last: String,
    },
    #[error("process {peer} ({address}) did not connect within {}s", timeout.as_secs())]
    Missing {
        peer: usize,
        address: String,
        timeout: Duration,
    },
    #[error("{0}")]
    Handshake(String),
    #[error("starting the workers: {0}")]
    Start(String),
}

/// A checked cluster configuration.
#[derive(Clone, Debug)]
pub struct Cluster {
    threads: usize,
    processes: usize,
    process: usize,
    /// One per process (empty for a single process).
    addresses: Vec<String>,
    connect_timeout: Duration,
}

impl Cluster {
    /// One process of `threads` workers.
    pub fn single(threads: usize) -> Self {
        Cluster {
            threads,
            processes: 1,
            process: 0,
            addresses: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Checks the flags and reads the hostfile (when `-n` > 1, or when one
    /// is given).
    pub fn load(threads: usize, flags: &ClusterFlags) -> Result<Self, ClusterError> {
        if threads == 0 {
            return Err(ClusterError::NoWorkers);
        }
        if flags.processes == 0 {
            return Err(ClusterError::NoProcesses);
        }
        if flags.process >= flags.processes {
            return Err(ClusterError::Index {
                process: flags.process,
                processes: flags.processes,
            });
        }
        let addresses = match &flags.hostfile {
            Some(path) => read_hostfile(path, flags.processes)?,
            None if flags.processes > 1 => {
                return Err(ClusterError::NoHostfile {
                    processes: flags.processes,
                })
            }
            None => Vec::new(),
        };
        Ok(Cluster {
            threads,
            processes: flags.processes,
            process: flags.process,
            addresses: if flags.processes > 1 {
                addresses
            } else {
                Vec::new()
            },
            connect_timeout: flags.connect_timeout,
        })
    }

    /// Worker threads per process.
    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn processes(&self) -> usize {
        self.processes
    }

    /// This process's index.
    pub fn process(&self) -> usize {
        self.process
    }

    /// Workers in the whole cluster.
    pub fn peers(&self) -> usize {
        self.threads * self.processes
    }

    /// Whether this is process 0, which writes the outputs.
    pub fn is_leader(&self) -> bool {
        self.process == 0
    }

    /// The process that runs global worker `worker`.
    pub fn process_of(&self, worker: usize) -> usize {
        worker / self.threads
    }

    /// The first global worker of process `process`.
    pub fn first_worker_of(&self, process: usize) -> usize {
        process * self.threads
    }

    /// The worker that reads input partition `p`: `p % (n·w)`.
    pub fn partition_worker(&self, p: usize) -> usize {
        p % self.peers()
    }

    /// Whether input partition `p` is read by one of this process's workers.
    pub fn owns_partition(&self, p: usize) -> bool {
        self.process_of(self.partition_worker(p)) == self.process
    }

    /// Process `p`'s address (from the hostfile), if there is one.
    pub fn address(&self, p: usize) -> Option<&str> {
        self.addresses.get(p).map(String::as_str)
    }

    /// timely's configuration: `CommunicationConfig::Process(w)` for one
    /// process, `CommunicationConfig::Cluster` for several.
    pub fn timely_config(&self) -> timely::Config {
        let communication = if self.processes > 1 {
            CommunicationConfig::Cluster {
                threads: self.threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else {
            CommunicationConfig::Process(self.threads)
        };
        timely::Config {
            communication,
            worker: WorkerConfig::default(),
        }
    }

    /// Starts this process's workers, each running `func`. With several
    /// processes it first connects to the others (every process must give
    /// the same `fingerprint`: a digest of the job's arguments) and installs
    /// the failure hook (see the module's header).
    pub fn execute<T, F>(&self, fingerprint: u64, func: F) -> Result<WorkerGuards<T>, ClusterError>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> T + Send + Sync + 'static,
    {
        self.connect(fingerprint, HeldEpochs::default())?
            .execute(func)
    }

    /// Connects to the other processes (nothing to do for one process),
    /// telling them which snapshots this process `held`; the result says
    /// which every process holds and starts the workers.
    pub fn connect(&self, fingerprint: u64, held: HeldEpochs) -> Result<Connected, ClusterError> {
        let config = self.timely_config();
        let CommunicationConfig::Cluster {
            threads,
            process,
            ref addresses,
            ..
        } = config.communication
        else {
            return Ok(Connected {
                config,
                held: vec![held],
                sockets: None,
            });
        };
        let hello = Hello {
            index: process as u64,
            processes: addresses.len() as u64,
            threads: threads as u64,
            fingerprint,
            channel: DATA,
            held,
        };
        let Connections { data, beats, held } = connect(addresses, hello, self.connect_timeout)?;
        watch_failures(addresses.clone());
        for (peer, stream) in beats {
            heartbeat(peer, addresses[peer].clone(), stream);
        }
        Ok(Connected {
            config,
            held,
            sockets: Some(data),
        })
    }
}

/// The snapshots a process of the continuous job holds: epochs `oldest` to
/// `newest` (both 0: none; a backfill holds none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldEpochs {
    pub oldest: u64,
    pub newest: u64,
}

/// A process connected to the others, its workers not started yet.
pub struct Connected {
    config: timely::Config,
    /// By process, the snapshots each holds.
    held: Vec<HeldEpochs>,
    /// timely's connections, one per process (`None` for this one); `None`
    /// for a single process.
    sockets: Option<Vec<Option<TcpStream>>>,
}

impl Connected {
    /// By process, the snapshots each holds (as each said when connecting).
    pub fn held(&self) -> &[HeldEpochs] {
        &self.held
    }

    /// Starts this process's workers, each running `func`.
    pub fn execute<T, F>(self, func: F) -> Result<WorkerGuards<T>, ClusterError>
    where
        T: Send + 'static,
        F: Fn(&mut Worker) -> T + Send + Sync + 'static,
    {
        let Some(data) = self.sockets else {
            return timely::execute(self.config, func).map_err(ClusterError::Start);
        };
        let CommunicationConfig::Cluster {
            threads, process, ..
        } = self.config.communication
        else {
            return Err(ClusterError::Start("not a cluster".into()));
        };
        let hooks = Hooks::default();
        let local =
            ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
        let (builders, comms) =
            initialize_networking_from_sockets(local, data, process, threads, hooks)
                .map_err(|e| ClusterError::Start(e.to_string()))?;
        let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
        timely::execute::execute_from(builders, Box::new(comms), self.config.worker, func)
            .map_err(ClusterError::Start)
    }
}

/// A digest of what every process of a cluster must agree on (the
/// handshake's fingerprint): texts and numbers, in order.
#[derive(Default)]
pub struct Digest(rustc_hash::FxHasher);

impl Digest {
    pub fn text(&mut self, bytes: &[u8]) -> &mut Self {
        use std::hash::Hasher;
        self.0.write_u64(bytes.len() as u64);
        self.0.write(bytes);
        self
    }

    pub fn number(&mut self, n: u64) -> &mut Self {
        use std::hash::Hasher;
        self.0.write_u64(n);
        self
    }

    pub fn finish(&self) -> u64 {
        use std::hash::Hasher;
        self.0.finish()
    }
}

/// Reads the hostfile: one `host:port` a line, blank lines and `#`
/// comments allowed, exactly `processes` addresses, all different.
pub fn read_hostfile(path: &Path, processes: usize) -> Result<Vec<String>, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Hostfile {
        path: path.to_owned(),
        source,
    })?;
    let mut addresses: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let text = raw.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        if let Err(reason) = check_address(text) {
            return Err(ClusterError::Address {
                path: path.to_owned(),
                line,
                text: text.to_owned(),
                reason,
            });
        }
        if addresses.len() == processes {
            return Err(ClusterError::TooMany {
                path: path.to_owned(),
                line,
                processes,
            });
        }
        if let Some(first) = addresses.iter().position(|(a, _)| a == text) {
            return Err(ClusterError::SameAddress {
                path: path.to_owned(),
                line,
                address: text.to_owned(),
                first,
                first_line: addresses[first].1,
            });
        }
        addresses.push((text.to_owned(), line));
    }
    if addresses.len() != processes {
        return Err(ClusterError::TooFew {
            path: path.to_owned(),
            found: addresses.len(),
            processes,
        });
    }
    Ok(addresses.into_iter().map(|(a, _)| a).collect())
}

/// Whether `text` looks like `host:port` (it is resolved only when
/// connecting).
fn check_address(text: &str) -> Result<(), String> {
    if text.chars().any(char::is_whitespace) {
        return Err("one address a line".into());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("no port".into());
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("port {port:?} is not in 1..=65535")),
    }
}

/// What two processes tell each other when they connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hello {
    index: u64,
    processes: u64,
    threads: u64,
    fingerprint: u64,
    /// [`DATA`] (timely's) or [`BEAT`] (the heartbeat).
    channel: u64,
    /// The snapshots this process holds (the continuous job).
    held: HeldEpochs,
}

const MAGIC: &[u8; 8] = b"huntflow";
/// The handshake's version.
const VERSION: u64 = 2;
const HELLO_BYTES: usize = 8 + 8 * 8;
/// The connection timely's workers talk over.
const DATA: u64 = 0;
/// The connection of the heartbeat (see [`heartbeat`]).
const BEAT: u64 = 1;
/// A heartbeat is sent this often...
const BEAT_EVERY: Duration = Duration::from_secs(1);
/// ... and a peer silent this long is lost.
pub const BEAT_TIMEOUT: Duration = Duration::from_secs(10);

impl Hello {
    fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut out = [0u8; HELLO_BYTES];
        out[..8].copy_from_slice(MAGIC);
        let fields = [
            VERSION,
            self.index,
            self.processes,
            self.threads,
            self.fingerprint,
            self.channel,
            self.held.oldest,
            self.held.newest,
        ];
        for (i, f) in fields.iter().enumerate() {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&f.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8; HELLO_BYTES]) -> Option<Hello> {
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[8 + i * 8..16 + i * 8]);
            u64::from_be_bytes(b)
        };
        (&bytes[..8] == MAGIC && field(0) == VERSION).then(|| Hello {
            index: field(1),
            processes: field(2),
            threads: field(3),
            fingerprint: field(4),
            channel: field(5),
            held: HeldEpochs {
                oldest: field(6),
                newest: field(7),
            },
        })
    }

    /// Why `peer`, which says it is process `peer.index`, cannot work with
    /// this process.
    fn disagreement(&self, peer: &Hello, address: &str) -> Option<String> {
        let who = format!("process {} ({address})", peer.index);
        if peer.processes != self.processes {
            return Some(format!(
                "{who} was started with -n {}, this process (-p {}) with -n {}",
                peer.processes, self.index, self.processes
            ));
        }
        if peer.threads != self.threads {
            return Some(format!(
                "{who} was started with -w {}, this process (-p {}) with -w {}: every process runs the same number of workers",
                peer.threads, self.index, self.threads
            ));
        }
        if peer.fingerprint != self.fingerprint {
            return Some(format!(
                "{who} was started with other arguments than this process (-p {}): every process is given the same hunt, change log, inputs and options",
                self.index
            ));
        }
        None
    }
}

/// Sends ours, then reads the peer's hello (within `deadline`).
fn exchange_hello(
    stream: &mut TcpStream,
    mine: &Hello,
    deadline: Instant,
) -> std::io::Result<Option<Hello>> {
    stream.set_write_timeout(Some(remaining(deadline)))?;
    stream.write_all(&mine.encode())?;
    read_hello(stream, deadline)
}

fn read_hello(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Option<Hello>> {
    stream.set_read_timeout(Some(remaining(deadline)))?;
    let mut buf = [0u8; HELLO_BYTES];
    stream.read_exact(&mut buf)?;
    Ok(Hello::decode(&buf))
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10))
}

/// Settings of a connection once the cluster formed: blocking, no
/// timeouts, keepalive probes and a send timeout so that a vanished peer is
/// noticed.
fn settle(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(2));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive.with_retries(4);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(Duration::from_secs(15)))?;
    Ok(())
}

/// timely's connection to a peer, and the snapshots the peer holds.
type Peer = (TcpStream, HeldEpochs);

/// The connections of one process to the others.
struct Connections {
    /// timely's, one per process, `None` at this process's index.
    data: Vec<Option<TcpStream>>,
    /// The heartbeats', by process.
    beats: Vec<(usize, TcpStream)>,
    /// By process, the snapshots each holds.
    held: Vec<HeldEpochs>,
}

/// Connects this process (`mine.index`) to every other, twice (timely's
/// connection and the heartbeat's): it connects to the processes below it
/// and accepts the ones above.
fn connect(
    addresses: &[String],
    mine: Hello,
    timeout: Duration,
) -> Result<Connections, ClusterError> {
    let me = mine.index as usize;
    let deadline = Instant::now() + timeout;
    let listener = if me + 1 < addresses.len() {
        Some(
            TcpListener::bind(&addresses[me]).map_err(|source| ClusterError::Listen {
                address: addresses[me].clone(),
                process: me,
                source,
            })?,
        )
    } else {
        None
    };
    let (lower, higher) = std::thread::scope(|s| {
        let lower = s.spawn(|| connect_lower(addresses, &mine, deadline, timeout));
        let higher = match &listener {
            Some(l) => accept_higher(l, addresses, &mine, deadline, timeout),
            None => Ok((Vec::new(), Vec::new())),
        };
        let lower = lower
            .join()
            .unwrap_or_else(|_| Err(ClusterError::Handshake("connecting failed".into())));
        (lower, higher)
    });
    let (lower, lower_beats) = lower?;
    let (higher, higher_beats) = higher?;
    let mut held: Vec<HeldEpochs> = lower.iter().map(|(_, h)| *h).collect();
    held.push(mine.held);
    held.extend(higher.iter().map(|(_, h)| *h));
    let mut data: Vec<Option<TcpStream>> = lower.into_iter().map(|(s, _)| Some(s)).collect();
    data.push(None);
    data.extend(higher.into_iter().map(|(s, _)| Some(s)));
    for s in data.iter().flatten() {
        settle(s).map_err(|e| ClusterError::Start(format!("setting up a connection: {e}")))?;
    }
    let beats: Vec<(usize, TcpStream)> = lower_beats
        .into_iter()
        .enumerate()
        .chain(
            higher_beats
                .into_iter()
                .enumerate()
                .map(|(i, s)| (me + 1 + i, s)),
        )
        .collect();
    Ok(Connections { data, beats, held })
}

fn resolve(address: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(address.to_socket_addrs()?.collect())
}

/// Connects to processes `0..me`, retrying until `deadline`: timely's
/// connection and the heartbeat's to each.
fn connect_lower(
    addresses: &[String],
    mine: &Hello,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Vec<Peer>, Vec<TcpStream>), ClusterError> {
    let me = mine.index as usize;
    let mut data = Vec::with_capacity(me);
    let mut beats = Vec::with_capacity(me);
    for (peer, address) in addresses.iter().enumerate().take(me) {
        data.push(connect_one(peer, address, mine, deadline, timeout)?);
        let beat = Hello {
            channel: BEAT,
            ..*mine
        };
        beats.push(connect_one(peer, address, &beat, deadline, timeout)?.0);
    }
    Ok((data, beats))
}

/// One connection to process `peer`, handshake done, and what the peer
/// holds.
fn connect_one(
    peer: usize,
    address: &str,
    mine: &Hello,
    deadline: Instant,
    timeout: Duration,
) -> Result<(TcpStream, HeldEpochs), ClusterError> {
    let mut stream = loop {
        let attempt = resolve(address).and_then(|addrs| {
            let mut err = std::io::Error::other("the name resolves to no address");
            for a in addrs {
                match TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
                    Ok(s) => return Ok(s),
                    Err(e) => err = e,
                }
            }
            Err(err)
        });
        match attempt {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(ClusterError::Unreachable {
                    peer,
                    address: address.to_owned(),
                    timeout,
                    last: e.to_string(),
                })
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let theirs = exchange_hello(&mut stream, mine, deadline).map_err(|e| {
        ClusterError::Handshake(format!(
            "process {peer} ({address}) did not complete the handshake: {e}"
        ))
    })?;
    let theirs = theirs.ok_or_else(|| {
        ClusterError::Handshake(format!(
            "{address} (process {peer} in the hostfile) is not a huntflow process of this version"
        ))
    })?;
    if theirs.index != peer as u64 {
        return Err(ClusterError::Handshake(format!(
            "{address} is process {peer} in the hostfile, but the process there was started with -p {}",
            theirs.index
        )));
    }
    if let Some(why) = mine.disagreement(&theirs, address) {
        return Err(ClusterError::Handshake(why));
    }
    Ok((stream, theirs.held))
}

/// Accepts processes `me+1..n` (timely's connection and the heartbeat's
/// of each), until `deadline`.
fn accept_higher(
    listener: &TcpListener,
    addresses: &[String],
    mine: &Hello,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Vec<Peer>, Vec<TcpStream>), ClusterError> {
    let me = mine.index as usize;
    let n = addresses.len();
    let mut data: Vec<Option<TcpStream>> = (me + 1..n).map(|_| None).collect();
    let mut held: Vec<HeldEpochs> = (me + 1..n).map(|_| HeldEpochs::default()).collect();
    let mut beats: Vec<Option<TcpStream>> = (me + 1..n).map(|_| None).collect();
    listener
        .set_nonblocking(true)
        .map_err(|e| ClusterError::Start(e.to_string()))?;
    loop {
        let missing = data
            .iter()
            .zip(&beats)
            .position(|(d, b)| d.is_none() || b.is_none());
        let Some(missing) = missing else { break };
        let (mut stream, from) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let peer = me + 1 + missing;
                    return Err(ClusterError::Missing {
                        peer,
                        address: addresses[peer].clone(),
                        timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(ClusterError::Start(format!("accepting a connection: {e}"))),
        };
        let handshake = stream
            .set_nonblocking(false)
            .and_then(|_| read_hello(&mut stream, deadline));
        let theirs = match handshake {
            Ok(Some(h)) => h,
            // Something else knocked at the port: not a peer.
            Ok(None) | Err(_) => continue,
        };
        let peer = theirs.index as usize;
        let reply = Hello {
            channel: theirs.channel,
            ..*mine
        };
        let _ = stream.set_write_timeout(Some(remaining(deadline)));
        let _ = stream.write_all(&reply.encode());
        if peer <= me || peer >= n {
            return Err(ClusterError::Handshake(format!(
                "a process at {from} connected as -p {} to process {me} ({}), which expects processes {} to {} (-n {n})",
                theirs.index,
                addresses[me],
                me + 1,
                n - 1
            )));
        }
        if let Some(why) = mine.disagreement(&theirs, &addresses[peer]) {
            return Err(ClusterError::Handshake(why));
        }
        let slots = if theirs.channel == BEAT {
            &mut beats
        } else {
            held[peer - me - 1] = theirs.held;
            &mut data
        };
        let slot = &mut slots[peer - me - 1];
        if slot.is_some() {
            return Err(ClusterError::Handshake(format!(
                "two processes were started with -p {peer} (the second from {from})"
            )));
        }
        *slot = Some(stream);
    }
    Ok((
        data.into_iter().flatten().zip(held).collect(),
        beats.into_iter().flatten().collect(),
    ))
}

/// Watches one peer over the heartbeat connection: a byte each way every
/// [`BEAT_EVERY`]; a peer silent for [`BEAT_TIMEOUT`], or whose connection
/// closes, before this process's work is done ends this process (status 2)
/// with a message naming it. This catches what the connections' own
/// errors cannot: a peer stopped or cut off without its connections
/// closing.
fn heartbeat(peer: usize, address: String, stream: TcpStream) {
    let writer = stream.try_clone();
    let _ = std::thread::Builder::new()
        .name(format!("huntflow:beat-out-{peer}"))
        .spawn(move || {
            let Ok(mut w) = writer else { return };
            let _ = w.set_write_timeout(Some(BEAT_TIMEOUT));
            while w.write_all(&[0]).is_ok() {
                std::thread::sleep(BEAT_EVERY);
            }
        });
    let _ = std::thread::Builder::new()
        .name(format!("huntflow:beat-in-{peer}"))
        .spawn(move || {
            let mut r = stream;
            let _ = r.set_nodelay(true);
            let _ = r.set_read_timeout(Some(BEAT_TIMEOUT));
            let mut byte = [0u8; 64];
            let why = loop {
                match r.read(&mut byte) {
                    Ok(0) => break "it closed the connection".to_owned(),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break format!("no sign of life for {} s", BEAT_TIMEOUT.as_secs())
                    }
                    Err(e) => break e.to_string(),
                }
            };
            if DONE.load(Ordering::SeqCst) {
                return;
            }
            eprintln!(
                "huntflow: lost process {peer} ({address}): {why}; the cluster cannot go on without it, stopping"
            );
            std::process::exit(2);
        });
}

/// Set once this process's part of the job is done.
static DONE: AtomicBool = AtomicBool::new(false);
/// The cluster's addresses, for the failure messages.
static ADDRESSES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// This process's work is done: a peer going away from now on ends the
/// process with status 0 (a backfill's processes serving its final state
/// stop when process 0 stops).
pub fn mark_done() {
    DONE.store(true, Ordering::SeqCst);
}

/// The process `N` of a timely communication thread's name
/// (`timely:send-N`, `timely:recv-N`).
fn peer_of_thread(name: &str) -> Option<usize> {
    name.strip_prefix("timely:recv-")
        .or_else(|| name.strip_prefix("timely:send-"))
        .and_then(|n| n.parse().ok())
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("(no message)")
    }
}

/// Installs the failure hook (see the module's header).
fn watch_failures(addresses: Vec<String>) {
    if let Ok(mut a) = ADDRESSES.lock() {
        *a = addresses;
    }
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if !name.starts_with("timely:") {
                default(info);
                return;
            }
            let text = panic_text(info.payload());
            const COMMS: &str = "timely communication error: ";
            if let (Some(peer), Some(at)) = (peer_of_thread(name), text.find(COMMS)) {
                let cause = &text[at + COMMS.len()..];
                let address = ADDRESSES
                    .lock()
                    .ok()
                    .and_then(|a| a.get(peer).cloned())
                    .unwrap_or_else(|| "?".into());
                if DONE.load(Ordering::SeqCst) {
                    eprintln!("huntflow: process {peer} ({address}) has stopped; this process's work is done");
                    std::process::exit(0);
                }
                eprintln!(
                    "huntflow: lost process {peer} ({address}): its connection failed ({cause}); the cluster cannot go on without it, stopping"
                );
                std::process::exit(2);
            }
            default(info);
            eprintln!("huntflow: a worker of this process failed; stopping it (its peers stop too)");
            std::process::exit(2);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostfile(text: &str) -> PathBuf {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "huntflow-hostfile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn flags(n: usize, p: usize, file: Option<PathBuf>) -> ClusterFlags {
        ClusterFlags {
            processes: n,
            process: p,
            hostfile: file,
            ..ClusterFlags::default()
        }
    }

    #[test]
    fn hostfile_with_comments_and_blank_lines() {
        let path = hostfile("# the cluster\n\nhost-a:2101\n  host-b:2101  # second\n[::1]:7\n");
        let c = Cluster::load(2, &flags(3, 1, Some(path))).unwrap();
        assert_eq!(c.address(0), Some("host-a:2101"));
        assert_eq!(c.address(1), Some("host-b:2101"));
        assert_eq!(c.address(2), Some("[::1]:7"));
        assert_eq!(c.peers(), 6);
        assert!(c.owns_partition(2) && c.owns_partition(3) && !c.owns_partition(4));
        match c.timely_config().communication {
            CommunicationConfig::Cluster {
                threads,
                process,
                addresses,
                report,
                zerocopy,
            } => {
                assert_eq!((threads, process, addresses.len()), (2, 1, 3));
                assert!(!report && !zerocopy);
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn bad_configurations_name_the_item() {
        let err = |f: ClusterFlags| Cluster::load(1, &f).unwrap_err().to_string();
        assert!(err(flags(2, 2, None)).contains("-p 2 is not below -n 2"));
        assert!(err(flags(2, 0, None)).contains("needs a hostfile"));
        let path = hostfile("a:1\n");
        let e = err(flags(2, 0, Some(path.clone())));
        assert!(e.contains(&path.display().to_string()) && e.contains("1 address(es) for -n 2"));
        let path = hostfile("a:1\nb:1\nc:1\n");
        let e = err(flags(2, 0, Some(path)));
        assert!(e.contains("line 3: more addresses than -n 2"), "{e}");
        let path = hostfile("a:1\n\nb\n");
        let e = err(flags(2, 0, Some(path)));
        assert!(
            e.contains("line 3: \"b\" is not host:port (no port)"),
            "{e}"
        );
        let path = hostfile("a:1\na:1\n");
        let e = err(flags(2, 0, Some(path)));
        assert!(
            e.contains("line 2: a:1 is process 0's address already (line 1)"),
            "{e}"
        );
        let path = hostfile("a:0\nb:1\n");
        assert!(err(flags(2, 0, Some(path))).contains("port \"0\""));
        let missing = PathBuf::from("/nonexistent/hosts");
        assert!(err(flags(2, 0, Some(missing))).contains("/nonexistent/hosts: cannot read"));
        assert!(Cluster::load(0, &ClusterFlags::default()).is_err());
    }

    #[test]
    fn hello_round_trips_and_finds_disagreements() {
        let mine = Hello {
            index: 0,
            processes: 2,
            threads: 2,
            fingerprint: 7,
            channel: DATA,
            held: HeldEpochs {
                oldest: 3,
                newest: 4,
            },
        };
        let theirs = Hello { index: 1, ..mine };
        assert_eq!(Hello::decode(&theirs.encode()), Some(theirs));
        assert_eq!(mine.disagreement(&theirs, "x:1"), None);
        let other = Hello {
            fingerprint: 8,
            ..theirs
        };
        assert!(mine
            .disagreement(&other, "x:1")
            .unwrap()
            .contains("process 1 (x:1) was started with other arguments"));
        let mut bytes = theirs.encode();
        bytes[0] = b'H';
        assert_eq!(Hello::decode(&bytes), None);
    }
}
