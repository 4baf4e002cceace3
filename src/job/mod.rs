//! The jobs: one assembly ([`assemble`]) of inputs → dataflow → output
//! chain → sinks, used by the backfill over files ([`backfill`]) and the
//! continuous job on Kafka ([`continuous`]); both run as one process or as
//! a cluster of processes ([`cluster`]).

pub mod assemble;
pub mod backfill;
pub mod cluster;
pub mod continuous;
