//! Writing to Kafka: the idempotent producer, the notification output
//! (keyed by player, occupancy by zone, SPEC order within each output
//! partition, progress records on every partition) and the rejects output.
//!
//! Both outputs resume after a restart: what the topic already holds since
//! the last snapshot is read back, and exactly that is not written again
//! (see `run` for the whole design).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::admin::{read_to_end, Admin};
use super::partitioner::partition_of;
use super::source::{KafkaReject, RejectWriter};
use super::{KafkaConfig, KafkaError};
use crate::hunt::Hunt;
use crate::run::resume::{format_kafka_reject, Held, Resume, WrittenRejects};
use crate::sink::{
    format_notification, parse_notification, progress_record, Notification, NotificationOutput,
    ProgressPacer,
};

/// Records the first delivery failure; with an idempotent producer that
/// retries forever, a failure is fatal (the job stops and a restart
/// resumes from its snapshot).
struct Context {
    failure: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut f) = self.failure.lock() {
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The job's producer, shared by its outputs.
pub struct Producer {
    inner: ThreadedProducer<Context>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Producer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let failure = Arc::new(Mutex::new(None));
        let inner = cfg
            .producer()
            .create_with_context(Context {
                failure: failure.clone(),
            })
            .map_err(KafkaError::client("creating the producer"))?;
        Ok(Producer { inner, failure })
    }

    /// The first delivery failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Queues one record; waits while the producer's queue is full (the
    /// dataflow then waits too: that is the backpressure).
    pub fn send(
        &self,
        topic: &str,
        partition: u32,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), String> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .partition(partition as i32)
            .payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    if let Some(f) = self.failure() {
                        return Err(f);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("producing to {topic:?}: {e}")),
            }
        }
    }

    /// Waits until everything queued is written.
    pub fn flush(&self) -> Result<(), String> {
        loop {
            if let Some(f) = self.failure() {
                return Err(f);
            }
            match self.inner.flush(Duration::from_secs(1)) {
                Ok(()) => return self.failure().map_or(Ok(()), Err),
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut)) => continue,
                Err(e) => return Err(format!("flushing the producer: {e}")),
            }
        }
    }
}

/// The listed high watermark of every partition of `topic`: where to start
/// reading back after a restart (it may lie before the true end, never after).
pub fn marks(admin: &Admin, topic: &str, partitions: u32) -> Result<Vec<i64>, KafkaError> {
    (0..partitions)
        .map(|p| admin.watermarks(topic, p).map(|(_, high)| high))
        .collect()
}

/// Notifications to a topic.
pub struct KafkaNotifications {
    producer: Arc<Producer>,
    topic: String,
    partitions: u32,
    resume: Resume,
    buf: Vec<u8>,
    /// Frontier written so far (read by the snapshot protocol).
    written: Arc<AtomicU64>,
    progress: ProgressPacer,
}

impl KafkaNotifications {
    /// Opens the output, reading back what each partition holds from
    /// `marks` (the snapshot's; the start of each partition without one).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        cfg: &KafkaConfig,
        admin: &Admin,
        producer: Arc<Producer>,
        topic: &str,
        hunt: &Hunt,
        marks: Option<&[i64]>,
        below: u64,
        written: Arc<AtomicU64>,
    ) -> Result<Self, KafkaError> {
        let partitions = admin
            .partitions(topic)?
            .ok_or_else(|| KafkaError::NoTopic(topic.to_string()))?;
        let mut resume = Resume::new(below, partitions as usize);
        for p in 0..partitions {
            let from = marks.and_then(|m| m.get(p as usize).copied());
            let mut bad = None;
            read_to_end(
                cfg,
                topic,
                p,
                from,
                |offset, payload| match parse_notification(hunt, payload) {
                    Ok(Some((time, n))) => resume.written(p as usize, time, n),
                    Ok(None) => {}
                    Err(e) => {
                        bad.get_or_insert(format!("offset {offset}: {e}"));
                    }
                },
            )?;
            if let Some(e) = bad {
                return Err(KafkaError::Topic {
                    topic: topic.to_string(),
                    message: format!(
                        "partition {p} holds a record that is not a notification of this hunt ({e})"
                    ),
                });
            }
        }
        Ok(KafkaNotifications {
            producer,
            topic: topic.to_string(),
            partitions,
            resume,
            buf: Vec::with_capacity(256),
            written,
            progress: ProgressPacer::new(Duration::from_millis(200), Some(below)),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// What the topic held after the snapshot's marks.
    pub fn held(&self) -> Held {
        self.resume.held()
    }
}

fn io_err(e: String) -> std::io::Error {
    std::io::Error::other(e)
}

impl NotificationOutput for KafkaNotifications {
    fn write_time(&mut self, hunt: &Hunt, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        for n in ns {
            let key: &str = match n {
                Notification::Player { player, .. } => player,
                Notification::Occupancy { zone, .. } => &hunt.zones[*zone as usize].id,
            };
            let p = partition_of(key.as_bytes(), self.partitions);
            if !self.resume.keep(p as usize, time, n) {
                continue;
            }
            self.buf.clear();
            format_notification(&mut self.buf, hunt, time, n);
            self.buf.pop(); // the newline
            self.producer
                .send(&self.topic, p, Some(key.as_bytes()), &self.buf)
                .map_err(io_err)?;
        }
        Ok(())
    }

    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()> {
        if let Some(f) = self.progress.due(frontier) {
            let record = progress_record(f);
            for p in 0..self.partitions {
                self.producer
                    .send(&self.topic, p, None, record.as_bytes())
                    .map_err(io_err)?;
            }
        }
        self.written
            .store(frontier.unwrap_or(u64::MAX), Ordering::Release);
        Ok(())
    }
}

/// Rejects to a topic: input partition `p` goes to partition `p % n`.
pub struct KafkaRejects {
    producer: Arc<Producer>,
    topic: String,
    partitions: u32,
    written: WrittenRejects,
}

impl KafkaRejects {
    pub fn open(
        cfg: &KafkaConfig,
        admin: &Admin,
        producer: Arc<Producer>,
        topic: &str,
        marks: Option<&[i64]>,
    ) -> Result<Self, KafkaError> {
        let partitions = admin
            .partitions(topic)?
            .ok_or_else(|| KafkaError::NoTopic(topic.to_string()))?;
        let mut written = WrittenRejects::default();
        for p in 0..partitions {
            let from = marks.and_then(|m| m.get(p as usize).copied());
            read_to_end(cfg, topic, p, from, |_, payload| written.note(payload))?;
        }
        Ok(KafkaRejects {
            producer,
            topic: topic.to_string(),
            partitions,
            written,
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// What the topic held after the snapshot's marks.
    pub fn held(&self) -> Held {
        self.written.held()
    }
}

impl RejectWriter for KafkaRejects {
    fn reject(&self, input_topic: &str, r: KafkaReject<'_>) -> Result<(), String> {
        if !self.written.is_new(&r) {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(256 + r.raw.len());
        format_kafka_reject(&mut buf, input_topic, &r);
        buf.pop();
        let key = r.partition.to_string();
        self.producer.send(
            &self.topic,
            r.partition % self.partitions,
            Some(key.as_bytes()),
            &buf,
        )
    }
}
