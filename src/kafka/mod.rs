//! Kafka clients: the one place where client configuration is built, the
//! producer, metadata and admin requests, the default partitioner, the
//! positioning that copes with brokers' fetch quirks, and the tools
//! (`huntflow produce`, `huntflow dump`). The Kafka source and outputs
//! build on these ([`crate::input::kafka`], [`crate::output::kafka`]).
//!
//! huntflow owns the options its guarantees rest on: the producer is
//! idempotent with `acks=all` and never gives up on a message, the consumer
//! reads committed data only, never commits offsets on its own (input
//! offsets live in the job's snapshots) and starts from the beginning of a
//! partition it has no offset for. Users may pass any other librdkafka
//! setting (TLS, SASL, timeouts) with `-X key=value`; an attempt to set an
//! owned option is an error naming it.

pub mod admin;
pub mod partitioner;
pub mod position;
pub mod producer;
pub mod tools;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// Timeout of metadata and admin requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A short-lived client, closed on a thread of its own when dropped:
/// librdkafka's destroy waits for the client's threads to end (about
/// 100 ms here), and the job's start, which makes several such clients one
/// after the other (metadata, topic creation, the readers of where each
/// output ends), need not wait for any of them. Without a thread to spare,
/// the client is closed at once.
pub(crate) struct Closing<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Closing<T> {
    pub(crate) fn new(client: T) -> Self {
        Closing(Some(client))
    }
}

impl<T: Send + 'static> std::ops::Deref for Closing<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for Closing<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // On failure the closure, and with it the client, is dropped here.
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// Options huntflow sets itself; `-X` cannot change them.
const OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use --brokers"),
    ("metadata.broker.list", "use --brokers"),
    ("enable.idempotence", "the output must not duplicate"),
    ("acks", "the idempotent producer needs acks=all"),
    (
        "request.required.acks",
        "the idempotent producer needs acks=all",
    ),
    ("retries", "a message must never be given up"),
    (
        "message.send.max.retries",
        "a message must never be given up",
    ),
    ("message.timeout.ms", "a message must never be given up"),
    ("delivery.timeout.ms", "a message must never be given up"),
    (
        "max.in.flight.requests.per.connection",
        "ordering per partition",
    ),
    ("max.in.flight", "ordering per partition"),
    ("isolation.level", "only committed input is read"),
    ("enable.auto.commit", "input offsets are kept in snapshots"),
    (
        "enable.auto.offset.store",
        "input offsets are kept in snapshots",
    ),
    (
        "auto.offset.reset",
        "a partition without an offset is read from its start",
    ),
    ("enable.partition.eof", "used to detect idle partitions"),
    ("partitioner", "huntflow chooses output partitions itself"),
    ("group.id", "offsets are kept in snapshots, not in a group"),
];

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("-X {0:?}: expected key=value")]
    BadOption(String),
    #[error("-X {key}: huntflow sets this option itself ({why})")]
    OwnedOption { key: String, why: &'static str },
    #[error("{what}: {source}")]
    Client {
        what: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("topic {0:?} does not exist")]
    NoTopic(String),
    #[error("topic {topic:?}: {message}")]
    Topic { topic: String, message: String },
}

impl KafkaError {
    pub fn client(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let what = what.into();
        move |source| KafkaError::Client { what, source }
    }
}

/// Where the brokers are and the user's extra settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    extra: Vec<(String, String)>,
}

impl KafkaConfig {
    /// `extra` holds `key=value` settings; owned options are refused.
    pub fn new(brokers: &str, extra: &[String]) -> Result<Self, KafkaError> {
        let mut parsed = Vec::new();
        for item in extra {
            let Some((key, value)) = item.split_once('=') else {
                return Err(KafkaError::BadOption(item.clone()));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(KafkaError::BadOption(item.clone()));
            }
            if let Some((_, why)) = OWNED.iter().find(|(k, _)| *k == key) {
                return Err(KafkaError::OwnedOption {
                    key: key.to_string(),
                    why,
                });
            }
            parsed.push((key.to_string(), value.to_string()));
        }
        Ok(KafkaConfig {
            brokers: brokers.to_string(),
            extra: parsed,
        })
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set("client.id", "huntflow");
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// Sets `key` unless the user gave it with `-X`: defaults tuned for
    /// latency that nothing relies on.
    fn default(&self, c: &mut ClientConfig, key: &str, value: &str) {
        if !self.extra.iter().any(|(k, _)| k == key) {
            c.set(key, value);
        }
    }

    /// An idempotent producer that retries until the message is written.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        // Batches wait at most 1 ms for more records.
        if !self
            .extra
            .iter()
            .any(|(k, _)| k == "queue.buffering.max.ms")
        {
            self.default(&mut c, "linger.ms", "1");
        }
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("max.in.flight.requests.per.connection", "5");
        c
    }

    /// A consumer with manually assigned partitions and no automatic commit.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        // Fetches are answered within 20 ms, and a partition whose local
        // queue was full is fetched again 5 ms later (librdkafka waits a
        // second by default, which halves the rate of a catch-up).
        self.default(&mut c, "fetch.wait.max.ms", "20");
        self.default(&mut c, "fetch.queue.backoff.ms", "5");
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true");
        c
    }

    /// A client for metadata, watermarks and topic creation.
    pub fn admin(&self) -> ClientConfig {
        self.base()
    }
}

/// Errors a consumer reports while librdkafka retries by itself.
pub(crate) fn passing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
    )
}

/// Errors of a consumer that cannot pass by themselves: records in a format
/// this build cannot decode, or a topic the client may not read.
pub(crate) fn permanent(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotImplemented
                | RDKafkaErrorCode::UnsupportedCompressionType
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for a client whose destroy blocks, as librdkafka's does.
    struct SlowToClose(std::sync::mpsc::Sender<()>);

    impl Drop for SlowToClose {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.0.send(());
        }
    }

    #[test]
    fn a_closing_client_is_closed_off_the_callers_path() {
        let (closed, was_closed) = std::sync::mpsc::channel();
        let client = Closing::new(SlowToClose(closed));
        let t = std::time::Instant::now();
        drop(client);
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        was_closed
            .recv_timeout(Duration::from_secs(10))
            .expect("closed on its own thread");
    }

    #[test]
    fn owned_options_are_refused_with_their_reason() {
        let err = KafkaConfig::new("h:1", &["enable.idempotence=false".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "-X enable.idempotence: huntflow sets this option itself (the output must not duplicate)"
        );
        let err =
            KafkaConfig::new("h:1", &["isolation.level=read_uncommitted".into()]).unwrap_err();
        assert!(err.to_string().contains("only committed input is read"));
        assert!(KafkaConfig::new("h:1", &["novalue".into()]).is_err());
    }

    #[test]
    fn other_options_pass_through_and_cannot_override() {
        let cfg = KafkaConfig::new("h:1", &["security.protocol=ssl".into()]).unwrap();
        let p = cfg.producer();
        assert_eq!(p.get("security.protocol"), Some("ssl"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("bootstrap.servers"), Some("h:1"));
        let c = cfg.consumer("g");
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn undecodable_or_forbidden_input_is_permanent_and_a_broker_away_is_not() {
        use rdkafka::error::KafkaError as RdError;
        let consumption = RdError::MessageConsumption;
        assert!(permanent(&consumption(RDKafkaErrorCode::NotImplemented)));
        assert!(permanent(&consumption(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!permanent(&consumption(RDKafkaErrorCode::AllBrokersDown)));
        assert!(!permanent(&consumption(
            RDKafkaErrorCode::NotLeaderForPartition
        )));
        assert!(!permanent(&RdError::PartitionEOF(0)));
        assert!(passing(RDKafkaErrorCode::AllBrokersDown));
        assert!(!passing(RDKafkaErrorCode::NotImplemented));
    }
}
