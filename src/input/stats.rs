//! What the sources have read: counters shared by every source of a job
//! (read, accepted, rejected by reason, bytes), where each partition
//! stands, and the read/accepted/rejected [`Summary`] (docs/spec.md §3).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::model::event::{Invalid, Reason};

/// Counters shared by every source of a run.
#[derive(Debug, Default)]
pub struct Stats {
    pub read: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: [AtomicU64; 8],
    pub bytes: AtomicU64,
    /// Read errors; a partition that fails to read is closed.
    pub errors: Mutex<Vec<InputError>>,
    /// Per partition: frontier, latest time, and (when `track` is set) when
    /// each frontier was reached.
    pub partitions: Mutex<BTreeMap<u32, PartitionProgress>>,
    /// Keep the history that [`Stats::completed_at`] needs.
    pub track: std::sync::atomic::AtomicBool,
    /// Hunt change records accepted and rejected (docs/spec.md §9), when the
    /// job reads a change log or a hunt topic.
    pub hunt_changes: Option<HuntChangeCounts>,
}

/// Hunt change records accepted and rejected.
#[derive(Debug, Default)]
pub struct HuntChangeCounts {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

/// A partition that could not be read (or whose decisions could not be
/// logged).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{partition}: {message}")]
pub struct InputError {
    pub partition: String,
    pub message: String,
    /// Whether starting again can get past it (a broker refusing a request),
    /// or not (a file that cannot be read, a state directory that cannot be
    /// written).
    pub transient: bool,
}

/// Where one partition stands.
#[derive(Debug, Default, Clone)]
pub struct PartitionProgress {
    pub frontier: u64,
    pub latest: Option<u64>,
    pub closed: bool,
    history: VecDeque<(u64, Instant)>,
}

impl Stats {
    /// Partition `p` stands at `frontier` (`None`: closed) with `latest`.
    pub fn progress(&self, p: u32, frontier: Option<u64>, latest: Option<u64>) {
        let Ok(mut parts) = self.partitions.lock() else {
            return;
        };
        let part = parts.entry(p).or_default();
        let f = frontier.unwrap_or(u64::MAX);
        if f != part.frontier || latest != part.latest {
            part.latest = latest;
            part.closed = frontier.is_none();
            if f > part.frontier || part.history.is_empty() {
                part.frontier = f;
                if self.track.load(Ordering::Relaxed) {
                    part.history.push_back((f, Instant::now()));
                }
            }
        }
    }

    /// When every partition had passed `f`: the completion instant of the
    /// times below `f`. Forgets what later calls (with larger `f`) cannot need.
    pub fn completed_at(&self, f: u64) -> Option<Instant> {
        let mut parts = self.partitions.lock().ok()?;
        let mut latest: Option<Instant> = None;
        for part in parts.values_mut() {
            while part.history.len() > 1 && part.history[1].0 <= f {
                part.history.pop_front();
            }
            let at = part
                .history
                .iter()
                .find(|(v, _)| *v >= f)
                .map(|(_, at)| *at)?;
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
        latest
    }

    /// What was read so far, as one batch.
    pub fn totals(&self) -> Counts {
        let mut rejected = [0; 8];
        for (n, slot) in rejected.iter_mut().zip(&self.rejected) {
            *n = slot.load(Ordering::Relaxed);
        }
        Counts {
            read: self.read.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected,
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Adds what one batch read.
    pub fn count(&self, c: &Counts) {
        self.read.fetch_add(c.read, Ordering::Relaxed);
        self.accepted.fetch_add(c.accepted, Ordering::Relaxed);
        for (slot, n) in self.rejected.iter().zip(&c.rejected) {
            if *n > 0 {
                slot.fetch_add(*n, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(c.bytes, Ordering::Relaxed);
    }

    /// Records an error of a partition.
    pub fn error(&self, e: InputError) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(e);
        }
    }

    /// The first error recorded.
    pub fn first_error(&self) -> Option<InputError> {
        self.errors.lock().ok().and_then(|e| e.first().cloned())
    }
}

/// What one batch of a source read, added to [`Stats`] at once.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub read: u64,
    pub accepted: u64,
    pub rejected: [u64; 8],
    pub bytes: u64,
}

impl Counts {
    /// What was read since `before` (an earlier total of the same source).
    pub fn since(&self, before: &Counts) -> Counts {
        let mut rejected = [0; 8];
        for ((n, now), then) in rejected
            .iter_mut()
            .zip(&self.rejected)
            .zip(&before.rejected)
        {
            *n = now.saturating_sub(*then);
        }
        Counts {
            read: self.read.saturating_sub(before.read),
            accepted: self.accepted.saturating_sub(before.accepted),
            rejected,
            bytes: self.bytes.saturating_sub(before.bytes),
        }
    }

    pub fn reject(&mut self, invalid: &Invalid) {
        if let Some(n) = self.rejected.get_mut(invalid.reason.index()) {
            *n += 1;
        }
    }
}

/// Records read, accepted, and rejected by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub accepted: u64,
    /// Only reasons with a non-zero count.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Hunt change records `(accepted, rejected)`, when a change log or a
    /// hunt topic was read.
    pub hunt_changes: Option<(u64, u64)>,
}

impl Summary {
    pub fn from_stats(stats: &Stats) -> Self {
        let mut rejected = BTreeMap::new();
        for reason in Reason::ALL {
            let n = stats.rejected[reason.index()].load(Ordering::Relaxed);
            if n > 0 {
                rejected.insert(reason.as_str(), n);
            }
        }
        Summary {
            read: stats.read.load(Ordering::Relaxed),
            accepted: stats.accepted.load(Ordering::Relaxed),
            rejected,
            hunt_changes: stats.hunt_changes.as_ref().map(|h| {
                (
                    h.accepted.load(Ordering::Relaxed),
                    h.rejected.load(Ordering::Relaxed),
                )
            }),
        }
    }

    /// `{"read":N,"accepted":N,"rejected":{"<reason>":N,...}}`, reasons in
    /// the contract's order, then `"hunt_changes":{"accepted":N,"rejected":N}`
    /// when changes were read.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"read\":{},\"accepted\":{},\"rejected\":{{",
            self.read, self.accepted
        );
        let mut first = true;
        for reason in Reason::ALL {
            if let Some(n) = self.rejected.get(reason.as_str()) {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!("\"{}\":{n}", reason.as_str()));
            }
        }
        s.push('}');
        if let Some((accepted, rejected)) = self.hunt_changes {
            s.push_str(&format!(
                ",\"hunt_changes\":{{\"accepted\":{accepted},\"rejected\":{rejected}}}"
            ));
        }
        s.push('}');
        s
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}
