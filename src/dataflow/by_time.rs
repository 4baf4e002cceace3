//! Records waiting for their time to complete, by time: what an operator
//! that handles each complete time at once (in time order) holds until its
//! input frontier passes it ([`ByTime`]), with the capability it keeps for
//! them ([`Held`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use timely::dataflow::operators::Capability;

/// Emptied buffers kept for the times to come, the largest kept (one time
/// may be huge: every position expiring at once) and the capacity a new
/// one starts with.
const SPARE_BUFFERS: usize = 64;
const SPARE_CAPACITY: usize = 1 << 10;
const FIRST_CAPACITY: usize = 64;

/// A hash map from time to its records (a batch's records come in many
/// times, interleaved, so a search per record would cost more) and the
/// times in a heap, earliest first.
pub(crate) struct ByTime<D> {
    times: FxHashMap<u64, Vec<D>>,
    order: BinaryHeap<Reverse<u64>>,
    spare: Vec<Vec<D>>,
}

impl<D> Default for ByTime<D> {
    fn default() -> Self {
        ByTime {
            times: FxHashMap::default(),
            order: BinaryHeap::new(),
            spare: Vec::new(),
        }
    }
}

impl<D> ByTime<D> {
    pub(crate) fn push(&mut self, time: u64, record: D) {
        let (order, spare) = (&mut self.order, &mut self.spare);
        self.times
            .entry(time)
            .or_insert_with(|| {
                order.push(Reverse(time));
                spare
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY))
            })
            .push(record);
    }

    /// The earliest time below `limit` (any, when `None`) and its records.
    pub(crate) fn take_before(&mut self, limit: Option<u64>) -> Option<(u64, Vec<D>)> {
        let &Reverse(time) = self.order.peek()?;
        if limit.is_some_and(|f| time >= f) {
            return None;
        }
        self.order.pop();
        let records = self
            .times
            .remove(&time)
            .expect("every time listed has records");
        Some((time, records))
    }

    /// Keeps an emptied buffer for a later time.
    pub(crate) fn recycle(&mut self, mut buffer: Vec<D>) {
        buffer.clear();
        if self.spare.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_CAPACITY {
            self.spare.push(buffer);
        }
    }

    /// The earliest time waiting, if any.
    pub(crate) fn first_time(&self) -> Option<u64> {
        self.order.peek().map(|&Reverse(t)| t)
    }
}

/// [`ByTime`] and a capability at or below every time waiting, downgraded
/// as the times are taken: what a unary operator keeps that emits each
/// complete time's output at that time.
pub(crate) struct Held<D> {
    records: ByTime<D>,
    cap: Option<Capability<u64>>,
}

impl<D> Default for Held<D> {
    fn default() -> Self {
        Held {
            records: ByTime::default(),
            cap: None,
        }
    }
}

impl<D> Held<D> {
    /// Keeps `record` for `time`; `delayed` gives a capability for `time`
    /// (asked for only when `time` is below every time held).
    pub(crate) fn push(&mut self, time: u64, record: D, delayed: impl FnOnce() -> Capability<u64>) {
        if self.cap.as_ref().is_none_or(|c| time < *c.time()) {
            self.cap = Some(delayed());
        }
        self.records.push(time, record);
    }

    /// See [`ByTime::take_before`].
    pub(crate) fn take_before(&mut self, limit: Option<u64>) -> Option<(u64, Vec<D>)> {
        self.records.take_before(limit)
    }

    /// See [`ByTime::recycle`].
    pub(crate) fn recycle(&mut self, buffer: Vec<D>) {
        self.records.recycle(buffer);
    }

    /// A capability for `time`, one taken and not yet released.
    pub(crate) fn at(&self, time: u64) -> Capability<u64> {
        self.cap
            .as_ref()
            .expect("a capability for every time waiting")
            .delayed(&time)
    }

    /// Keeps the capability at the earliest time still waiting, or drops
    /// it when none is.
    pub(crate) fn release(&mut self) {
        match (self.records.first_time(), self.cap.as_mut()) {
            (Some(next), Some(cap)) => cap.downgrade(&next),
            _ => self.cap = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByTime;

    #[test]
    fn times_come_out_in_order_below_the_limit() {
        let mut by = ByTime::default();
        for (t, r) in [(5, 'a'), (3, 'b'), (5, 'c'), (9, 'd'), (3, 'e')] {
            by.push(t, r);
        }
        assert_eq!(by.first_time(), Some(3));
        assert_eq!(by.take_before(Some(3)), None);
        assert_eq!(by.take_before(Some(6)), Some((3, vec!['b', 'e'])));
        let (t, rs) = by.take_before(Some(6)).expect("5 is below 6");
        assert_eq!((t, rs.clone()), (5, vec!['a', 'c']));
        by.recycle(rs);
        assert_eq!(by.take_before(Some(6)), None);
        assert_eq!(by.take_before(None), Some((9, vec!['d'])));
        assert_eq!(by.first_time(), None);
    }
}
