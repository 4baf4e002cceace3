//! Where records come from and how they are admitted: every source turns
//! raw records into accepted events and rejects, both as data, with its
//! capability at the partition frontier (docs/spec.md §2, §3).
//!
//! - [`reader`]: files and pipes, read without a worker waiting on a writer;
//! - [`files`]: the backfill's sources, one per input file;
//! - [`kafka`]: the continuous job's source, one per worker, over the
//!   topic partitions it owns;
//! - [`admission`]: validation in the contract's order, lateness and
//!   duplicates;
//! - [`changes`]: hunt change records, the versions they bring; a
//!   backfill's change log; [`hunt_topic`]: the continuous job's;
//! - [`reject`]: the one reject type; [`stats`]: counts and progress.

pub mod admission;
pub mod changes;
pub mod files;
pub mod hunt_topic;
pub mod kafka;
pub mod reader;
pub mod reject;
pub mod stats;

use timely::dataflow::operators::core::OkErr;
use timely::dataflow::Stream;

use crate::dataflow::Control;
use crate::model::event::Event;
use reject::Reject;

/// One record as a source emits it: an accepted event or a reject.
pub type Ingested = Result<Event, Reject>;

/// The streams the sources give the job: accepted events and rejects,
/// each at the frontier of the partition it was read from, and the control
/// records (hunt versions taking effect later, snapshots), each at its time.
pub struct Inputs<'scope> {
    pub events: Stream<'scope, u64, Vec<Event>>,
    pub rejects: Stream<'scope, u64, Vec<Reject>>,
    pub control: Option<Stream<'scope, u64, Vec<Control>>>,
}

/// Splits a source's records into [`Inputs`].
pub fn split<'scope>(records: Stream<'scope, u64, Vec<Ingested>>) -> Inputs<'scope> {
    let (events, rejects) = records.ok_err(|x| x);
    Inputs {
        events,
        rejects,
        control: None,
    }
}
