//! Writing to Kafka: notifications keyed by player (occupancy by zone), in
//! the contract's order within each output partition, with progress records
//! on every partition; and rejects, input partition `p` to partition
//! `p % n`.
//!
//! Both resume after a restart: what the topic already holds since the last
//! snapshot is read back, and exactly that is not written again (see
//! [`super::resume`] and the continuous job).

use std::sync::Arc;
use std::time::Duration;

use super::format::{format_notification, parse_notification, progress_record};
use super::line::ProgressPacer;
use super::order::Notification;
use super::rejects::{format_reject, Origins, RejectSink};
use super::resume::{Held, Resume, WrittenRejects};
use super::sink::NotificationOutput;
use super::{Marks, OutputError};
use crate::input::changes::CHANGES;
use crate::input::reject::Reject;
use crate::kafka::admin::{read_all_to_end, Admin};
use crate::kafka::partitioner::partition_of;
use crate::kafka::producer::Producer;
use crate::kafka::{KafkaConfig, KafkaError};

/// Where a topic's partitions end: their end when opened, plus the records
/// produced since. The producer is idempotent and the job is the topic's
/// only writer, so the records of a partition take consecutive offsets.
struct Ends {
    opened: Vec<i64>,
    sent: Vec<i64>,
}

impl Ends {
    fn new(opened: Vec<i64>) -> Self {
        let sent = vec![0; opened.len()];
        Ends { opened, sent }
    }

    fn sent(&mut self, p: u32) {
        self.sent[p as usize] += 1;
    }

    /// The offset each partition's next record will have.
    fn now(&self) -> Vec<i64> {
        self.opened
            .iter()
            .zip(&self.sent)
            .map(|(o, s)| o + s)
            .collect()
    }
}

/// Notifications to a topic.
pub struct KafkaNotifications {
    producer: Arc<Producer>,
    topic: String,
    partitions: u32,
    resume: Resume,
    buf: Vec<u8>,
    progress: ProgressPacer,
    ends: Ends,
}

/// The number of partitions of an existing topic.
fn partitions(admin: &Admin, topic: &str) -> Result<u32, KafkaError> {
    admin
        .partitions(topic)?
        .ok_or_else(|| KafkaError::NoTopic(topic.to_string()))
}

/// Where each of `partitions` partitions is read from: the snapshot's mark,
/// or its start without one.
fn froms(marks: Option<&[i64]>, partitions: u32) -> Vec<Option<i64>> {
    (0..partitions as usize)
        .map(|p| marks.and_then(|m| m.get(p).copied()))
        .collect()
}

impl KafkaNotifications {
    /// Opens the output, reading back what each partition holds from
    /// `marks` (the snapshot's, taken at frontier `below`; the start of each
    /// partition without one).
    pub fn open(
        cfg: &KafkaConfig,
        admin: &Admin,
        producer: Arc<Producer>,
        topic: &str,
        marks: Option<&[i64]>,
        below: u64,
    ) -> Result<Self, KafkaError> {
        let partitions = partitions(admin, topic)?;
        let mut resume = Resume::new(partitions as usize);
        let mut ends = Vec::with_capacity(partitions as usize);
        // What each partition holds after its mark, read at once.
        let read = read_all_to_end(
            cfg,
            topic,
            &froms(marks, partitions),
            || (Vec::new(), None),
            |(held, bad): &mut (Vec<_>, Option<String>), offset, payload| match parse_notification(
                payload,
            ) {
                Ok(Some(written)) => held.push(written),
                Ok(None) => {}
                Err(e) => {
                    bad.get_or_insert(format!("offset {offset}: {e}"));
                }
            },
        )?;
        for (p, ((held, bad), end)) in read.into_iter().enumerate() {
            if let Some(e) = bad {
                return Err(KafkaError::Topic {
                    topic: topic.to_string(),
                    message: format!(
                        "partition {p} holds a record that is not a notification ({e})"
                    ),
                });
            }
            for (time, n) in held {
                resume.written(p, time, n);
            }
            ends.push(end);
        }
        Ok(KafkaNotifications {
            producer,
            topic: topic.to_string(),
            partitions,
            resume,
            buf: Vec::with_capacity(256),
            progress: ProgressPacer::new(Duration::from_millis(200), Some(below)),
            ends: Ends::new(ends),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// What the topic held after the snapshot's marks.
    pub fn held(&self) -> Held {
        self.resume.held()
    }

    /// Where each partition ended when opened (durable already).
    pub fn opened(&self) -> Vec<i64> {
        self.ends.opened.clone()
    }
}

impl NotificationOutput for KafkaNotifications {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        for n in ns {
            let key: &str = match n {
                Notification::Player { player, .. } => player,
                Notification::Occupancy { zone, .. } => zone,
            };
            let p = partition_of(key.as_bytes(), self.partitions);
            if !self.resume.keep(p as usize, time, n) {
                continue;
            }
            self.buf.clear();
            format_notification(&mut self.buf, time, n);
            self.buf.pop(); // the newline
            self.producer
                .send(&self.topic, p, Some(key.as_bytes()), &self.buf)?;
            self.ends.sent(p);
        }
        Ok(())
    }

    fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        marks
            .outputs
            .insert(super::NOTIFICATIONS.into(), self.ends.now());
        Ok(())
    }

    fn progress_due_in(&self) -> Option<std::time::Duration> {
        self.progress.held()
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        if let Some(f) = self.progress.due(frontier) {
            let record = progress_record(f);
            for p in 0..self.partitions {
                self.producer
                    .send(&self.topic, p, None, record.as_bytes())?;
                self.ends.sent(p);
            }
        }
        Ok(())
    }
}

/// Rejects to a topic: input partition `p` goes to partition `p % n`.
pub struct KafkaRejects {
    producer: Arc<Producer>,
    topic: String,
    partitions: u32,
    origins: Origins,
    written: WrittenRejects,
    buf: Vec<u8>,
    ends: Ends,
}

impl KafkaRejects {
    /// Opens the output for the rejects of `origins`, reading back what
    /// each partition holds from `marks`.
    pub fn open(
        cfg: &KafkaConfig,
        admin: &Admin,
        producer: Arc<Producer>,
        topic: &str,
        origins: Origins,
        marks: Option<&[i64]>,
    ) -> Result<Self, KafkaError> {
        let partitions = partitions(admin, topic)?;
        let mut written = WrittenRejects::default();
        let mut ends = Vec::with_capacity(partitions as usize);
        let read = read_all_to_end(
            cfg,
            topic,
            &froms(marks, partitions),
            Vec::new,
            |held: &mut Vec<Vec<u8>>, _, payload| held.push(payload.to_vec()),
        )?;
        for (held, end) in read {
            for payload in held {
                written.note(&payload, origins.changes());
            }
            ends.push(end);
        }
        Ok(KafkaRejects {
            producer,
            topic: topic.to_string(),
            partitions,
            origins,
            written,
            buf: Vec::with_capacity(256),
            ends: Ends::new(ends),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// What the topic held after the snapshot's marks.
    pub fn held(&self) -> Held {
        self.written.held()
    }

    /// Where each partition ended when opened (durable already).
    pub fn opened(&self) -> Vec<i64> {
        self.ends.opened.clone()
    }
}

impl RejectSink for KafkaRejects {
    fn write(&mut self, r: &Reject) -> Result<(), OutputError> {
        if !self.written.is_new(r) {
            return Ok(());
        }
        self.buf.clear();
        format_reject(&mut self.buf, &self.origins, r);
        self.buf.pop();
        // The hunt topic's rejects go to partition 0, keyed by its name.
        let (key, p) = match r.partition {
            CHANGES => (self.origins.name(CHANGES).to_string(), 0),
            n => (n.to_string(), n % self.partitions),
        };
        self.producer
            .send(&self.topic, p, Some(key.as_bytes()), &self.buf)?;
        self.ends.sent(p);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        // The producer delivers in the background; a snapshot waits for it.
        Ok(())
    }

    fn mark(&mut self) -> Vec<i64> {
        self.ends.now()
    }
}
