//! Starting to read a partition at an offset, robustly.
//!
//! Reading resumes at arbitrary offsets: a snapshot's, or where a paused
//! partition stopped. Kafka returns the record batch that contains the
//! offset and the client drops the records before it. Some Kafka-compatible
//! brokers (tansu 0.6 among them) instead answer a fetch that starts inside
//! a batch with the *next* batch, or with nothing at all, which would
//! silently skip records. So after positioning at `target`, the first
//! record must be at or before `target`; if it is later, or nothing comes
//! for a while without the end of the partition being reported, reading
//! restarts further back (doubling the distance, down to the partition's
//! start) and the records before `target` are skipped by the caller. A gap
//! seen while reading sequentially is a real one (compaction, transaction
//! markers) and is accepted.

use std::time::{Duration, Instant};

/// How long a positioned partition may stay silent before reading restarts
/// further back.
pub const SILENCE: Duration = Duration::from_secs(2);
const FIRST_STEP: i64 = 1024;

/// Where reading of one partition stands after positioning.
#[derive(Clone, Debug)]
pub struct Positioning {
    /// The offset reading must continue from.
    pub target: i64,
    /// Where the consumer was last told to fetch from.
    pub from: i64,
    step: i64,
    since: Instant,
}

/// What to do with a record, or after a silence.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// In place: records from here on are read in order.
    Confirmed,
    /// The broker skipped past the target: fetch again from this offset.
    Refetch(i64),
    /// Keep waiting.
    Wait,
}

impl Positioning {
    pub fn new(target: i64) -> Self {
        Positioning {
            target,
            from: target,
            step: FIRST_STEP,
            since: Instant::now(),
        }
    }

    fn back_off(&mut self) -> Verdict {
        if self.from == 0 {
            // Read from the start and still past the target: a real gap.
            return Verdict::Confirmed;
        }
        self.from = self.target.saturating_sub(self.step).max(0);
        self.step = self.step.saturating_mul(2);
        self.since = Instant::now();
        Verdict::Refetch(self.from)
    }

    /// The first record after positioning (or any record while unconfirmed).
    pub fn record(&mut self, offset: i64) -> Verdict {
        if offset <= self.target {
            Verdict::Confirmed
        } else {
            self.back_off()
        }
    }

    /// Nothing arrived: after [`SILENCE`], fetch from further back.
    pub fn silent(&mut self) -> Verdict {
        if self.since.elapsed() < SILENCE || self.from == 0 {
            Verdict::Wait
        } else {
            self.back_off()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_at_or_before_the_target_confirms() {
        assert_eq!(Positioning::new(10).record(10), Verdict::Confirmed);
        assert_eq!(Positioning::new(10).record(3), Verdict::Confirmed);
    }

    #[test]
    fn a_skip_backs_off_to_the_start_then_is_accepted() {
        let mut p = Positioning::new(5000);
        assert_eq!(p.record(8000), Verdict::Refetch(5000 - 1024));
        assert_eq!(p.record(8000), Verdict::Refetch(5000 - 2048));
        assert_eq!(p.record(8000), Verdict::Refetch(5000 - 4096));
        assert_eq!(p.record(8000), Verdict::Refetch(0));
        assert_eq!(p.record(8000), Verdict::Confirmed);
    }

    #[test]
    fn silence_waits_first() {
        let mut p = Positioning::new(100);
        assert_eq!(p.silent(), Verdict::Wait);
    }
}
