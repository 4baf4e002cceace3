//! The Kafka source: one operator per worker reading the topic partitions
//! `p` with `p % workers == worker` through a consumer with manually
//! assigned partitions. Each Kafka partition is one partition of the
//! contract, with its own lateness and duplicate rules ([`Admission`]).
//!
//! The operator holds one capability, at the least frontier of its
//! partitions, so a time completes once every partition has passed it. It
//! emits accepted events and rejects as data (see [`crate::input`]).
//!
//! Besides reading, the source
//! - keeps the accepted events not yet below the completed frontier, so a
//!   snapshot can carry them (the per-player state in a snapshot covers only
//!   completed times);
//! - stops reading a partition that runs too far ahead of the completed
//!   output; each partition has its own bounded queue, which then fills and
//!   librdkafka stops fetching it, so in-flight data stays bounded;
//! - advances an idle partition's latest time by wall clock (the one
//!   non-deterministic rule), and picks up partitions added to the topic.
//!   Both decisions are logged through [`AdvanceLog`] before they take
//!   effect and replayed at the same input offset after a restart, so a
//!   restarted job makes the same decisions.

mod partition;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope};
use timely::scheduling::SyncActivator;

use super::admission::{ingest, Admission};
use super::reject::{Place, Reject};
use super::stats::{Counts, InputError, Stats};
use super::{Ingested, Inputs};
use crate::kafka::admin::start_offset;
use crate::kafka::position::Verdict;
use crate::kafka::{permanent, KafkaConfig, KafkaError};
use crate::model::event;
use crate::model::hunt::Hunt;
use partition::Part;
pub use partition::{Advance, AdvanceLog, SavedPartition};

/// Messages handled per partition and activation at most.
const BATCH: usize = 4096;
/// How long one activation may read at most.
const BATCH_TIME: Duration = Duration::from_millis(20);
/// How often an idle partition is advanced.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);
/// How often the same transient error is reported.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// State shared by the sources of one process.
pub struct Shared {
    /// Per worker of this process, the least frontier of its partitions
    /// (`u64::MAX`: none).
    pub lows: Vec<AtomicU64>,
    /// The global index of this process's first worker (0 but in a cluster).
    pub first: usize,
    /// In a cluster: per worker of every process, its least frontier as it
    /// last reported it (kept on process 0, for the control operator).
    pub global: Option<Vec<AtomicU64>>,
    /// In a cluster: the frontier of the control records as this process
    /// received them; a worker without partitions follows it, and retained
    /// events stay until it passes them (a snapshot's marker may still be
    /// on its way to the sources).
    pub relayed: Option<AtomicU64>,
    /// Serializes snapshot requests relayed by several workers.
    requests: Mutex<()>,
    /// Partitions of the topic, as last seen in its metadata.
    pub partitions: AtomicU32,
    /// The largest accepted `ts` of any partition (idle advances start there).
    pub max_ts: AtomicU64,
    /// The snapshot to capture: its frontier, then its epoch (published in
    /// that order; 0: none yet).
    pub snapshot_at: AtomicU64,
    pub snapshot_epoch: AtomicU64,
    /// The job is stopping: sources read nothing more; each counts itself
    /// here once it has stopped.
    pub stopping: AtomicBool,
    pub sources_stopped: AtomicUsize,
    /// Wakes the job's control operator when a source's frontier moves.
    pub control: Mutex<Option<SyncActivator>>,
}

impl Shared {
    pub fn new(workers: usize, partitions: u32) -> Self {
        Shared {
            lows: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            first: 0,
            global: None,
            relayed: None,
            requests: Mutex::new(()),
            partitions: AtomicU32::new(partitions),
            max_ts: AtomicU64::new(0),
            snapshot_at: AtomicU64::new(0),
            snapshot_epoch: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            sources_stopped: AtomicUsize::new(0),
            control: Mutex::new(None),
        }
    }

    /// State shared by the sources of process `process` of a cluster of
    /// `processes` processes of `workers` workers each.
    pub fn in_cluster(workers: usize, partitions: u32, process: usize, processes: usize) -> Self {
        let peers = workers * processes;
        Shared {
            first: process * workers,
            global: (process == 0).then(|| (0..peers).map(|_| AtomicU64::new(0)).collect()),
            relayed: Some(AtomicU64::new(0)),
            ..Shared::new(workers, partitions)
        }
    }

    /// The least frontier of the sources (`None`: none known yet): of this
    /// process's, or in a cluster (on process 0) of every process's.
    pub fn input_frontier(&self) -> Option<u64> {
        self.global
            .as_ref()
            .unwrap_or(&self.lows)
            .iter()
            .map(|l| l.load(Ordering::Acquire))
            .filter(|&l| l != u64::MAX)
            .min()
    }

    /// The least frontier of global worker `worker` (this process's).
    pub fn low(&self, worker: usize) -> u64 {
        self.lows
            .get(worker.wrapping_sub(self.first))
            .map_or(u64::MAX, |l| l.load(Ordering::Acquire))
    }

    /// Publishes snapshot `epoch` at frontier `at`, relayed from the
    /// control records; an older request than the one published is
    /// ignored.
    pub fn relay_capture(&self, epoch: u64, at: u64) {
        let Ok(_guard) = self.requests.lock() else {
            return;
        };
        if epoch > self.snapshot_epoch.load(Ordering::Acquire) {
            self.request_capture(epoch, at);
        }
    }

    /// Publishes snapshot `epoch` at frontier `at` to the sources.
    pub fn request_capture(&self, epoch: u64, at: u64) {
        self.snapshot_at.store(at, Ordering::Release);
        self.snapshot_epoch.store(epoch, Ordering::Release);
    }

    /// The snapshot to capture, `(epoch, at)`, if any.
    fn capture_requested(&self) -> Option<(u64, u64)> {
        let epoch = self.snapshot_epoch.load(Ordering::Acquire);
        (epoch > 0).then(|| (epoch, self.snapshot_at.load(Ordering::Acquire)))
    }

    pub fn wake_control(&self) {
        if let Ok(guard) = self.control.lock() {
            if let Some(a) = guard.as_ref() {
                let _ = a.activate();
            }
        }
    }
}

/// A worker's partitions as they stood for a snapshot at frontier `at`:
/// admission state, next offset and the accepted events at or above `at`,
/// and how many rejects the source had emitted by then.
pub struct SourceCapture {
    pub epoch: u64,
    pub partitions: Vec<SavedPartition>,
    pub rejects: u64,
}

/// What the Kafka source needs to run.
pub struct SourceConfig {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub group: String,
    /// Advance a partition idle for this long; `None`: never.
    pub idle: Option<Duration>,
    /// A partition this far ahead (event time) of the completed output pauses.
    pub max_ahead_ms: u64,
    pub hunt: Arc<Hunt>,
    pub stats: Arc<Stats>,
    pub log: Arc<dyn AdvanceLog>,
    pub shared: Arc<Shared>,
    /// Completed output frontier (for retention and flow control).
    pub probe: ProbeHandle<u64>,
}

/// Where to start: saved partitions and logged advances after a snapshot.
#[derive(Default)]
pub struct Start {
    pub partitions: Vec<SavedPartition>,
    pub advances: Vec<Advance>,
}

/// One worker's source: its consumer, its partitions and their queues.
struct KafkaSource {
    config: SourceConfig,
    index: usize,
    peers: usize,
    consumer: Arc<BaseConsumer>,
    queues: BTreeMap<u32, PartitionQueue<DefaultConsumerContext>>,
    parts: BTreeMap<u32, Part>,
    /// Rejects emitted so far (a snapshot waits until all are written).
    rejects: u64,
    warned: Option<Instant>,
    /// The last snapshot epoch captured, and the captures not yet taken.
    captured_epoch: u64,
    captures: Vec<SourceCapture>,
    /// The job is stopping and this source has stopped reading.
    stopped: bool,
    /// Wakes the source when a partition's queue receives messages.
    wake: Option<SyncActivator>,
}

/// A worker's source state, reachable from outside the dataflow.
#[derive(Clone)]
pub struct SourceHandle(Rc<RefCell<KafkaSource>>);

impl SourceHandle {
    /// The saved state of this worker's partitions; events below `frontier`
    /// are left out (the per-player state covers them).
    pub fn save(&self, frontier: u64) -> Vec<SavedPartition> {
        let source = self.0.borrow();
        source
            .parts
            .iter()
            .map(|(&p, part)| part.save(p, frontier))
            .collect()
    }

    /// `(partition, next offset)` of the partitions read so far.
    pub fn offsets(&self) -> Vec<(u32, i64)> {
        let source = self.0.borrow();
        source
            .parts
            .iter()
            .filter_map(|(&p, part)| part.next.map(|n| (p, n)))
            .collect()
    }

    /// Per partition: its frontier and latest time.
    pub fn frontiers(&self) -> Vec<(u32, u64, Option<u64>)> {
        let source = self.0.borrow();
        source
            .parts
            .iter()
            .map(|(&p, part)| (p, part.admission.frontier(), part.admission.latest()))
            .collect()
    }

    /// The capture of snapshot `epoch`, once it is taken.
    pub fn take_capture(&self, epoch: u64) -> Option<SourceCapture> {
        let mut source = self.0.borrow_mut();
        let i = source.captures.iter().position(|c| c.epoch == epoch)?;
        Some(source.captures.swap_remove(i))
    }
}

impl KafkaSource {
    fn owned(&self, partition: u32) -> bool {
        partition as usize % self.peers == self.index
    }

    fn warn(&mut self, what: std::fmt::Arguments<'_>) {
        if self.warned.is_none_or(|w| w.elapsed() > WARN_EVERY) {
            eprintln!("huntflow: {what} (retrying)");
            self.warned = Some(Instant::now());
        }
    }

    /// Records a failure of `partition` (of the topic's consumer when
    /// `None`): `transient` when a broker refused a request, not when the
    /// advance log could not be written.
    fn failed(&self, partition: Option<u32>, message: String, transient: bool) {
        self.config.stats.error(InputError {
            partition: self.place(partition),
            message,
            transient,
        });
    }

    /// `TOPIC/PARTITION`, or the topic alone without a partition.
    fn place(&self, partition: Option<u32>) -> String {
        let topic = &self.config.topic;
        partition.map_or_else(|| topic.clone(), |p| format!("{topic}/{p}"))
    }

    /// A read error, from partition `p`'s queue or (`None`) the consumer's
    /// main queue: the end of a partition; one that cannot pass by itself,
    /// which stops the job; or one librdkafka gets past, said now and then.
    /// Returns whether the queue may be read on.
    fn read_error(&mut self, p: Option<u32>, e: &RdError) -> bool {
        match e {
            RdError::PartitionEOF(q) => {
                self.at_end(*q as u32);
                return true;
            }
            e if permanent(e) => self.failed(p, format!("cannot be read: {e}"), false),
            e => {
                let place = self.place(p);
                self.warn(format_args!("reading {place}: {e}"));
            }
        }
        false
    }

    /// Restores the saved partitions this worker owns, creates the rest,
    /// and queues the logged advances.
    fn restore(&mut self, start: Start) {
        let lateness = self.config.hunt.max_lateness_ms;
        for saved in start.partitions {
            if self.owned(saved.partition) {
                self.parts.insert(saved.partition, Part::restored(saved));
            }
        }
        let known = self.config.shared.partitions.load(Ordering::Relaxed);
        let mine: Vec<u32> = (0..known).filter(|&p| self.owned(p)).collect();
        for p in mine {
            self.parts
                .entry(p)
                .or_insert_with(|| Part::new(Admission::new(lateness), None));
        }
        let mut advances = start.advances;
        advances.sort_by_key(|a| a.next);
        for a in advances {
            if !self.owned(a.partition) {
                continue;
            }
            // A partition picked up after the snapshot: its start is logged.
            let part = self
                .parts
                .entry(a.partition)
                .or_insert_with(|| Part::new(Admission::new(lateness), None));
            part.advances.push_back(a);
        }
        for part in self.parts.values_mut() {
            part.replay(part.next.unwrap_or(-1));
            if let Some(m) = part.admission.latest() {
                self.config.shared.max_ts.fetch_max(m, Ordering::Relaxed);
            }
        }
    }

    /// Assigns the partitions to the consumer and splits their queues.
    fn assign(&mut self) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (&p, part) in &self.parts {
            let from = part.positioning.as_ref().map(|x| x.from).or(part.next);
            let offset = start_offset(&self.consumer, &self.config.topic, p, from);
            tpl.add_partition_offset(&self.config.topic, p as i32, offset)
                .map_err(KafkaError::client("assigning partitions"))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(KafkaError::client("assigning partitions"))?;
        split_delay();
        for &p in self.parts.keys() {
            let queue = partition_queue(&self.consumer, &self.config.topic, p)?;
            self.queues.insert(p, queue);
        }
        Ok(())
    }

    /// Partitions added to the topic start at this worker's frontier, logged
    /// before they are read.
    fn discover(&mut self, floor: u64) {
        let known = self.config.shared.partitions.load(Ordering::Relaxed);
        let lateness = self.config.hunt.max_lateness_ms;
        let new: Vec<u32> = (0..known)
            .filter(|&p| self.owned(p) && !self.parts.contains_key(&p))
            .collect();
        for p in new {
            let advance = Advance {
                partition: p,
                next: -1,
                m: floor.saturating_add(lateness),
            };
            match self.add_partition(&advance) {
                Ok(mut queue) => {
                    let mut part = Part::new(Admission::new(lateness), None);
                    part.admission.advance(advance.m);
                    self.parts.insert(p, part);
                    self.watch(&mut queue);
                    self.queues.insert(p, queue);
                }
                Err((e, transient)) => self.failed(Some(p), e, transient),
            }
        }
    }

    /// Logs the start of a new partition and assigns it; an error says
    /// whether it is transient.
    fn add_partition(
        &self,
        advance: &Advance,
    ) -> Result<PartitionQueue<DefaultConsumerContext>, (String, bool)> {
        let (topic, p) = (&self.config.topic, advance.partition);
        let broker = |e: &dyn std::fmt::Display| (e.to_string(), true);
        self.config
            .log
            .record(advance)
            .map_err(|e| (e.to_string(), false))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .map_err(|e| broker(&e))?;
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| broker(&e))?;
        partition_queue(&self.consumer, topic, p).map_err(|e| broker(&e))
    }

    /// The frontier of a snapshot requested and not yet captured here.
    fn capture_pending(&self) -> Option<(u64, u64)> {
        self.config
            .shared
            .capture_requested()
            .filter(|&(epoch, _)| epoch > self.captured_epoch)
    }

    /// Captures the partitions for a snapshot at `at`. Every partition's
    /// frontier is at or above `at` (it is the input frontier, the least of
    /// them, or less), so every event below `at` was read before now, and
    /// every later one has its `ts` at or above `at`.
    fn capture(&mut self, epoch: u64, at: u64) {
        let partitions = self
            .parts
            .iter()
            .map(|(&p, part)| part.save(p, at))
            .collect();
        self.captures.push(SourceCapture {
            epoch,
            partitions,
            rejects: self.rejects,
        });
        self.captured_epoch = epoch;
    }

    /// Drops retained events below the completed frontier `done`, and
    /// fetches again the partitions whose positioning is stuck.
    fn retain(&mut self, done: u64) {
        let mut reposition = Vec::new();
        for (&p, part) in self.parts.iter_mut() {
            part.retain_from(done);
            if let Some(Verdict::Refetch(from)) = part.positioning.as_mut().map(|x| x.silent()) {
                reposition.push((p, from));
            }
        }
        self.seek(reposition);
    }

    /// Serves the consumer's main queue: errors not tied to a partition
    /// (librdkafka reconnects by itself), and the messages of a partition
    /// fetched before its queue was split off (the fetcher may start between
    /// assigning a partition and splitting its queue). Those came before
    /// anything in the partition's own queue, so they are handled first.
    fn poll_main(&mut self, give: &mut impl FnMut(Ingested), counts: &mut Counts) {
        let consumer = self.consumer.clone();
        while let Some(r) = consumer.poll(Duration::ZERO) {
            match r {
                Ok(m) => {
                    let p = m.partition() as u32;
                    if self.parts.contains_key(&p) {
                        self.message(p, &m, give, counts);
                    }
                }
                Err(e) => {
                    self.read_error(None, &e);
                }
            }
        }
    }

    /// Has `queue` wake the source as soon as messages arrive in it (the
    /// source also looks every few milliseconds).
    fn watch(&self, queue: &mut PartitionQueue<DefaultConsumerContext>) {
        if let Some(wake) = self.wake.clone() {
            queue.set_nonempty_callback(move || {
                let _ = wake.activate();
            });
        }
    }

    /// Wakes the source through `wake` from now on.
    fn wake_with(&mut self, wake: SyncActivator) {
        self.wake = Some(wake);
        let mut queues = std::mem::take(&mut self.queues);
        for queue in queues.values_mut() {
            self.watch(queue);
        }
        self.queues = queues;
    }

    /// Reads every partition that is not too far ahead of `done`, until
    /// [`BATCH_TIME`] has passed; counts what was read.
    fn read(&mut self, done: u64, give: &mut impl FnMut(Ingested), counts: &mut Counts) {
        let started = Instant::now();
        // Messages borrow their queue while `self` changes.
        let queues = std::mem::take(&mut self.queues);
        for (&p, queue) in &queues {
            if self.ahead(p, done) {
                continue;
            }
            for _ in 0..BATCH {
                let polled = queue.poll(Duration::ZERO);
                let message = match polled {
                    None => break,
                    Some(Err(e)) if self.read_error(Some(p), &e) => continue,
                    Some(Err(_)) => break,
                    Some(Ok(m)) => m,
                };
                if !self.message(p, &message, give, counts) || self.ahead(p, done) {
                    break;
                }
            }
            if started.elapsed() > BATCH_TIME {
                break;
            }
        }
        self.queues = queues;
    }

    /// Whether partition `p` is too far ahead of the completed output: it is
    /// not read, and once its queue is full librdkafka stops fetching it.
    fn ahead(&self, p: u32, done: u64) -> bool {
        self.parts.get(&p).is_some_and(|part| {
            part.admission.frontier() > done.saturating_add(self.config.max_ahead_ms)
        })
    }

    fn at_end(&mut self, p: u32) {
        if let Some(part) = self.parts.get_mut(&p) {
            part.at_end = true;
            part.positioning = None;
            part.replay(part.next.unwrap_or(-1));
        }
    }

    /// Handles one message of partition `p`; false when reading this
    /// partition must stop for now (a fetch from elsewhere was asked).
    fn message(
        &mut self,
        p: u32,
        message: &BorrowedMessage<'_>,
        give: &mut impl FnMut(Ingested),
        counts: &mut Counts,
    ) -> bool {
        let offset = message.offset();
        let Some(part) = self.parts.get_mut(&p) else {
            return false;
        };
        if let Some(pos) = part.positioning.as_mut() {
            if let Verdict::Refetch(from) = pos.record(offset) {
                self.seek(vec![(p, from)]);
                return false;
            }
            part.positioning = None;
        }
        if part.next.is_some_and(|n| offset < n) {
            return true;
        }
        part.replay(offset);
        part.at_end = false;
        part.idle_since = None;
        let value = message.payload().unwrap_or(&[]);
        counts.bytes += value.len() as u64;
        for (i, line) in value.split(|&b| b == b'\n').enumerate() {
            if event::is_blank(line) {
                continue;
            }
            counts.read += 1;
            let frontier = part.admission.frontier();
            match ingest(line, &self.config.hunt, &mut part.admission) {
                Ok(event) => {
                    counts.accepted += 1;
                    if let Some(event) = event {
                        self.config
                            .shared
                            .max_ts
                            .fetch_max(event.ts, Ordering::Relaxed);
                        part.retained.push_back(event.clone());
                        give(Ok(event));
                    }
                }
                Err(invalid) => {
                    counts.reject(&invalid);
                    self.rejects += 1;
                    let place = Place::Message {
                        offset,
                        line: i as u32 + 1,
                    };
                    give(Err(Reject::new(invalid, p, place, frontier, line)));
                }
            }
        }
        part.next = Some(offset + 1);
        part.replay(offset + 1);
        true
    }

    /// Idle partitions advance by wall clock, each decision logged first.
    fn advance_idle(&mut self) {
        let Some(idle) = self.config.idle else { return };
        let now = Instant::now();
        let base = self.config.shared.max_ts.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for (&p, part) in self.parts.iter_mut() {
            let Some(m) = part.idle_advance(now, idle, base) else {
                continue;
            };
            let advance = Advance {
                partition: p,
                next: part.next.unwrap_or(-1),
                m,
            };
            if let Err(e) = self.config.log.record(&advance) {
                failures.push((p, e.to_string()));
                continue;
            }
            part.admission.advance(m);
            part.last_advance = now;
        }
        for (p, e) in failures {
            self.failed(Some(p), e, false);
        }
    }

    /// Publishes where each partition stands.
    fn publish(&self) {
        for (&p, part) in &self.parts {
            self.config
                .stats
                .progress(p, Some(part.admission.frontier()), part.admission.latest());
        }
    }

    /// Holds the capability at the least frontier of this worker's
    /// partitions and publishes it; a worker without partitions follows the
    /// others.
    fn hold(&self, cap: &mut Capability<u64>) {
        let shared = &self.config.shared;
        let own = self
            .parts
            .values()
            .map(|p| p.admission.frontier())
            .min()
            .unwrap_or(u64::MAX);
        let local = self.index - shared.first;
        if let Some(low) = shared.lows.get(local) {
            low.store(own, Ordering::Release);
        }
        let target = if let (u64::MAX, Some(relayed)) = (own, &shared.relayed) {
            relayed.load(Ordering::Acquire)
        } else if own == u64::MAX {
            shared
                .lows
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != local)
                .map(|(_, l)| l.load(Ordering::Acquire))
                .min()
                .unwrap_or(u64::MAX)
        } else {
            own
        };
        if target != u64::MAX && target > *cap.time() {
            cap.downgrade(&target);
            shared.wake_control();
        }
    }

    /// Tells the consumer to fetch the listed partitions from the given
    /// offsets.
    fn seek(&self, todo: Vec<(u32, i64)>) {
        let topic = &self.config.topic;
        for (p, from) in todo {
            let at = Offset::Offset(from);
            if let Err(e) = self
                .consumer
                .seek(topic, p as i32, at, Duration::from_secs(2))
            {
                eprintln!("huntflow: seeking {topic}/{p} to {from}: {e}");
            }
        }
    }

    /// The events a snapshot carried, to be sent again after a restart.
    fn retained(&self) -> impl Iterator<Item = &event::Event> {
        self.parts.values().flat_map(|p| p.retained.iter())
    }
}

/// The test suite widens the window between assigning partitions and
/// splitting their queues (`HUNTFLOW_TEST_SPLIT_DELAY_MS`), in which the
/// fetcher may already deliver to the main queue ([`KafkaSource::poll_main`]).
fn split_delay() {
    if let Some(ms) = std::env::var("HUNTFLOW_TEST_SPLIT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// The partition's own queue: its messages are read only from there, so a
/// partition that is not read fills its queue and stops being fetched.
fn partition_queue(
    consumer: &Arc<BaseConsumer>,
    topic: &str,
    p: u32,
) -> Result<PartitionQueue<DefaultConsumerContext>, KafkaError> {
    consumer
        .split_partition_queue(topic, p as i32)
        .ok_or_else(|| KafkaError::Topic {
            topic: topic.to_string(),
            message: format!("partition {p}: no queue of its own"),
        })
}

/// Builds this worker's Kafka source. Returns its events and rejects and a
/// handle on its state.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    start: Start,
) -> Result<(Inputs<'scope>, SourceHandle), KafkaError> {
    let consumer: BaseConsumer = config
        .kafka
        .consumer(&config.group)
        .set("queued.max.messages.kbytes", "4096")
        .create()
        .map_err(KafkaError::client("creating the consumer"))?;
    let mut me = KafkaSource {
        config,
        index: scope.index(),
        peers: scope.peers(),
        consumer: Arc::new(consumer),
        queues: BTreeMap::new(),
        parts: BTreeMap::new(),
        rejects: 0,
        warned: None,
        captured_epoch: 0,
        captures: Vec::new(),
        stopped: false,
        wake: None,
    };
    me.restore(start);
    me.assign()?;
    let state = Rc::new(RefCell::new(me));
    let handle = SourceHandle(state.clone());

    let stream = source(scope, "KafkaSource", move |cap, info| {
        let wake = scope.worker().sync_activator_for(info.address.to_vec());
        state.borrow_mut().wake_with(wake);
        let activator = scope.activator_for(info.address);
        let mut cap = cap;
        let mut resent = false;
        move |output| {
            let mut me = state.borrow_mut();
            // After a restart, the events the snapshot carries go out first.
            if !resent {
                resent = true;
                let mut session = output.session(&cap);
                me.retained().for_each(|e| session.give(Ok(e.clone())));
            }
            let pending = me.capture_pending();
            // A stopping job reads nothing more.
            if me.config.shared.stopping.load(Ordering::Acquire) {
                if !me.stopped {
                    me.stopped = true;
                    me.config
                        .shared
                        .sources_stopped
                        .fetch_add(1, Ordering::AcqRel);
                }
                if let Some((epoch, at)) = pending {
                    me.capture(epoch, at);
                }
                me.hold(&mut cap);
                activator.activate_after(Duration::from_millis(5));
                return;
            }
            let done = (me.config.probe).with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));
            me.discover(*cap.time());
            // Until captured, a snapshot's events at or above its frontier
            // are kept; in a cluster, also until the control records
            // (which may carry a marker not yet relayed) have passed.
            let relayed = me.config.shared.relayed.as_ref();
            let done_relayed = relayed.map_or(done, |r| done.min(r.load(Ordering::Acquire)));
            me.retain(pending.map_or(done_relayed, |(_, at)| done_relayed.min(at)));
            let counts = {
                let mut session = output.session(&cap);
                let mut give = |x| session.give(x);
                let mut counts = Counts::default();
                me.poll_main(&mut give, &mut counts);
                me.read(done, &mut give, &mut counts);
                counts
            };
            me.config.stats.count(&counts);
            me.advance_idle();
            if let Some((epoch, at)) = pending {
                me.capture(epoch, at);
            }
            me.publish();
            me.hold(&mut cap);
            if counts.read > 0 {
                activator.activate();
            } else {
                activator.activate_after(Duration::from_millis(2));
            }
        }
    });
    Ok((super::split(stream), handle))
}
