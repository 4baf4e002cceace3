//! The continuous job's hunt changes (docs/spec.md §9): a topic of one
//! partition, read on worker 0 by the job's control operator. Each record
//! is decided as it is read — accepted when it is a valid version and its
//! effective time `T` is at or above the job's input frontier, rejected
//! otherwise — and the decision is logged (with its offset) before it
//! takes effect, so a restarted job replays exactly the same decisions and
//! reads on after them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::changes::{parse_change, CHANGES};
use super::reject::{Place, Reject};
use super::stats::Stats;
use crate::kafka::{KafkaConfig, KafkaError};
use crate::model::event::{Invalid, Reason};
use crate::model::hunt::{Hunt, HuntText};
use crate::model::versions::{Notice, SharedVersions};

/// What became of the record at `offset` of the hunt topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub offset: i64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A version in effect from `effective`.
    Accepted { effective: u64, text: HuntText },
    /// Rejected (`bad_hunt_change`), with the input frontier then.
    Rejected {
        detail: String,
        frontier: u64,
        raw: Vec<u8>,
    },
}

impl Decision {
    /// The notice of an accepted change: its `seq` is its offset + 1 (the
    /// start hunt is 0), so later records win ties.
    pub fn notice(&self) -> Option<Notice> {
        match &self.outcome {
            Outcome::Accepted { effective, text } => Some(Notice {
                seq: self.offset as u64 + 1,
                effective: *effective,
                text: text.clone(),
            }),
            Outcome::Rejected { .. } => None,
        }
    }

    /// The reject of a rejected change.
    pub fn reject(&self) -> Option<Reject> {
        match &self.outcome {
            Outcome::Rejected {
                detail,
                frontier,
                raw,
            } => {
                let invalid = Invalid {
                    reason: Reason::BadHuntChange,
                    detail: detail.clone(),
                };
                let place = Place::Message {
                    offset: self.offset,
                    line: 1,
                };
                Some(Reject::new(invalid, CHANGES, place, *frontier, raw))
            }
            Outcome::Accepted { .. } => None,
        }
    }
}

/// The durable log of decisions, written before they take effect.
pub trait DecisionLog: Send + Sync {
    fn record(&self, decision: &Decision) -> std::io::Result<()>;
}

/// What the hunt topic's reader needs.
pub struct HuntTopicConfig {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub start: Arc<Hunt>,
    pub versions: SharedVersions,
    pub log: Arc<dyn DecisionLog>,
    pub stats: Arc<Stats>,
}

/// The reader on worker 0: its consumer and where it stands.
pub struct Reader {
    config: HuntTopicConfig,
    consumer: BaseConsumer,
    /// The offset to read next.
    next: i64,
    warned: Option<Instant>,
}

impl Reader {
    /// A reader of `config.topic` after the decisions `logged` (of an
    /// earlier run, whose versions the job knows already; they are
    /// counted).
    pub fn open(config: HuntTopicConfig, logged: &[Decision]) -> Result<Reader, KafkaError> {
        let next = logged.last().map_or(0, |d| d.offset + 1);
        let consumer: BaseConsumer = config
            .kafka
            .consumer(&format!("huntflow-{}", config.topic))
            .create()
            .map_err(KafkaError::client("creating the hunt topic's consumer"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&config.topic, 0, Offset::Offset(next))
            .map_err(KafkaError::client("assigning the hunt topic"))?;
        consumer
            .assign(&tpl)
            .map_err(KafkaError::client("assigning the hunt topic"))?;
        for d in logged {
            count(&config.stats, d);
        }
        Ok(Reader {
            config,
            consumer,
            next,
            warned: None,
        })
    }

    /// Reads, decides against the input `frontier`, logs and applies the
    /// records that arrived since the last call; returns the decisions.
    pub fn poll(&mut self, frontier: u64) -> Vec<Decision> {
        let mut out = Vec::new();
        for d in self.read(frontier) {
            if let Err(e) = self.config.log.record(&d) {
                self.config.stats.error(crate::input::stats::InputError {
                    partition: self.config.topic.clone(),
                    message: format!("logging a hunt change: {e}"),
                    transient: false,
                });
                break;
            }
            self.take_effect(&d);
            out.push(d);
        }
        out
    }

    /// Decides the records read since the last call.
    fn read(&mut self, frontier: u64) -> Vec<Decision> {
        let mut out = Vec::new();
        for _ in 0..64 {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    if self
                        .warned
                        .is_none_or(|w| w.elapsed() > Duration::from_secs(5))
                    {
                        eprintln!("huntflow: reading {}: {e} (retrying)", self.config.topic);
                        self.warned = Some(Instant::now());
                    }
                    break;
                }
                Some(Ok(m)) => m,
            };
            let offset = message.offset();
            if offset < self.next {
                continue;
            }
            self.next = offset + 1;
            let raw = message.payload().unwrap_or(&[]);
            out.push(self.decide(offset, raw, frontier));
        }
        out
    }

    fn decide(&self, offset: i64, raw: &[u8], frontier: u64) -> Decision {
        let name = std::path::Path::new(&self.config.topic);
        let outcome = match parse_change(raw, name, &self.config.start) {
            Ok((effective, _)) if effective < frontier => Outcome::Rejected {
                detail: format!(
                    "effective time {effective} is below the job's input frontier {frontier}: times below it may already be complete"
                ),
                frontier,
                raw: super::reject::cut_raw(raw),
            },
            Ok((effective, hunt)) => Outcome::Accepted {
                effective,
                text: hunt.text,
            },
            Err(invalid) => Outcome::Rejected {
                detail: invalid.detail,
                frontier,
                raw: super::reject::cut_raw(raw),
            },
        };
        Decision { offset, outcome }
    }
}

impl Reader {
    /// A logged decision takes effect: an accepted version joins the
    /// versions, and the decision is counted.
    fn take_effect(&self, d: &Decision) {
        if let Some(notice) = d.notice() {
            let name = std::path::Path::new(&self.config.topic);
            if let Ok(hunt) = Hunt::parse(name, notice.text.clone()) {
                let mut versions = self.config.versions.write().expect("versions lock");
                versions.add(notice.seq, notice.effective, hunt);
            }
        }
        count(&self.config.stats, d);
    }
}

/// Counts a decision.
fn count(stats: &Stats, d: &Decision) {
    if let Some(h) = &stats.hunt_changes {
        let n = match d.outcome {
            Outcome::Accepted { .. } => &h.accepted,
            Outcome::Rejected { .. } => &h.rejected,
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}
