//! Writing to Kafka: notifications keyed by player (occupancy by zone), in
//! the contract's order within each output partition, with progress records
//! on every partition, each partition by the worker that owns it
//! ([`partition_owner`]); and rejects, input partition `p` to partition
//! `p % n`.
//!
//! Both resume after a restart: what the topic already holds since the last
//! snapshot is read back, and exactly that is not written again (see
//! [`super::resume`] and the continuous job). A notifications writer marks
//! a snapshot taken while it still re-creates what its partitions held
//! before the first held record at or above the snapshot's frontier.

use std::collections::VecDeque;
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

/// A partition a writer does not own: no position of its own.
pub const NOT_OWNED: i64 = -1;

/// Where a topic's partitions end: their end when opened, plus the records
/// produced since. The producer is idempotent and the job is the topic's
/// only writer, so the records of a partition take consecutive offsets.
/// A partition another writer owns stays at [`NOT_OWNED`].
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

/// The worker that writes output partition `p` of a topic: partition `p`
/// goes to global worker `p % peers`, on whichever process it runs (the
/// exchange by partition number routes each notification there).
pub fn partition_owner(p: u32, peers: usize) -> usize {
    p as usize % peers.max(1)
}

/// Notifications to a topic: the partitions one worker owns.
pub struct KafkaNotifications {
    producer: Arc<Producer>,
    topic: String,
    partitions: u32,
    owned: Vec<u32>,
    resume: Resume,
    /// Per partition, the time and offset of each notification it held
    /// beyond the snapshot that the job has not re-created yet.
    held_at: Vec<VecDeque<(u64, i64)>>,
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

/// Where each partition of `parts` is read from: the snapshot's mark, or
/// its start without one.
fn froms(marks: Option<&[i64]>, parts: impl Iterator<Item = u32>) -> Vec<(u32, Option<i64>)> {
    parts
        .map(|p| {
            let mark = marks.and_then(|m| m.get(p as usize).copied());
            (p, mark.filter(|&m| m >= 0))
        })
        .collect()
}

/// What one writer of a notifications topic is opened with.
pub struct NotificationsAt<'a> {
    pub topic: &'a str,
    /// The snapshot's marks, taken at frontier `below`.
    pub marks: Option<&'a [i64]>,
    pub below: u64,
    /// This writer's global worker index, and the workers of the job.
    pub worker: usize,
    pub peers: usize,
}

impl KafkaNotifications {
    /// A progress record for frontier `f` on every owned partition.
    fn send_progress(&mut self, f: u64) -> Result<(), OutputError> {
        let record = progress_record(f);
        for &p in &self.owned {
            self.producer
                .send(&self.topic, p, None, record.as_bytes())?;
            self.ends.sent(p);
        }
        Ok(())
    }

    /// Opens the output partitions worker `at.worker` owns, reading back
    /// what each holds from the snapshot's mark (its start without one).
    pub fn open(
        cfg: &KafkaConfig,
        admin: &Admin,
        producer: Arc<Producer>,
        at: NotificationsAt<'_>,
    ) -> Result<Self, KafkaError> {
        let topic = at.topic;
        let partitions = partitions(admin, topic)?;
        let owned: Vec<u32> = (0..partitions)
            .filter(|&p| partition_owner(p, at.peers) == at.worker)
            .collect();
        let mut resume = Resume::new(partitions as usize);
        let mut held_at = vec![VecDeque::new(); partitions as usize];
        let mut ends = vec![NOT_OWNED; partitions as usize];
        // What each partition holds after its mark, read at once.
        let from = froms(at.marks, owned.iter().copied());
        let read = read_all_to_end(
            cfg,
            topic,
            &from,
            || (Vec::new(), None),
            |(held, bad): &mut (Vec<_>, Option<String>), offset, payload| match parse_notification(
                payload,
            ) {
                Ok(Some(written)) => held.push((offset, written)),
                Ok(None) => {}
                Err(e) => {
                    bad.get_or_insert(format!("offset {offset}: {e}"));
                }
            },
        )?;
        for (&p, ((held, bad), end)) in owned.iter().zip(read) {
            if let Some(e) = bad {
                return Err(KafkaError::Topic {
                    topic: topic.to_string(),
                    message: format!(
                        "partition {p} holds a record that is not a notification ({e})"
                    ),
                });
            }
            for (offset, (time, n)) in held {
                resume.written(p as usize, time, n);
                held_at[p as usize].push_back((time, offset));
            }
            ends[p as usize] = end;
        }
        Ok(KafkaNotifications {
            producer,
            topic: topic.to_string(),
            partitions,
            owned,
            resume,
            held_at,
            buf: Vec::with_capacity(256),
            progress: ProgressPacer::new(Duration::from_millis(200), Some(at.below)),
            ends: Ends::new(ends),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Where each partition ended when opened (durable already;
    /// [`NOT_OWNED`] for another writer's).
    pub fn opened(&self) -> Vec<i64> {
        self.ends.opened.clone()
    }

    /// Every held notification of a time before `t` is re-created.
    fn recreated_below(&mut self, t: u64) {
        for held in &mut self.held_at {
            while held.front().is_some_and(|&(time, _)| time < t) {
                held.pop_front();
            }
        }
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
        self.recreated_below(time.saturating_add(1));
        Ok(())
    }

    /// Each owned partition's position: before its first held notification
    /// the job has yet to re-create (a snapshot taken while it re-creates
    /// what the topic held is exact too), else its end.
    fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        let mut now = self.ends.now();
        for (p, held) in self.held_at.iter().enumerate() {
            if let Some(&(_, offset)) = held.front() {
                now[p] = offset;
            }
        }
        marks.outputs.insert(super::NOTIFICATIONS.into(), now);
        Ok(())
    }

    fn progress_due_in(&self) -> Option<std::time::Duration> {
        self.progress.held()
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        self.recreated_below(frontier.unwrap_or(u64::MAX));
        match self.progress.due(frontier) {
            Some(f) => self.send_progress(f),
            None => Ok(()),
        }
    }

    fn flush_progress(&mut self, upto: u64) -> Result<(), OutputError> {
        match self.progress.take_held(upto) {
            Some(f) => self.send_progress(f),
            None => Ok(()),
        }
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
            &froms(marks, 0..partitions),
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
