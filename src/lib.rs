//! huntflow: an event-processing engine for location-based games.
pub mod backfill;
pub mod dataflow;
pub mod event;
pub mod generate;
pub mod hunt;
pub mod sink;
pub mod source;
pub mod zones;
