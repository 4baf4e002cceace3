//! Occupancy: the number of players present in each zone.

use differential_dataflow::operators::count::CountTotal;
use differential_dataflow::VecCollection;

use crate::model::event::Id;

/// Builds occupancy(z) = |{p : presence(p, z)}| from presence(p, z), as
/// `(zone, count)` records; a zone with no player has no record.
pub fn build<'scope>(
    presence: VecCollection<'scope, u64, (Id, u32), isize>,
) -> VecCollection<'scope, u64, (u32, i64), isize> {
    presence
        .map(|(_, z)| z)
        .count_total()
        .map(|(z, n)| (z, n as i64))
}
