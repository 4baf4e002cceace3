//! Where results go. The dataflow's changes become notifications in the
//! contract's order ([`order`], [`format`]); the notification sink — one
//! writer on worker 0 ([`sink`]), or every worker sorting and formatting
//! its share and worker 0 merging ([`runs`]) — hands each completed time,
//! through the [`chain`], to a
//! destination — JSON Lines ([`line`], [`file`]) or a topic ([`kafka`]) —
//! and to the taps: the derived interval files ([`derived`]) and the API.
//! Rejects take one path too ([`rejects`]). After a restart, every
//! destination skips what it already holds ([`resume`]).

pub mod chain;
pub mod derived;
pub mod file;
pub mod format;
pub mod kafka;
pub mod line;
pub mod order;
pub mod rejects;
pub mod resume;
pub mod runs;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::kafka::producer::ProduceError;
use derived::OpenInterval;

/// The outputs of the continuous job, by the names their marks have in a
/// snapshot.
pub const NOTIFICATIONS: &str = "notifications";
pub const REJECTS: &str = "rejects";
pub const PRESENCE: &str = "presence";
pub const ELIGIBILITY: &str = "eligibility";

/// Where each output stood for a snapshot: per output, by name, per
/// partition the position of the first record it had not written (a
/// file's length, a topic partition's next offset); and with derived files,
/// the intervals then open.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    pub outputs: BTreeMap<String, Vec<i64>>,
    pub open: Option<Vec<OpenInterval>>,
    /// How many writers' marks these are (see [`Marks::merge`]).
    pub writers: usize,
}

impl Marks {
    /// Adds one writer's marks: writers of one output own distinct
    /// partitions and leave the others' at [`kafka::NOT_OWNED`], so the
    /// greater position of each partition is its owner's.
    pub fn merge(&mut self, other: Marks) {
        for (name, marks) in other.outputs {
            let mine = self.outputs.entry(name).or_default();
            if mine.len() < marks.len() {
                mine.resize(marks.len(), kafka::NOT_OWNED);
            }
            for (m, o) in mine.iter_mut().zip(marks) {
                *m = (*m).max(o);
            }
        }
        if other.open.is_some() {
            self.open = other.open;
        }
        self.writers += other.writers.max(1);
    }
}

/// The marks the notification sink took, by snapshot epoch.
pub type MarkSlot = Arc<Mutex<BTreeMap<u64, Marks>>>;

/// A write that failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or standard output refused a write (a full disk, a closed
    /// pipe): permanent, the job stops.
    #[error("{name}: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The Kafka producer refused a record or reported a failed delivery:
    /// starting again from the last snapshot can get past it.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// What a destination holds beyond the snapshot's mark is not what the
    /// job re-creates (it was written by another job): permanent.
    #[error("{name}: {message}")]
    Diverged { name: String, message: String },
}

impl OutputError {
    pub fn io(name: impl std::fmt::Display, source: std::io::Error) -> Self {
        OutputError::Io {
            name: name.to_string(),
            source,
        }
    }

    /// Whether starting again from the last snapshot can get past it.
    pub fn is_transient(&self) -> bool {
        matches!(self, OutputError::Produce(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(notifications: &[i64]) -> Marks {
        Marks {
            outputs: BTreeMap::from([(NOTIFICATIONS.to_string(), notifications.to_vec())]),
            ..Marks::default()
        }
    }

    #[test]
    fn each_partition_keeps_its_owners_mark() {
        let mut all = Marks::default();
        all.merge(marks(&[7, -1, 3, -1]));
        all.merge(marks(&[-1, 0, -1, 12]));
        assert_eq!(all.outputs[NOTIFICATIONS], [7, 0, 3, 12]);
        assert_eq!(all.writers, 2);
        let mut chain = Marks::default();
        chain.outputs.insert(REJECTS.into(), vec![5]);
        all.merge(chain);
        assert_eq!(all.outputs[REJECTS], [5]);
        assert_eq!(all.writers, 3);
    }
}
