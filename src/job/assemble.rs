//! One assembly for both jobs: the inputs (file sources or the Kafka
//! source) → the dataflow → the notification sink, writing through one
//! output chain (destination, derived interval files, API), and the rejects
//! sink.
//!
//! ```text
//!  Inputs { events ──► dataflow::build ──► probe ──► notification sink (worker 0)
//!           notices ──┘ (hunt versions)         │       └► Chain: destination ► derived ► API
//!                                               ├─ and a topic's partitions, each by its owner (every worker)
//!                                               └─ or: runs formatted on every worker ─► merged on worker 0 ─► Chain
//!           rejects ─────────────────────────────────► reject sink ► file / topic }
//! ```
//!
//! The notifications are sorted and formatted either by worker 0 alone
//! ([`Writer::Single`]) or by every worker for its share, worker 0 merging
//! ([`Writer::Parallel`], [`crate::output::runs`]); the bytes are the same.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::dataflow::{self, facts::FactsHandle};
use crate::input::Inputs;
use crate::model::versions::SharedVersions;
use crate::output::chain::Chain;
use crate::output::derived::{DerivedTap, SharedDerived};
use crate::output::rejects::{self, SharedRejects, When, Written};
use crate::output::runs;
use crate::output::sink::{self, ErrorSlot, NotificationOutput};
use crate::output::MarkSlot;
use crate::serve::{Live, LiveTap};

/// What one worker's part of a job is built with.
pub struct Assembly {
    pub versions: SharedVersions,
    pub dataflow: dataflow::Config,
    /// Worker 0's output chain (see [`chain`]); `None` on the others.
    pub output: Option<Box<dyn NotificationOutput>>,
    /// Where rejects go: on worker 0 with [`When::Complete`], on every
    /// worker with [`When::AsRead`].
    pub rejects: Option<SharedRejects>,
    pub when: When,
    /// Where the notification sinks leave the outputs' marks for snapshots.
    pub marks: Option<MarkSlot>,
    /// A notifications topic written by partition owners (on every worker,
    /// with the single writer).
    pub owned: Option<OwnedTopic>,
    /// The first write error of either sink.
    pub errors: ErrorSlot,
    /// Follows the completed output frontier.
    pub probe: ProbeHandle<u64>,
}

/// This worker's writer of the partitions it owns of a notifications
/// topic of `partitions` partitions.
pub struct OwnedTopic {
    pub writer: Box<dyn NotificationOutput>,
    pub partitions: u32,
    /// Whether worker 0's output chain needs the notifications too (for
    /// the API or derived files); else it follows only their frontier.
    pub tapped: bool,
}

/// Handles on what was built.
pub struct Assembled {
    pub facts: FactsHandle,
    /// Rejects this worker's sink has written.
    pub rejects_written: Written,
}

/// Who sorts and formats the notifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Writer {
    /// Worker 0 alone ([`sink::notification_sink`]).
    #[default]
    Single,
    /// Every worker its share; worker 0 merges ([`runs::parallel_sink`]).
    Parallel,
}

/// Builds the dataflow and both sinks over `inputs`, with a single writer.
pub fn assemble(inputs: Inputs<'_>, a: Assembly) -> Assembled {
    assemble_with(inputs, a, Writer::Single)
}

/// Builds the dataflow and both sinks over `inputs`, the notifications
/// sorted and formatted by `writer`. Every worker must be given the same
/// `writer`; the parallel writer takes no snapshots (backfills).
pub fn assemble_with(inputs: Inputs<'_>, a: Assembly, writer: Writer) -> Assembled {
    let built = dataflow::build(inputs.events, inputs.control, a.dataflow);
    let changes = built.changes.inner.probe_with(&a.probe);
    let mut changes = changes;
    if let Some(owned) = a.owned {
        sink::owned_notification_sink(
            changes.clone(),
            built.control.clone(),
            a.versions.clone(),
            (owned.writer, owned.partitions),
            a.marks.clone(),
            a.errors.clone(),
        );
        if !owned.tapped {
            changes = changes.filter(|_| false);
        }
    }
    match writer {
        Writer::Single => sink::notification_sink(
            changes,
            built.control,
            a.versions,
            a.output,
            a.marks,
            a.errors.clone(),
        ),
        Writer::Parallel => {
            runs::parallel_sink(changes, a.versions, a.output, a.errors.clone(), &built.done)
        }
    }
    let rejects_written = rejects::reject_sink(inputs.rejects, a.rejects, a.when, a.errors);
    Assembled {
        facts: built.facts,
        rejects_written,
    }
}

/// The parts of worker 0's output chain.
pub struct Outputs {
    /// Where notifications are written.
    pub destination: Box<dyn NotificationOutput>,
    pub derived: Option<SharedDerived>,
    pub live: Option<Arc<Live>>,
    /// A restarted job's snapshot frontier (0 otherwise).
    pub below: u64,
    /// Where the written frontier is published.
    pub written: Option<Arc<AtomicU64>>,
}

/// The output chain, always in one order: the destination, then the
/// derived interval files, then the API.
pub fn chain(o: Outputs) -> Box<dyn NotificationOutput> {
    let mut chain = Chain::new(o.destination, o.below);
    if let Some(d) = o.derived {
        chain = chain.tap(Box::new(DerivedTap(d)));
    }
    if let Some(live) = o.live {
        chain = chain.tap(Box::new(LiveTap::new(live)));
    }
    if let Some(w) = o.written {
        chain = chain.publish(w);
    }
    Box::new(chain)
}
