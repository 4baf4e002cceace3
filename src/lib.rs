//! huntflow: an event-processing engine for location-based games.
//!
//! ```text
//!  files / stdin ──► source ─┐                                    ┌─► sink ──► file / stdout      (backfill)
//!                            ├─► dataflow (facts ─► eligibility, ─┤
//!  Kafka topic ──► kafka::source ┘      occupancy in differential)  └─► sink ──► kafka::output / file (run)
//!        │ rejects ──────────────────────────────────────────────────────────► rejects sink / topic
//!        └── run: snapshots + advance log in the state directory; resume after a restart
//! ```
//!
//! - [`event`]: the event schema and validation; [`hunt`]: hunt definitions;
//!   [`zones`]: the zone index.
//! - [`input`]: files and pipes, read without a worker waiting on a writer;
//!   [`source`]: partitions, admission (lateness, duplicates).
//! - [`dataflow`]: per-player facts, eligibility, occupancy.
//! - [`sink`]: SPEC-ordered notifications and rejects.
//! - [`backfill`]: the dataflow over files, to completion; [`derived`]:
//!   presence and eligibility intervals for offline analysis.
//! - [`kafka`]: client configuration, the Kafka source and outputs, produce
//!   and dump; [`run`]: the continuous job, its snapshots and resumption.
//! - [`serve`]: the analysts' HTTP API (queries, subscriptions, metrics).
//! - [`generate`]: seeded synthetic hunts and datasets.
pub mod backfill;
pub mod dataflow;
pub mod derived;
pub mod event;
pub mod generate;
pub mod hunt;
pub mod input;
pub mod kafka;
pub mod run;
pub mod serve;
pub mod sink;
pub mod source;
pub mod zones;
