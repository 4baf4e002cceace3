//! The continuous job's hunt changes (docs/spec.md §9): a topic of one
//! partition, read on worker 0. Each record is decided as it is read —
//! accepted when it is a valid version and its effective time `T` is at or
//! above the job's input frontier, rejected otherwise — and the decision is
//! logged (with its offset) before it takes effect, so a restarted job
//! replays exactly the same decisions and reads on after them.
//!
//! The reader's capability follows the event sources' frontier, so with no
//! change pending it never holds the output back; an accepted change goes
//! out as a [`Notice`] at its `T`, which is at or above that capability.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use super::changes::{parse_change, CHANGES};
use super::kafka::Shared;
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
    /// The event sources' frontiers (the reader's capability follows them).
    pub shared: Arc<Shared>,
    pub stats: Arc<Stats>,
}

/// The reader on worker 0: its consumer and where it stands.
struct Reader {
    config: HuntTopicConfig,
    consumer: BaseConsumer,
    /// The offset to read next.
    next: i64,
    warned: Option<Instant>,
}

impl Reader {
    /// The least frontier of the event sources (`None`: none known yet).
    fn input_frontier(&self) -> Option<u64> {
        self.config
            .shared
            .lows
            .iter()
            .map(|l| l.load(Ordering::Acquire))
            .filter(|&l| l != u64::MAX)
            .min()
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

/// The reader's streams, and how many rejects it has emitted (a snapshot
/// waits until the rejects sink has written them).
pub struct HuntTopic<'scope> {
    pub notices: Stream<'scope, u64, Vec<Notice>>,
    pub rejects: Stream<'scope, u64, Vec<Reject>>,
    pub rejected: Rc<Cell<u64>>,
}

/// Builds the reader: worker 0 replays `logged` (decisions of an earlier
/// run, whose versions the job knows already), then reads the topic after
/// them; its capability starts at `floor`, the frontier the job restarts
/// from. Returns the notices of versions taking effect from `floor` on and
/// the rejects.
pub fn build<'scope>(
    scope: Scope<'scope, u64>,
    config: HuntTopicConfig,
    logged: Vec<Decision>,
    floor: u64,
) -> Result<HuntTopic<'scope>, KafkaError> {
    let mut reader = None;
    if scope.index() == 0 {
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
        for d in &logged {
            count(&config.stats, d);
        }
        reader = Some(Reader {
            config,
            consumer,
            next,
            warned: None,
        });
    }
    let rejected = Rc::new(Cell::new(0));
    let counted = rejected.clone();
    let records: Stream<'scope, u64, Vec<Result<Notice, Reject>>> =
        source(scope, "HuntTopic", move |cap, info| {
            let activator = scope.activator_for(info.address);
            let mut cap: Option<Capability<u64>> = reader.as_ref().map(|_| cap.delayed(&floor));
            // Versions that took effect below the floor are in the restored
            // state already.
            let mut replay = Some(
                logged
                    .into_iter()
                    .filter(|d| d.notice().is_none_or(|n| n.effective >= floor))
                    .collect::<Vec<_>>(),
            );
            move |output| {
                let (Some(c), Some(r)) = (cap.as_mut(), reader.as_mut()) else {
                    cap = None;
                    return;
                };
                let mut out: Vec<Decision> = replay.take().unwrap_or_default();
                let frontier = *c.time();
                for d in r.read(frontier) {
                    if let Err(e) = r.config.log.record(&d) {
                        r.config.stats.error(crate::input::stats::InputError {
                            partition: r.config.topic.clone(),
                            message: format!("logging a hunt change: {e}"),
                            transient: false,
                        });
                        break;
                    }
                    r.take_effect(&d);
                    out.push(d);
                }
                for d in out {
                    let (time, record) = match (d.notice(), d.reject()) {
                        (Some(n), _) => (n.effective, Ok(n)),
                        (None, Some(r)) => {
                            counted.set(counted.get() + 1);
                            (*c.time(), Err(r))
                        }
                        (None, None) => continue,
                    };
                    output.session(&c.delayed(&time)).give(record);
                }
                if let Some(f) = r.input_frontier() {
                    if f > *c.time() {
                        c.downgrade(&f);
                    }
                }
                activator.activate_after(Duration::from_millis(5));
            }
        });
    let (notices, rejects) = records.ok_err(|x| x);
    Ok(HuntTopic {
        notices,
        rejects,
        rejected,
    })
}
