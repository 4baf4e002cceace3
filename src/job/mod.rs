//! The jobs: one assembly ([`assemble`]) of inputs → dataflow → output
//! chain → sinks, used by the backfill over files ([`backfill`]) and the
//! continuous job on Kafka ([`continuous`]).

pub mod assemble;
pub mod backfill;
pub mod continuous;
