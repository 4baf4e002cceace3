//! The Kafka source: one operator per worker reading the topic partitions
//! `p` with `p % workers == worker` through a consumer with manually
//! assigned partitions. Each Kafka partition is one SPEC partition, with
//! its own lateness and duplicate rules ([`Admission`]).
//!
//! The operator holds one capability, at the least frontier of its
//! partitions, so a time completes once every partition has passed it.
//! Rejects are handed to a [`RejectWriter`] at once, with their offset.
//!
//! Besides reading, the operator
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

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use super::position::{Positioning, Verdict};
use super::KafkaConfig;
use crate::event::{self, Event, Invalid};
use crate::hunt::Hunt;
use crate::source::{ingest, Admission, Stats};

/// Messages handled per activation at most.
const BATCH: usize = 4096;
/// How long one activation may read at most.
const BATCH_TIME: Duration = Duration::from_millis(20);
/// How often an idle partition is advanced.
const ADVANCE_EVERY: Duration = Duration::from_millis(100);

/// A rejected record of the topic.
pub struct KafkaReject<'a> {
    pub invalid: Invalid,
    pub partition: u32,
    pub offset: i64,
    /// 1-based line within the message (a value may hold several records).
    pub line: u32,
    pub raw: &'a [u8],
}

/// Where rejects go, shared by the workers' sources.
pub trait RejectWriter: Send + Sync {
    /// Hands over one reject; an error stops the job.
    fn reject(&self, topic: &str, r: KafkaReject<'_>) -> Result<(), String>;
}

/// A decision that is not a function of the input: a partition's latest
/// time raised to `m` when its next offset to read was `next` (-1: before
/// its first record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advance {
    pub partition: u32,
    pub next: i64,
    pub m: u64,
}

/// Durable log of [`Advance`] decisions, written before they take effect.
pub trait AdvanceLog: Send + Sync {
    fn record(&self, advance: &Advance) -> std::io::Result<()>;
}

/// The saved state of one input partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPartition {
    pub partition: u32,
    pub admission: Admission,
    /// The next offset to read; `None`: from the partition's start.
    pub next: Option<i64>,
    /// Accepted events at or above the snapshot's frontier, in read order.
    pub events: Vec<Event>,
}

/// State shared by the sources of one process.
pub struct Shared {
    /// Per worker, the least frontier of its partitions (`u64::MAX`: none).
    pub lows: Vec<AtomicU64>,
    /// Partitions of the topic, as last seen in its metadata.
    pub partitions: AtomicU32,
    /// The largest accepted `ts` of any partition (idle advances start there).
    pub max_ts: AtomicU64,
    /// Snapshot in progress: sources stop reading while it is non-zero.
    pub pause: AtomicU64,
}

impl Shared {
    pub fn new(workers: usize, partitions: u32) -> Self {
        Shared {
            lows: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            partitions: AtomicU32::new(partitions),
            max_ts: AtomicU64::new(0),
            pause: AtomicU64::new(0),
        }
    }
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
    pub rejects: Arc<dyn RejectWriter>,
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
    /// The snapshot's frontier (0 without a snapshot).
    pub frontier: u64,
}

struct Part {
    admission: Admission,
    next: Option<i64>,
    /// Accepted events not yet known to be below the completed frontier.
    retained: VecDeque<Event>,
    /// Logged advances not yet replayed, by `next`.
    advances: VecDeque<Advance>,
    at_end: bool,
    /// Set after the consumer was positioned, until reading is in place.
    positioning: Option<Positioning>,
    idle_since: Option<Instant>,
    last_advance: Instant,
}

impl Part {
    fn new(admission: Admission, next: Option<i64>) -> Self {
        Part {
            admission,
            next,
            retained: VecDeque::new(),
            advances: VecDeque::new(),
            at_end: false,
            positioning: next.filter(|&n| n > 0).map(Positioning::new),
            idle_since: None,
            last_advance: Instant::now(),
        }
    }

    /// Replays the logged advances due before reading offset `offset`.
    fn replay(&mut self, offset: i64) {
        while let Some(a) = self.advances.pop_front_if(|a| a.next <= offset) {
            self.admission.advance(a.m);
        }
    }
}

struct State {
    parts: BTreeMap<u32, Part>,
}

/// A worker's source state, reachable from outside the dataflow.
#[derive(Clone)]
pub struct SourceHandle(Rc<RefCell<State>>);

impl SourceHandle {
    /// The saved state of this worker's partitions; events below `frontier`
    /// are left out (the per-player state covers them).
    pub fn save(&self, frontier: u64) -> Vec<SavedPartition> {
        let state = self.0.borrow();
        state
            .parts
            .iter()
            .map(|(&partition, part)| SavedPartition {
                partition,
                admission: part.admission.clone(),
                next: part.next,
                events: part
                    .retained
                    .iter()
                    .filter(|e| e.ts >= frontier)
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// `(partition, next offset)` of the partitions read so far.
    pub fn offsets(&self) -> Vec<(u32, i64)> {
        let state = self.0.borrow();
        state
            .parts
            .iter()
            .filter_map(|(&p, part)| part.next.map(|n| (p, n)))
            .collect()
    }

    /// Per partition: its frontier and latest time.
    pub fn frontiers(&self) -> Vec<(u32, u64, Option<u64>)> {
        let state = self.0.borrow();
        state
            .parts
            .iter()
            .map(|(&p, part)| (p, part.admission.frontier(), part.admission.latest()))
            .collect()
    }
}

fn owned(partition: u32, index: usize, peers: usize) -> bool {
    partition as usize % peers == index
}

fn assignment(topic: &str, parts: &BTreeMap<u32, Part>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (&p, part) in parts {
        let from = part.positioning.as_ref().map(|x| x.from).or(part.next);
        let offset = from.map_or(Offset::Beginning, Offset::Offset);
        tpl.add_partition_offset(topic, p as i32, offset)
            .expect("a valid offset");
    }
    tpl
}

/// Builds this worker's Kafka source. Returns the accepted events and a
/// handle on the source state.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    start: Start,
) -> Result<(Stream<'scope, u64, Vec<Event>>, SourceHandle), super::KafkaError> {
    let index = scope.index();
    let peers = scope.peers();
    let consumer: BaseConsumer = config
        .kafka
        .consumer(&config.group)
        .set("queued.max.messages.kbytes", "4096")
        .create()
        .map_err(super::KafkaError::client("creating the consumer"))?;
    let lateness = config.hunt.max_lateness_ms;

    let mut parts = BTreeMap::new();
    for saved in start.partitions {
        if owned(saved.partition, index, peers) {
            let mut part = Part::new(saved.admission, saved.next);
            part.retained = saved.events.into();
            parts.insert(saved.partition, part);
        }
    }
    let known = config.shared.partitions.load(Ordering::Relaxed);
    for p in (0..known).filter(|&p| owned(p, index, peers)) {
        parts
            .entry(p)
            .or_insert_with(|| Part::new(Admission::new(lateness), None));
    }
    let mut advances = start.advances;
    advances.sort_by_key(|a| a.next);
    for a in advances {
        if let Some(part) = parts.get_mut(&a.partition) {
            part.advances.push_back(a);
        } else if owned(a.partition, index, peers) {
            // A partition picked up after the snapshot: its start is logged.
            let partition = a.partition;
            let mut part = Part::new(Admission::new(lateness), None);
            part.advances.push_back(a);
            parts.insert(partition, part);
        }
    }
    for part in parts.values_mut() {
        part.replay(part.next.unwrap_or(-1));
        if let Some(m) = part.admission.latest() {
            config.shared.max_ts.fetch_max(m, Ordering::Relaxed);
        }
    }
    let consumer = Arc::new(consumer);
    consumer
        .assign(&assignment(&config.topic, &parts))
        .map_err(super::KafkaError::client("assigning partitions"))?;
    let mut queues = BTreeMap::new();
    for &p in parts.keys() {
        queues.insert(p, partition_queue(&consumer, &config.topic, p)?);
    }

    let state = Rc::new(RefCell::new(State { parts }));
    let handle = SourceHandle(state.clone());
    let restart_frontier = start.frontier;

    let stream = source(scope, "KafkaSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut root: Option<Capability<u64>> = Some(cap);
        let mut resent = false;
        let mut warned: Option<Instant> = None;
        move |output| {
            let Some(root_cap) = root.as_mut() else {
                return;
            };
            let mut state = state.borrow_mut();
            // After a restart, the events the snapshot carries go out first.
            if !resent {
                resent = true;
                let mut session = output.session(&*root_cap);
                for part in state.parts.values() {
                    for e in &part.retained {
                        debug_assert!(e.ts >= restart_frontier);
                        session.give(e.clone());
                    }
                }
            }
            // While a snapshot is taken nothing is read.
            if config.shared.pause.load(Ordering::Acquire) != 0 {
                hold(&config.shared, index, &state, root_cap);
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            let done = config
                .probe
                .with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));

            // Partitions added to the topic start at this worker's frontier.
            let known = config.shared.partitions.load(Ordering::Relaxed);
            for p in (0..known).filter(|&p| owned(p, index, peers)) {
                if state.parts.contains_key(&p) {
                    continue;
                }
                let floor = *root_cap.time();
                let advance = Advance {
                    partition: p,
                    next: -1,
                    m: floor.saturating_add(lateness),
                };
                let added = config
                    .log
                    .record(&advance)
                    .map_err(|e| e.to_string())
                    .and_then(|_| {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition_offset(&config.topic, p as i32, Offset::Beginning)
                            .map_err(|e| e.to_string())?;
                        consumer
                            .incremental_assign(&tpl)
                            .map_err(|e| e.to_string())?;
                        partition_queue(&consumer, &config.topic, p).map_err(|e| e.to_string())
                    });
                match added {
                    Ok(queue) => {
                        let mut part = Part::new(Admission::new(lateness), None);
                        part.admission.advance(advance.m);
                        state.parts.insert(p, part);
                        queues.insert(p, queue);
                    }
                    Err(e) => stats_error(&config.stats, &config.topic, p, &e),
                }
            }

            // Retention, and positioning that is stuck.
            let mut reposition = Vec::new();
            for (&p, part) in state.parts.iter_mut() {
                while part.retained.front().is_some_and(|e| e.ts < done) {
                    part.retained.pop_front();
                }
                if let Some(Verdict::Refetch(from)) = part.positioning.as_mut().map(|x| x.silent())
                {
                    reposition.push((p, from));
                }
            }
            seek(&consumer, &config.topic, &mut reposition);

            // Errors not tied to a partition come on the main queue.
            while let Some(r) = consumer.poll(Duration::ZERO) {
                if let Err(e) = r {
                    // Transient broker trouble: librdkafka reconnects.
                    if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(5)) {
                        eprintln!("huntflow: reading {}: {e} (retrying)", config.topic);
                        warned = Some(Instant::now());
                    }
                }
            }

            let mut session = output.session(&*root_cap);
            let started = Instant::now();
            let (mut read, mut accepted, mut bytes) = (0u64, 0u64, 0u64);
            let mut rejected = [0u64; 8];
            let mut failed = false;
            for (&p, queue) in queues.iter() {
                let Some(part) = state.parts.get_mut(&p) else {
                    continue;
                };
                // Flow control: a partition far ahead of the completed output
                // is not read; once its queue is full, librdkafka stops
                // fetching it.
                if part.admission.frontier() > done.saturating_add(config.max_ahead_ms) {
                    continue;
                }
                for _ in 0..BATCH {
                    let message = match queue.poll(Duration::ZERO) {
                        None => break,
                        Some(Err(RdError::PartitionEOF(_))) => {
                            part.at_end = true;
                            part.positioning = None;
                            part.replay(part.next.unwrap_or(-1));
                            continue;
                        }
                        Some(Err(e)) => {
                            if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(5)) {
                                eprintln!("huntflow: reading {}/{p}: {e} (retrying)", config.topic);
                                warned = Some(Instant::now());
                            }
                            break;
                        }
                        Some(Ok(m)) => m,
                    };
                    let offset = message.offset();
                    if let Some(pos) = part.positioning.as_mut() {
                        match pos.record(offset) {
                            Verdict::Refetch(from) => {
                                seek(&consumer, &config.topic, &mut vec![(p, from)]);
                                break;
                            }
                            _ => part.positioning = None,
                        }
                    }
                    if part.next.is_some_and(|n| offset < n) {
                        continue;
                    }
                    part.replay(offset);
                    part.at_end = false;
                    part.idle_since = None;
                    let value = message.payload().unwrap_or(&[]);
                    bytes += value.len() as u64;
                    for (line_no, line) in value.split(|&b| b == b'\n').enumerate() {
                        if event::is_blank(line) {
                            continue;
                        }
                        read += 1;
                        match ingest(line, &config.hunt, &mut part.admission) {
                            Ok(event) => {
                                accepted += 1;
                                if let Some(event) = event {
                                    config.shared.max_ts.fetch_max(event.ts, Ordering::Relaxed);
                                    part.retained.push_back(event.clone());
                                    session.give(event);
                                }
                            }
                            Err(invalid) => {
                                rejected[invalid.reason.index()] += 1;
                                let r = KafkaReject {
                                    invalid,
                                    partition: p,
                                    offset,
                                    line: line_no as u32 + 1,
                                    raw: line,
                                };
                                if let Err(e) = config.rejects.reject(&config.topic, r) {
                                    stats_error(&config.stats, &config.topic, p, &e);
                                    failed = true;
                                }
                            }
                        }
                    }
                    part.next = Some(offset + 1);
                    part.replay(offset + 1);
                    if failed
                        || part.admission.frontier() > done.saturating_add(config.max_ahead_ms)
                    {
                        break;
                    }
                }
                if failed || started.elapsed() > BATCH_TIME {
                    break;
                }
            }
            drop(session);
            config.stats.count(read, accepted, &rejected, bytes);

            // Idle partitions advance by wall clock.
            if let Some(idle) = config.idle {
                let now = Instant::now();
                let base = config.shared.max_ts.load(Ordering::Relaxed);
                for (&p, part) in state.parts.iter_mut() {
                    if !part.at_end || !part.advances.is_empty() {
                        continue;
                    }
                    let since = *part.idle_since.get_or_insert(now);
                    let idle_for = now.duration_since(since);
                    if idle_for < idle || now.duration_since(part.last_advance) < ADVANCE_EVERY {
                        continue;
                    }
                    let m = base.saturating_add((idle_for - idle).as_millis() as u64);
                    if part.admission.latest().is_some_and(|l| l >= m) {
                        continue;
                    }
                    let advance = Advance {
                        partition: p,
                        next: part.next.unwrap_or(-1),
                        m,
                    };
                    if let Err(e) = config.log.record(&advance) {
                        stats_error(&config.stats, &config.topic, p, &e.to_string());
                        continue;
                    }
                    part.admission.advance(m);
                    part.last_advance = now;
                }
            }

            for (&p, part) in state.parts.iter() {
                config
                    .stats
                    .progress(p, Some(part.admission.frontier()), part.admission.latest());
            }
            hold(&config.shared, index, &state, root_cap);
            if read > 0 || failed {
                activator.activate();
            } else {
                activator.activate_after(Duration::from_millis(2));
            }
        }
    });
    Ok((stream, handle))
}

fn stats_error(stats: &Stats, topic: &str, partition: u32, message: &str) {
    if let Ok(mut errors) = stats.errors.lock() {
        errors.push((format!("{topic}/{partition}"), message.to_string()));
    }
}

/// Tells the consumer to fetch the listed partitions from the given offsets.
fn seek(consumer: &BaseConsumer, topic: &str, todo: &mut Vec<(u32, i64)>) {
    for (p, from) in todo.drain(..) {
        if let Err(e) = consumer.seek(
            topic,
            p as i32,
            Offset::Offset(from),
            Duration::from_secs(2),
        ) {
            eprintln!("huntflow: seeking {topic}/{p} to {from}: {e}");
        }
    }
}

/// The partition's own queue: its messages are read only from there, so a
/// partition that is not read fills its queue and stops being fetched.
fn partition_queue(
    consumer: &Arc<BaseConsumer>,
    topic: &str,
    p: u32,
) -> Result<PartitionQueue<DefaultConsumerContext>, super::KafkaError> {
    consumer
        .split_partition_queue(topic, p as i32)
        .ok_or_else(|| super::KafkaError::Topic {
            topic: topic.to_string(),
            message: format!("partition {p}: no queue of its own"),
        })
}

/// Holds the capability at the least frontier of this worker's partitions
/// and publishes it; a worker without partitions follows the others.
fn hold(shared: &Shared, index: usize, state: &State, cap: &mut Capability<u64>) {
    let own = state
        .parts
        .values()
        .map(|p| p.admission.frontier())
        .min()
        .unwrap_or(u64::MAX);
    shared.lows[index].store(own, Ordering::Release);
    let target = if own == u64::MAX {
        shared
            .lows
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, l)| l.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX)
    } else {
        own
    };
    if target != u64::MAX && target > *cap.time() {
        cap.downgrade(&target);
    }
}
