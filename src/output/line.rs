//! Notifications as JSON Lines to a byte stream (a file or standard
//! output), with progress records when asked for, and the pacing of
//! progress records that every output shares.

use std::io::Write;

use super::format::{progress_record, LinesAt};
use super::order::Notification;
use super::runs::Merged;
use super::sink::NotificationOutput;
use super::OutputError;

/// When a progress record is due: for a frontier above the last one
/// recorded, and at most once per `every` (the end of the stream is always
/// due). Shared by every output that writes progress records.
pub struct ProgressPacer {
    last: Option<u64>,
    at: std::time::Instant,
    every: std::time::Duration,
    /// A higher frontier came too soon after the last record: it is due
    /// once `every` has passed.
    held: Option<u64>,
}

impl ProgressPacer {
    /// Starting after frontier `after` (a restarted job: its snapshot's),
    /// or from the first frontier above 0 when `None`.
    pub fn new(every: std::time::Duration, after: Option<u64>) -> Self {
        ProgressPacer {
            last: after,
            at: std::time::Instant::now(),
            every,
            held: None,
        }
    }

    /// The progress time to record now for `frontier` (`None`: the stream
    /// ended, recorded as `u64::MAX`), if one is due.
    pub fn due(&mut self, frontier: Option<u64>) -> Option<u64> {
        let f = frontier.unwrap_or(u64::MAX);
        let rises = self.last.map_or(f > 0, |last| f > last);
        let time = frontier.is_none() || self.last.is_none() || self.at.elapsed() >= self.every;
        self.held = (rises && !time).then_some(f);
        if !(rises && time) {
            return None;
        }
        Some(self.record(f))
    }

    fn record(&mut self, f: u64) -> u64 {
        self.held = None;
        self.last = Some(f);
        self.at = std::time::Instant::now();
        f
    }

    /// How long until a held-back frontier is due (`None`: none held).
    pub fn held(&self) -> Option<std::time::Duration> {
        self.held
            .map(|_| self.every.saturating_sub(self.at.elapsed()))
    }

    /// The frontier held back, if it is at or below `upto`, to record now.
    pub fn take_held(&mut self, upto: u64) -> Option<u64> {
        let f = self.held.filter(|&f| f <= upto)?;
        Some(self.record(f))
    }
}

/// How much is buffered before it goes to the writer: at least a buffered
/// writer's whole buffer, which then passes it on without copying it.
const DRAIN_AT: usize = 1 << 20;

/// JSON Lines to a byte stream, with optional progress records.
pub struct LineOutput {
    /// What the stream is called in errors (a path, or `-`).
    name: String,
    writer: Box<dyn Write + Send>,
    buf: Vec<u8>,
    progress: Option<ProgressPacer>,
}

impl LineOutput {
    /// With `progress_records`, a progress record for every new frontier.
    pub fn new(name: String, writer: Box<dyn Write + Send>, progress_records: bool) -> Self {
        let pacer = progress_records.then(|| ProgressPacer::new(std::time::Duration::ZERO, None));
        Self::paced(name, writer, pacer)
    }

    /// Progress records when `pacer` says so (none without one).
    pub fn paced(
        name: String,
        writer: Box<dyn Write + Send>,
        pacer: Option<ProgressPacer>,
    ) -> Self {
        LineOutput {
            name,
            writer,
            buf: Vec::with_capacity(DRAIN_AT),
            progress: pacer,
        }
    }

    /// Hands what is buffered to the writer (without flushing it).
    pub fn hand_over(&mut self) -> Result<(), OutputError> {
        self.drain(false)
    }

    fn drain(&mut self, flush: bool) -> Result<(), OutputError> {
        let result = self.writer.write_all(&self.buf).and_then(|_| {
            if flush {
                self.writer.flush()
            } else {
                Ok(())
            }
        });
        self.buf.clear();
        result.map_err(|source| OutputError::io(&self.name, source))
    }
}

impl NotificationOutput for LineOutput {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        let lines = LinesAt::new(time);
        for n in ns {
            lines.push(&mut self.buf, n);
        }
        if self.buf.len() >= DRAIN_AT {
            self.drain(false)?;
        }
        Ok(())
    }

    fn write_merged(&mut self, _time: u64, merged: &Merged<'_>) -> Result<(), OutputError> {
        merged.write_lines(&mut self.buf);
        if self.buf.len() >= DRAIN_AT {
            self.drain(false)?;
        }
        Ok(())
    }

    fn progress_due_in(&self) -> Option<std::time::Duration> {
        self.progress.as_ref().and_then(ProgressPacer::held)
    }

    fn flush_progress(&mut self, upto: u64) -> Result<(), OutputError> {
        if let Some(f) = self.progress.as_mut().and_then(|p| p.take_held(upto)) {
            let _ = writeln!(self.buf, "{}", progress_record(f));
        }
        Ok(())
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        // The end of a stream needs no record: every time is complete.
        if let (Some(f), Some(pacer)) = (frontier, self.progress.as_mut()) {
            if pacer.due(Some(f)).is_some() {
                let _ = writeln!(self.buf, "{}", progress_record(f));
            }
        }
        if !self.buf.is_empty() || frontier.is_none() {
            self.drain(true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ProgressPacer;
    use std::time::Duration;

    #[test]
    fn a_frontier_held_back_by_the_pace_is_due_later() {
        let mut pacer = ProgressPacer::new(Duration::from_millis(40), None);
        assert_eq!(pacer.due(Some(5)), Some(5), "the first frontier at once");
        assert_eq!(pacer.held(), None);
        assert_eq!(pacer.due(Some(7)), None, "too soon");
        let wait = pacer.held().expect("7 is held back");
        assert!(wait <= Duration::from_millis(40), "{wait:?}");
        std::thread::sleep(wait);
        assert_eq!(pacer.due(Some(7)), Some(7), "due once the pace allows");
        assert_eq!(pacer.held(), None);
        assert_eq!(pacer.due(Some(7)), None, "recorded once");
        assert_eq!(pacer.due(None), Some(u64::MAX), "the end at once");
    }

    #[test]
    fn a_held_frontier_is_taken_for_a_snapshot_at_or_above_it() {
        let mut pacer = ProgressPacer::new(Duration::from_secs(60), None);
        assert_eq!(pacer.due(Some(5)), Some(5));
        assert_eq!(pacer.due(Some(9)), None, "too soon");
        assert_eq!(pacer.take_held(8), None, "a snapshot below it");
        assert_eq!(pacer.take_held(9), Some(9), "a snapshot at it");
        assert_eq!(pacer.held(), None);
        assert_eq!(pacer.take_held(9), None, "taken once");
        assert_eq!(pacer.due(Some(9)), None, "and recorded");
    }
}
