//! Topic metadata, creation, watermarks, and reading a partition range:
//! the blocking requests the job makes outside its dataflow.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::position::Verdict;
use super::{passing, Closing, KafkaConfig, KafkaError, REQUEST_TIMEOUT};

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the current thread (the admin API's
/// futures need no runtime).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Metadata and topic management.
pub struct Admin {
    cfg: KafkaConfig,
    client: Closing<BaseConsumer>,
}

impl Admin {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let client = cfg
            .consumer("huntflow-admin")
            .create()
            .map_err(KafkaError::client("creating a metadata client"))?;
        Ok(Admin {
            cfg: cfg.clone(),
            client: Closing::new(client),
        })
    }

    /// The number of partitions of `topic`, or `None` if it does not exist.
    pub fn partitions(&self, topic: &str) -> Result<Option<u32>, KafkaError> {
        let md = self
            .client
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(KafkaError::client(format!("metadata of topic {topic:?}")))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match t.error() {
            None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as u32)),
            None => Ok(None),
            Some(e) => match RDKafkaErrorCode::from(e) {
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
                    Ok(None)
                }
                code => Err(KafkaError::Topic {
                    topic: topic.to_string(),
                    message: code.to_string(),
                }),
            },
        }
    }

    /// The number of partitions of `topic`, creating it with `partitions`
    /// partitions if it does not exist.
    pub fn ensure_topic(&self, topic: &str, partitions: u32) -> Result<u32, KafkaError> {
        if let Some(n) = self.partitions(topic)? {
            return Ok(n);
        }
        let admin: AdminClient<DefaultClientContext> = self
            .cfg
            .admin()
            .create()
            .map_err(KafkaError::client("creating an admin client"))?;
        let admin = Closing::new(admin);
        let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = block_on(admin.create_topics([&new], &opts))
            .map_err(KafkaError::client(format!("creating topic {topic:?}")))?;
        for r in results {
            if let Err((_, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(KafkaError::Topic {
                        topic: topic.to_string(),
                        message: format!("cannot create: {code}"),
                    });
                }
            }
        }
        // Metadata can lag behind creation for a moment.
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            if let Some(n) = self.partitions(topic)? {
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(KafkaError::NoTopic(topic.to_string()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `(low, high)`: the first offset and the offset after the last.
    pub fn watermarks(&self, topic: &str, partition: u32) -> Result<(i64, i64), KafkaError> {
        self.client
            .fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT)
            .map_err(KafkaError::client(format!(
                "watermarks of {topic:?} partition {partition}"
            )))
    }
}

/// Where a consumer starts reading `topic` partition `partition`: at
/// `from`, or without one at the partition's first offset, asked for up
/// front. (Assigned the logical offset "beginning" instead, librdkafka
/// looks it up only once it knows the partition's leader, and retries that
/// half a second later: every start of the job would wait for it.) If the
/// broker does not answer the question, the consumer looks it up itself.
pub fn start_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: u32,
    from: Option<i64>,
) -> Offset {
    match from {
        Some(offset) => Offset::Offset(offset),
        None => consumer
            .fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT)
            .map_or(Offset::Beginning, |(low, _)| Offset::Offset(low)),
    }
}

/// Reads `topic` partition `partition` from offset `from` (or its start
/// when `None`) to its current end, calling `f(offset, payload)` for each
/// record in order (an empty payload for a record without value). Returns
/// the end: the offset after the last record.
///
/// The end is where the consumer is told it reached the end of the
/// partition, not the listed high watermark: some Kafka-compatible brokers
/// list a watermark short of the last batch.
pub fn read_to_end(
    cfg: &KafkaConfig,
    topic: &str,
    partition: u32,
    from: Option<i64>,
    mut f: impl FnMut(i64, &[u8]),
) -> Result<i64, KafkaError> {
    let consumer: BaseConsumer = cfg
        .consumer("huntflow-reader")
        .create()
        .map_err(KafkaError::client("creating a reader"))?;
    let consumer = Closing::new(consumer);
    let mut tpl = TopicPartitionList::new();
    let start = start_offset(&consumer, topic, partition, from);
    tpl.add_partition_offset(topic, partition as i32, start)
        .map_err(KafkaError::client("assigning a partition"))?;
    consumer.assign(&tpl).map_err(KafkaError::client(format!(
        "reading {topic:?} partition {partition}"
    )))?;
    let mut end = from.unwrap_or(0);
    let mut positioning = from
        .filter(|&o| o > 0)
        .map(super::position::Positioning::new);
    let mut quiet_since = Instant::now();
    let refetch = |offset: i64| {
        consumer
            .seek(
                topic,
                partition as i32,
                Offset::Offset(offset),
                REQUEST_TIMEOUT,
            )
            .map_err(KafkaError::client(format!(
                "seeking in {topic:?} partition {partition}"
            )))
    };
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let offset = m.offset();
                if let Some(pos) = positioning.as_mut() {
                    match pos.record(offset) {
                        Verdict::Refetch(o) => {
                            refetch(o)?;
                            continue;
                        }
                        _ => positioning = None,
                    }
                }
                if from.is_some_and(|f| offset < f) {
                    continue;
                }
                f(offset, m.payload().unwrap_or(&[]));
                end = offset + 1;
            }
            Some(Err(RdError::PartitionEOF(_))) => {
                if let Ok(positions) = consumer.position() {
                    if let Some(Offset::Offset(o)) = positions
                        .find_partition(topic, partition as i32)
                        .map(|e| e.offset())
                    {
                        end = end.max(o);
                    }
                }
                return Ok(end);
            }
            None => {
                if let Some(Verdict::Refetch(o)) = positioning.as_mut().map(|p| p.silent()) {
                    refetch(o)?;
                    quiet_since = Instant::now();
                }
                if quiet_since.elapsed() > Duration::from_secs(60) {
                    return Err(KafkaError::Topic {
                        topic: topic.to_string(),
                        message: format!("partition {partition}: no end of partition after 60 s"),
                    });
                }
            }
            // The broker away for a moment: librdkafka reconnects by
            // itself, and a reader with nothing for 60 s gives up above.
            Some(Err(RdError::MessageConsumption(code))) if passing(code) => {}
            Some(Err(e)) => {
                return Err(KafkaError::Client {
                    what: format!("reading {topic:?} partition {partition}"),
                    source: e,
                })
            }
        }
    }
}

/// [`read_to_end`] for the partitions of `topic` in `from` at once, one
/// thread each, partition `p` from its offset there: its records go
/// through `f` into a state of its own made by `state()`. Returns each
/// partition's state and end, in the order of `from`.
pub fn read_all_to_end<T: Send>(
    cfg: &KafkaConfig,
    topic: &str,
    from: &[(u32, Option<i64>)],
    state: impl Fn() -> T + Sync,
    f: impl Fn(&mut T, i64, &[u8]) + Sync,
) -> Result<Vec<(T, i64)>, KafkaError> {
    std::thread::scope(|scope| {
        let readers: Vec<_> = from
            .iter()
            .map(|&(p, start)| {
                let (state, f) = (&state, &f);
                scope.spawn(move || {
                    let mut t = state();
                    let end = read_to_end(cfg, topic, p, start, |offset, payload| {
                        f(&mut t, offset, payload)
                    })?;
                    Ok((t, end))
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| {
                r.join().unwrap_or_else(|_| {
                    Err(KafkaError::Topic {
                        topic: topic.to_string(),
                        message: "a partition's reader failed".into(),
                    })
                })
            })
            .collect()
    })
}

/// The end of a partition (see [`read_to_end`]).
pub fn end_offset(
    cfg: &KafkaConfig,
    admin: &Admin,
    topic: &str,
    partition: u32,
) -> Result<i64, KafkaError> {
    let (_, high) = admin.watermarks(topic, partition)?;
    read_to_end(cfg, topic, partition, Some(high), |_, _| {})
}
