//! What the contract defines (docs/spec.md §3-§5): the event schema and its
//! validation ([`event`]), hunt definitions and their load-time checks
//! ([`hunt`]), and zone geometry with the index that finds the zones at a
//! point ([`zones`], each zone's test prepared by [`zone_test`]); hunt versions in effect at event times, their items
//! numbered across versions ([`versions`]).

pub mod event;
pub mod hunt;
pub mod versions;
pub mod zone_test;
pub mod zones;
