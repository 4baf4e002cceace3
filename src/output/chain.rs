//! The output chain: the one order in which every job hands a completed
//! time's notifications on — the destination (a file, standard output or a
//! topic) first, then the taps that observe what was written (the derived
//! interval files, the API's live state), in the order given.
//!
//! A restarted job re-derives its restored state at a time below its
//! snapshot's frontier; those notifications were written before the
//! restart, so the chain hands them only to [`NotificationOutput::restored`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::order::Notification;
use super::runs::Merged;
use super::sink::NotificationOutput;
use super::{Marks, OutputError};

/// The destination and its taps.
pub struct Chain {
    outputs: Vec<Box<dyn NotificationOutput>>,
    /// Times below it are restored state, re-derived.
    below: u64,
    /// Where the written frontier is published (every time below it has
    /// been handed to every output).
    written: Option<Arc<AtomicU64>>,
    /// The frontier last handed to the outputs.
    last: Option<Option<u64>>,
}

impl Chain {
    /// A chain writing to `destination`; times below `below` are restored.
    pub fn new(destination: Box<dyn NotificationOutput>, below: u64) -> Self {
        Chain {
            outputs: vec![destination],
            below,
            written: None,
            last: None,
        }
    }

    /// Publishes the written frontier in `written` (`u64::MAX` once the
    /// stream ended).
    pub fn publish(mut self, written: Arc<AtomicU64>) -> Self {
        self.written = Some(written);
        self
    }

    /// Adds a tap after what the chain has.
    pub fn tap(mut self, tap: Box<dyn NotificationOutput>) -> Self {
        self.outputs.push(tap);
        self
    }
}

impl NotificationOutput for Chain {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        for out in &mut self.outputs {
            if time < self.below {
                out.restored(time, ns)?;
            } else {
                out.write_time(time, ns)?;
            }
        }
        Ok(())
    }

    fn flush_progress(&mut self, upto: u64) -> Result<(), OutputError> {
        for out in &mut self.outputs {
            out.flush_progress(upto)?;
        }
        Ok(())
    }

    fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        for out in &mut self.outputs {
            out.mark(marks)?;
        }
        Ok(())
    }

    fn write_merged(&mut self, time: u64, merged: &Merged<'_>) -> Result<(), OutputError> {
        for out in &mut self.outputs {
            if time < self.below {
                out.restored(time, merged.notifications())?;
            } else {
                out.write_merged(time, merged)?;
            }
        }
        Ok(())
    }

    fn progress_due_in(&self) -> Option<std::time::Duration> {
        self.outputs
            .iter()
            .filter_map(|o| o.progress_due_in())
            .min()
    }

    /// Hands a new frontier to every output; the same frontier again only
    /// to those that held a progress record back.
    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        let again = self.last == Some(frontier);
        self.last = Some(frontier);
        for out in &mut self.outputs {
            if !again || out.progress_due_in().is_some() {
                out.progress(frontier)?;
            }
        }
        if let Some(w) = &self.written {
            w.store(frontier.unwrap_or(u64::MAX), Ordering::Release);
        }
        Ok(())
    }
}

/// The destination of a chain whose notifications are written elsewhere
/// (a topic's partitions, each by the worker that owns it): the chain keeps
/// only its taps.
pub struct Elsewhere;

impl NotificationOutput for Elsewhere {
    fn write_time(&mut self, _: u64, _: &[Notification]) -> Result<(), OutputError> {
        Ok(())
    }

    fn progress(&mut self, _: Option<u64>) -> Result<(), OutputError> {
        Ok(())
    }
}
