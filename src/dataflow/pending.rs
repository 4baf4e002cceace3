//! The events the facts operator holds until their time is complete,
//! bucketed by coarse event time so that taking the events below a frontier
//! touches only the buckets below it and the one it falls in, however many
//! events wait above it (a partition may run well ahead of the others).

use std::collections::BTreeMap;

use crate::model::event::Event;

/// Milliseconds of event time per bucket, as a power of two.
const BUCKET_SHIFT: u32 = 6;

/// Events whose time is not complete yet, by bucket of `ts >> BUCKET_SHIFT`,
/// each bucket in arrival order.
#[derive(Default)]
pub(crate) struct Pending {
    buckets: BTreeMap<u64, Vec<Event>>,
    /// The bucket the latest event went to, and its key: consecutive events
    /// mostly share one.
    open: Option<(u64, Vec<Event>)>,
    /// The least `ts` held, if any.
    min: Option<u64>,
}

impl Pending {
    pub(crate) fn push(&mut self, event: Event) {
        self.min = Some(self.min.map_or(event.ts, |m| m.min(event.ts)));
        let key = event.ts >> BUCKET_SHIFT;
        match &mut self.open {
            Some((k, bucket)) if *k == key => bucket.push(event),
            _ => {
                self.close();
                let mut bucket = self.buckets.remove(&key).unwrap_or_default();
                bucket.push(event);
                self.open = Some((key, bucket));
            }
        }
    }

    /// Files the open bucket with the others.
    fn close(&mut self) {
        if let Some((k, bucket)) = self.open.take() {
            self.buckets.insert(k, bucket);
        }
    }

    /// The least `ts` held, if any.
    pub(crate) fn min(&self) -> Option<u64> {
        self.min
    }

    /// Moves the events below `limit` (all when `None`) to `out`, in no
    /// particular order, bucket by bucket from the earliest, stopping once
    /// `out` holds `max` events or more: the events moved are all those
    /// below some time, so every event of a time moves at once.
    pub(crate) fn take_below(&mut self, limit: Option<u64>, max: usize, out: &mut Vec<Event>) {
        let due = |m: u64| limit.is_none_or(|f| m < f);
        if self.min.is_none_or(|m| !due(m)) {
            return;
        }
        self.close();
        let edge = limit.map_or(u64::MAX, |f| f >> BUCKET_SHIFT);
        let f = limit.unwrap_or(u64::MAX);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > edge || out.len() >= max {
                break;
            }
            if limit.is_none() || *entry.key() < edge {
                out.append(&mut entry.remove());
                continue;
            }
            let bucket = entry.into_mut();
            out.extend(bucket.extract_if(.., |e| e.ts < f));
            if bucket.is_empty() {
                self.buckets.remove(&edge);
            }
            break;
        }
        self.min = self
            .buckets
            .first_key_value()
            .and_then(|(_, b)| b.iter().map(|e| e.ts).min());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Fact;

    fn at(ts: u64) -> Event {
        Event {
            ts,
            player: "p".into(),
            fact: Fact::Claim { reward: "r".into() },
        }
    }

    #[test]
    fn takes_exactly_the_events_below_the_limit() {
        let mut p = Pending::default();
        for ts in [500, 3, 64, 63, 1000, 65, 200, 0, 127, 128] {
            p.push(at(ts));
        }
        assert_eq!(p.min(), Some(0));
        let mut out = Vec::new();
        p.take_below(Some(65), usize::MAX, &mut out);
        let mut got: Vec<u64> = out.iter().map(|e| e.ts).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 3, 63, 64]);
        assert_eq!(p.min(), Some(65));
        out.clear();
        p.take_below(Some(65), usize::MAX, &mut out);
        assert!(out.is_empty());
        p.push(at(66));
        p.take_below(Some(201), usize::MAX, &mut out);
        let mut got: Vec<u64> = out.iter().map(|e| e.ts).collect();
        got.sort_unstable();
        assert_eq!(got, [65, 66, 127, 128, 200]);
        assert_eq!(p.min(), Some(500));
        out.clear();
        p.take_below(None, usize::MAX, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(p.min(), None);
    }

    #[test]
    fn takes_whole_buckets_up_to_about_max() {
        let mut p = Pending::default();
        for ts in [0, 1, 1, 70, 70, 71, 130, 300] {
            p.push(at(ts));
        }
        let mut out = Vec::new();
        p.take_below(None, 2, &mut out);
        assert_eq!(out.len(), 3, "the first bucket, whole");
        assert_eq!(p.min(), Some(70));
        out.clear();
        p.take_below(Some(131), 1, &mut out);
        assert!(out.iter().all(|e| e.ts == 70 || e.ts == 71));
        assert_eq!(out.len(), 3);
        out.clear();
        p.take_below(Some(131), 1, &mut out);
        assert_eq!(out.iter().map(|e| e.ts).collect::<Vec<_>>(), [130]);
        assert_eq!(p.min(), Some(300));
    }
}
