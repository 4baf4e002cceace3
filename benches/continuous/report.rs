//! Summaries of a latency phase: quantiles, a series of p99 per bucket of
//! send time with the job's snapshots marked, latency near snapshots and
//! elsewhere, and how far the output's progress lags behind the input.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::common::{quantile, Quantiles};
use super::feed::Sent;
use super::job::Snapshot;

/// Latency samples: (send time of the event, ms), in send order.
pub type Samples = Vec<(Instant, f64)>;

/// How far from a snapshot's commit an event is counted as "near" it.
pub const NEAR: Duration = Duration::from_millis(500);

fn secs_since(t: Instant, origin: Instant) -> f64 {
    t.checked_duration_since(origin).map_or_else(
        || -origin.duration_since(t).as_secs_f64(),
        |d| d.as_secs_f64(),
    )
}

/// The samples' p50/p90/p99/max, or None without samples.
pub fn quantiles(samples: &[(Instant, f64)]) -> Option<Quantiles> {
    (!samples.is_empty()).then(|| Quantiles::of(samples.iter().map(|s| s.1).collect(), "samples"))
}

fn p99(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(quantile(values, 0.99))
}

/// The commit moments of the snapshots committed between `from` and `to`.
pub fn commits_within(snapshots: &[Snapshot], from: Instant, to: Instant) -> Vec<Instant> {
    snapshots
        .iter()
        .filter_map(|s| s.committed)
        .filter(|&c| c >= from && c <= to)
        .collect()
}

/// The p99 of samples sent within [`NEAR`] of a commit, and of the others.
pub fn near_and_elsewhere(
    samples: &[(Instant, f64)],
    commits: &[Instant],
) -> (Option<f64>, Option<f64>, usize) {
    let near = |t: Instant| {
        commits.iter().any(|&c| {
            let d = if t > c { t - c } else { c - t };
            d <= NEAR
        })
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for &(t, ms) in samples {
        if near(t) {
            a.push(ms);
        } else {
            b.push(ms);
        }
    }
    let n = a.len();
    (p99(&mut a), p99(&mut b), n)
}

/// One line per second from `from`: the p99 of each `bucket` of send time
/// (`*` where a snapshot was committed within the bucket, `-` for an empty
/// bucket), and the number of samples.
pub fn series(
    samples: &[(Instant, f64)],
    from: Instant,
    to: Instant,
    bucket: Duration,
    commits: &[Instant],
) -> String {
    let per_row = (1000 / bucket.as_millis().max(1)).max(1) as usize;
    let buckets =
        (to.saturating_duration_since(from).as_secs_f64() / bucket.as_secs_f64()) as usize;
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); buckets];
    for &(t, ms) in samples {
        let i = (t.saturating_duration_since(from).as_secs_f64() / bucket.as_secs_f64()) as usize;
        if let Some(v) = values.get_mut(i) {
            v.push(ms);
        }
    }
    let mut out = String::new();
    for (row, chunk) in values.chunks_mut(per_row).enumerate() {
        let start = row * per_row;
        let _ = write!(
            out,
            "    {:>5.2} s  p99",
            (start as f64) * bucket.as_secs_f64()
        );
        let mut n = 0;
        for (j, v) in chunk.iter_mut().enumerate() {
            n += v.len();
            let b0 = from + bucket * (start + j) as u32;
            let mark = if commits.iter().any(|&c| c >= b0 && c < b0 + bucket) {
                "*"
            } else {
                " "
            };
            match p99(v) {
                Some(p) => {
                    let _ = write!(out, " {p:>7.1}{mark}");
                }
                None => {
                    let _ = write!(out, " {:>7}{mark}", "-");
                }
            }
        }
        let _ = writeln!(out, "   ({n} events)");
    }
    out
}

/// Snapshot numbers and moments relative to `origin`, in seconds.
pub fn snapshot_times(snapshots: &[Snapshot], origin: Instant) -> String {
    let mut out = String::new();
    for s in snapshots {
        let at = |t: Option<Instant>| {
            t.map_or("?".to_string(), |t| {
                format!("{:+.3} s", secs_since(t, origin))
            })
        };
        let _ = write!(
            out,
            " #{} writing {} committed {};",
            s.number,
            at(s.writing),
            at(s.committed)
        );
    }
    out
}

/// The output's lag behind the input in event time (ms): for each progress
/// record read in `[from, to]`, the largest ts sent by then minus its `T`.
/// Returns the medians over the first and the last second, and the max.
pub fn progress_lag(
    sent: &Sent,
    progress: &[(u64, Instant)],
    from: Instant,
    to: Instant,
) -> Option<(f64, f64, f64)> {
    let lags: Vec<(Instant, f64)> = progress
        .iter()
        .filter(|(_, at)| *at >= from && *at <= to)
        .filter_map(|&(t, at)| Some((at, sent.ts_sent_by(at)? as f64 - t as f64)))
        .collect();
    let median = |from: Instant, to: Instant| {
        let mut v: Vec<f64> = lags
            .iter()
            .filter(|(a, _)| *a >= from && *a <= to)
            .map(|l| l.1)
            .collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| quantile(&v, 0.5))
    };
    let second = Duration::from_secs(1);
    let first = median(from, from + second)?;
    let last = median(to - second, to)?;
    let max = lags.iter().map(|l| l.1).fold(f64::MIN, f64::max);
    Some((first, last, max))
}

/// The p50 of the samples sent in the first and in the last `span` of
/// `[from, to]`.
pub fn drift(
    samples: &[(Instant, f64)],
    from: Instant,
    to: Instant,
    span: Duration,
) -> (Option<f64>, Option<f64>) {
    let p50 = |a: Instant, b: Instant| {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|(t, _)| *t >= a && *t < b)
            .map(|s| s.1)
            .collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| quantile(&v, 0.5))
    };
    (p50(from, from + span), p50(to - span, to))
}
