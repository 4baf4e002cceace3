//! Counters and histograms, written in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::output::order::Notification;

/// Bucket bounds, seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 16],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is either
    /// empty or `key="value",`.
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let bare = labels.trim_end_matches(',');
        let braces = if bare.is_empty() {
            String::new()
        } else {
            format!("{{{bare}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Notification kinds, in the order of [`Metrics::notifications`]: the
/// player kinds in [`PlayerKind`] order, then occupancy.
pub const KINDS: [&str; 5] = ["exit", "enter", "ineligible", "eligible", "occupancy"];

/// The index in [`KINDS`] of a notification's kind.
pub fn kind_index(n: &Notification) -> usize {
    match n {
        Notification::Player { kind, .. } => *kind as usize,
        Notification::Occupancy { .. } => KINDS.len() - 1,
    }
}

/// What the job measures about itself, besides the source counters.
#[derive(Default)]
pub struct Metrics {
    pub notifications: [AtomicU64; 5],
    /// From a time completing (its last partition passing it) to its
    /// notifications being handed to the output.
    pub completion: Histogram,
    /// Per endpoint.
    pub http: Mutex<Vec<(&'static str, Histogram)>>,
    /// Updates held in differential's arrangements, all workers together.
    pub arrangement_records: AtomicI64,
}

impl Metrics {
    pub fn http(&self, endpoint: &'static str, d: Duration) {
        if let Ok(mut h) = self.http.lock() {
            if let Some((_, hist)) = h.iter().find(|(e, _)| *e == endpoint) {
                hist.observe(d);
            } else {
                let hist = Histogram::default();
                hist.observe(d);
                h.push((endpoint, hist));
            }
        }
    }
}

/// Counts, from differential's own log events, the updates the worker's
/// arrangements hold: batches add their length, merges replace two batches
/// by one, drops remove. Must be called before the dataflow is built.
pub fn count_arrangements(
    worker: &mut timely::worker::Worker,
    metrics: std::sync::Arc<super::Live>,
) {
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

/// Writes a `# HELP` and `# TYPE` header.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_lines_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.write(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("x_count 2\n"));
    }

    #[test]
    fn kind_indexes_name_the_kinds() {
        use crate::output::order::PlayerKind::*;
        for kind in [Exit, Enter, Ineligible, Eligible] {
            let n = Notification::Player {
                rank_priority: std::cmp::Reverse(0),
                player: "p".into(),
                kind,
                item: 0,
            };
            assert_eq!(KINDS[kind_index(&n)], kind.as_str());
        }
        let n = Notification::Occupancy { zone: 0, count: 1 };
        assert_eq!(KINDS[kind_index(&n)], "occupancy");
    }
}
