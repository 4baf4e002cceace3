//! The job's Kafka producer: idempotent, `acks=all`, never giving up on a
//! message (the options are set in [`super::KafkaConfig::producer`]), shared
//! by the outputs and `huntflow produce`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::admin::Admin;
use super::{KafkaConfig, KafkaError};

/// A write the producer could not make. The producer retries by itself, so
/// this is a refusal (or a failure reported by a delivery); starting again
/// from the last snapshot can get past it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProduceError(pub String);

/// Per topic and partition, the offset after the last record delivered.
type Delivered = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// Records the first delivery failure, and how far each partition's
/// records are delivered; with an idempotent producer that retries
/// forever, a failure is fatal (the job stops and a restart resumes from
/// its snapshot).
struct Context {
    failure: Arc<Mutex<Option<String>>>,
    delivered: Delivered,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Ok(mut d) = self.delivered.lock() {
                    let end = d.entry((m.topic().to_string(), m.partition())).or_insert(0);
                    *end = (*end).max(m.offset() + 1);
                }
            }
            Err((e, _)) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The job's producer, shared by its outputs.
pub struct Producer {
    inner: ThreadedProducer<Context>,
    failure: Arc<Mutex<Option<String>>>,
    delivered: Delivered,
}

impl Producer {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let failure = Arc::new(Mutex::new(None));
        let delivered = Delivered::default();
        let inner = cfg
            .producer()
            .create_with_context(Context {
                failure: failure.clone(),
                delivered: delivered.clone(),
            })
            .map_err(KafkaError::client("creating the producer"))?;
        Ok(Producer {
            inner,
            failure,
            delivered,
        })
    }

    /// The offset after the last record this producer delivered to
    /// `topic`'s `partition` (0: none yet).
    pub fn delivered(&self, topic: &str, partition: u32) -> i64 {
        self.delivered
            .lock()
            .ok()
            .and_then(|d| d.get(&(topic.to_string(), partition as i32)).copied())
            .unwrap_or(0)
    }

    /// The first delivery failure, if any.
    pub fn failure(&self) -> Option<ProduceError> {
        self.failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .map(ProduceError)
    }

    /// Queues one record; waits while the producer's queue is full (the
    /// dataflow then waits too: that is the backpressure).
    pub fn send(
        &self,
        topic: &str,
        partition: u32,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), ProduceError> {
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
                Err((e, _)) => return Err(ProduceError(format!("producing to {topic:?}: {e}"))),
            }
        }
    }

    /// Waits until everything queued is written.
    pub fn flush(&self) -> Result<(), ProduceError> {
        loop {
            if let Some(f) = self.failure() {
                return Err(f);
            }
            match self.inner.flush(Duration::from_secs(1)) {
                Ok(()) => return self.failure().map_or(Ok(()), Err),
                Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut)) => continue,
                Err(e) => return Err(ProduceError(format!("flushing the producer: {e}"))),
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
