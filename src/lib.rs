//! huntflow: an event-processing engine for location-based games.
//!
//! ```text
//!            input                      dataflow                          output
//!  files / stdin ─► files ─┐                                         ┌─► file / stdout    (backfill)
//!                          ├─ events ─► facts ─► eligibility, ─► sink ─┤
//!  Kafka topic ──► kafka ──┘            (per     occupancy     (worker 0)└─► topic / file    (run)
//!                          │            player)  (differential)   └─► derived files, API
//!                          └─ rejects ───────────────────────► reject sink ─► file / topic
//!  job: one assembly of the above for both jobs; the continuous job adds
//!  snapshots, the advance log and resumption in its state directory.
//! ```
//!
//! Where an event goes, in order:
//! - read: [`input::reader`] (files, pipes), [`input::files`] (a backfill's
//!   partitions), [`input::kafka`] (the continuous job's partitions);
//! - validated: [`model::event`] (schema, in the contract's order) and
//!   [`input::admission`] (lateness, duplicates); rejects are
//!   [`input::reject`];
//! - turned into facts: [`dataflow::facts`] (per-player state);
//! - combined: [`dataflow::eligibility`], [`dataflow::occupancy`];
//! - ordered: [`output::order`]; formatted: [`output::format`], by every
//!   worker for its share ([`output::runs`]) or by worker 0 alone;
//! - written: [`output::sink`] or [`output::runs`] through
//!   [`output::chain`] to [`output::line`], [`output::file`] or
//!   [`output::kafka`], and [`output::rejects`];
//! - for both jobs at once: [`job::assemble`]; [`job::backfill`],
//!   [`job::continuous`]; as one process or a cluster of them:
//!   [`job::cluster`].
//!
//! Besides: [`model::hunt`] and [`model::zones`] (the hunt and its
//! geometry), [`kafka`] (client configuration, producer, admin, tools),
//! [`serve`] (the analysts' HTTP API; [`serve::cluster`] reaches the
//! players of a cluster's other processes), [`generate`] (seeded synthetic
//! hunts and datasets). The contract is `docs/spec.md`; code cites its
//! sections as `docs/spec.md §N`.
pub mod dataflow;
pub mod generate;
pub mod input;
pub mod job;
pub mod kafka;
pub mod model;
pub mod output;
pub mod serve;
