//! What the job measures about itself, and `GET /metrics`: the Prometheus
//! text format, written by `prometheus-client`.
//!
//! Histograms and the notification counters are kept as the job runs; the
//! source counters, partition progress and state sizes are read when a
//! scrape asks, into a registry made for that scrape.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{
    prometheus_text, EncodeGaugeValue, EncodeMetric, GaugeValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::event::Reason;
use crate::output::order::Notification;

use super::Live;

/// Bucket bounds, seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Notification kinds, in the order of [`Metrics::notifications`]: the
/// player kinds in [`crate::output::order::PlayerKind`] order, then occupancy.
pub const KINDS: [&str; 5] = ["exit", "enter", "ineligible", "eligible", "occupancy"];

/// The index in [`KINDS`] of a notification's kind.
pub fn kind_index(n: &Notification) -> usize {
    match n {
        Notification::Player { kind, .. } => *kind as usize,
        Notification::Occupancy { .. } => KINDS.len() - 1,
    }
}

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// What the job measures about itself, besides the source counters.
pub struct Metrics {
    pub notifications: [AtomicU64; 5],
    /// From a time completing (its last partition passing it) to its
    /// notifications being handed to the output, seconds.
    pub completion: Histogram,
    /// Request latency per endpoint, seconds.
    http: Histograms,
    /// Updates held in differential's arrangements, all workers together.
    pub arrangement_records: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            notifications: Default::default(),
            completion: latency_histogram(),
            http: Family::new_with_constructor(latency_histogram),
            arrangement_records: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    pub fn http(&self, endpoint: &'static str, d: Duration) {
        self.http
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .observe(d.as_secs_f64());
    }
}

/// Labelled gauge values read for one scrape, written in the order given.
#[derive(Debug)]
struct Gauges<V>(Vec<(Labels, V)>);

impl<V: EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Gauges<V> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, v) in &self.0 {
            encoder.encode_family(labels)?.encode_gauge(v)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A partition's frontier: ms of event time, or `+Inf` once closed.
#[derive(Debug)]
struct Frontier(Option<u64>);

impl EncodeGaugeValue for Frontier {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(f) => i64::try_from(f).unwrap_or(i64::MAX).encode(encoder),
            None => f64::INFINITY.encode(encoder),
        }
    }
}

/// A counter holding `value`, for a scrape.
fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// A gauge holding `value`, for a scrape.
fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

fn whole(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn labels(key: &'static str, value: impl ToString) -> Labels {
    vec![(key, value.to_string())]
}

/// A counter per value of label `key`, each at its count.
fn counters<V: ToString>(
    key: &'static str,
    counts: impl IntoIterator<Item = (V, u64)>,
) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for (value, n) in counts {
        family.get_or_create(&labels(key, value)).inc_by(n);
    }
    family
}

/// The exposition of everything measured, as `GET /metrics` answers it.
pub fn exposition(live: &Live) -> String {
    let mut r = Registry::default();
    let st = &live.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    r.register(
        "huntflow_records_read",
        "Records read from the inputs",
        counter(load(&st.read)),
    );
    r.register(
        "huntflow_records_accepted",
        "Records accepted",
        counter(load(&st.accepted)),
    );
    let rejected = counters(
        "reason",
        Reason::ALL.map(|reason| (reason.as_str(), load(&st.rejected[reason.index()]))),
    );
    r.register(
        "huntflow_records_rejected",
        "Records rejected, by reason",
        rejected,
    );
    if let Some(h) = &st.hunt_changes {
        let changes = counters(
            "outcome",
            [
                ("accepted", load(&h.accepted)),
                ("rejected", load(&h.rejected)),
            ],
        );
        r.register(
            "huntflow_hunt_changes",
            "Hunt change records, accepted or rejected",
            changes,
        );
    }
    if let Ok(parts) = st.partitions.lock() {
        let leading = parts.values().filter_map(|p| p.latest).max();
        let mut frontier = Vec::new();
        let mut lag = Vec::new();
        for (p, part) in parts.iter() {
            let f = (!part.closed).then_some(part.frontier);
            frontier.push((labels("partition", p), Frontier(f)));
            let behind = leading
                .unwrap_or(0)
                .saturating_sub(part.latest.unwrap_or(0));
            lag.push((labels("partition", p), whole(behind)));
        }
        let (frontier, lag) = (Gauges(frontier), Gauges(lag));
        r.register(
            "huntflow_partition_frontier",
            "Partition frontier max(0, M - L), ms of event time",
            frontier,
        );
        r.register(
            "huntflow_partition_event_time_lag_ms",
            "How far a partition's latest time is behind the leading partition's, ms",
            lag,
        );
    }
    let notifications = counters(
        "kind",
        KINDS
            .iter()
            .zip(&live.metrics.notifications)
            .map(|(k, c)| (k, load(c))),
    );
    r.register(
        "huntflow_notifications",
        "Notifications written, by kind",
        notifications,
    );
    r.register(
        "huntflow_completion_latency_seconds",
        "From a time completing (every partition past it) to its notifications being written",
        live.metrics.completion.clone(),
    );
    let (players, positions) = live.player_sizes();
    let (presence, eligible, as_of) = {
        let s = live.state.read().expect("state lock");
        let (presence, eligible) = s.sizes();
        (presence, eligible, s.as_of)
    };
    for (name, help, value) in [
        (
            "huntflow_state_players",
            "Players with live state",
            whole(players),
        ),
        (
            "huntflow_state_positions",
            "Players with a live position",
            whole(positions),
        ),
        (
            "huntflow_state_presence_pairs",
            "(player, zone) pairs present",
            whole(presence),
        ),
        (
            "huntflow_state_eligible_pairs",
            "(player, reward) pairs eligible",
            whole(eligible),
        ),
        (
            "huntflow_arrangement_records",
            "Updates held in differential's arrangements",
            live.metrics.arrangement_records.load(Ordering::Relaxed),
        ),
        (
            "huntflow_as_of",
            "The latest complete time the answers describe",
            as_of.map_or(-1, whole),
        ),
    ] {
        r.register(name, help, gauge(value));
    }
    r.register(
        "huntflow_http_request_duration_seconds",
        "HTTP request latency, by endpoint",
        live.metrics.http.clone(),
    );
    let mut out = String::with_capacity(8192);
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &r);
    out
}

/// Counts, from differential's own log events, the updates the worker's
/// arrangements hold: batches add their length, merges replace two batches
/// by one, drops remove. Must be called before the dataflow is built.
pub fn count_arrangements(worker: &mut timely::worker::Worker, metrics: Arc<Live>) {
    use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    registry.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_time, data| {
        let Some(events) = data.as_ref() else { return };
        let mut delta: i64 = 0;
        for (_, event) in events.iter() {
            match event {
                DifferentialEvent::Batch(b) => delta += b.length as i64,
                DifferentialEvent::Merge(m) => {
                    if let Some(done) = m.complete {
                        delta += done as i64 - (m.length1 + m.length2) as i64;
                    }
                }
                DifferentialEvent::Drop(d) => delta -= d.length as i64,
                _ => {}
            }
        }
        if delta != 0 {
            metrics
                .metrics
                .arrangement_records
                .fetch_add(delta, Ordering::Relaxed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_indexes_name_the_kinds() {
        use crate::output::order::PlayerKind::*;
        for kind in [Exit, Enter, Ineligible, Eligible] {
            let n = Notification::Player {
                rank_priority: std::cmp::Reverse(0),
                player: "p".into(),
                kind,
                item: "i".into(),
            };
            assert_eq!(KINDS[kind_index(&n)], kind.as_str());
        }
        let n = Notification::Occupancy {
            zone: "z".into(),
            count: 1,
        };
        assert_eq!(KINDS[kind_index(&n)], "occupancy");
    }
}
