//! The notification feed for subscribers: every notification (and a
//! progress mark per completed frontier, at most every 100 ms) with an id
//! that orders it, kept for a retention window so that a client that
//! reconnects with `Last-Event-ID` resumes with no gap and no duplicate.
//!
//! Ids are `T-I`: the notification's time `T` and its 1-based position `I`
//! among that time's notifications (the contract's order); a progress mark for
//! frontier `T` is `T-0`, after every notification before `T`. Ids order as
//! the pairs `(T, I)`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::output::format::{format_notification, progress_record};
use crate::output::line::ProgressPacer;
use crate::output::order::{Notification, PlayerKind};

/// An event id: `(time, position)`.
pub type EventId = (u64, u64);

pub fn format_id(id: EventId) -> String {
    format!("{}-{}", id.0, id.1)
}

pub fn parse_id(s: &str) -> Option<EventId> {
    let (t, i) = s.trim().split_once('-')?;
    Some((t.parse().ok()?, i.parse().ok()?))
}

/// One feed event: a notification as the sink gave it (formatted when
/// sent, so that retaining it costs the job no formatting), or a progress
/// mark.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    pub id: EventId,
    /// `None`: a progress mark for frontier `id.0`.
    pub note: Option<Notification>,
}

impl FeedEvent {
    /// The SSE event name.
    pub fn event(&self) -> &'static str {
        match self.note {
            Some(_) => "notification",
            None => "progress",
        }
    }

    /// The notification kind (`"progress"` for a mark).
    pub fn kind(&self) -> &'static str {
        match &self.note {
            None => "progress",
            Some(Notification::Occupancy { .. }) => "occupancy",
            Some(Notification::Player { kind, .. }) => kind.as_str(),
        }
    }

    pub fn player(&self) -> Option<&str> {
        match &self.note {
            Some(Notification::Player { player, .. }) => Some(player.as_str()),
            _ => None,
        }
    }

    pub fn zone(&self) -> Option<&str> {
        match &self.note {
            Some(Notification::Occupancy { zone, .. }) => Some(zone),
            Some(Notification::Player {
                kind: PlayerKind::Enter | PlayerKind::Exit,
                item,
                ..
            }) => Some(item),
            _ => None,
        }
    }

    pub fn reward(&self) -> Option<&str> {
        match &self.note {
            Some(Notification::Player {
                kind: PlayerKind::Eligible | PlayerKind::Ineligible,
                item,
                ..
            }) => Some(item),
            _ => None,
        }
    }

    /// The JSON line (without newline), as the output file has it.
    pub fn data(&self) -> String {
        match &self.note {
            None => progress_record(self.id.0),
            Some(n) => {
                let mut buf = Vec::with_capacity(128);
                format_notification(&mut buf, self.id.0, n);
                buf.pop();
                String::from_utf8_lossy(&buf).into_owned()
            }
        }
    }
}

/// How long and how much the feed keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub events: usize,
    pub age: Option<Duration>,
}

struct Ring {
    events: VecDeque<(FeedEvent, Instant)>,
    /// The id of the newest event dropped from the window.
    evicted: Option<EventId>,
    progress: ProgressPacer,
}

/// What a subscriber gets after its cursor.
pub enum Read {
    Events(Vec<FeedEvent>),
    /// The cursor lies before the retention window: events were dropped.
    Gone {
        oldest: Option<EventId>,
    },
}

pub struct Feed {
    ring: Mutex<Ring>,
    pub notify: tokio::sync::Notify,
    retention: Retention,
}

impl Feed {
    pub fn new(retention: Retention) -> Self {
        Feed {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                evicted: None,
                progress: ProgressPacer::new(Duration::from_millis(100), None),
            }),
            notify: tokio::sync::Notify::new(),
            retention,
        }
    }

    fn push(ring: &mut Ring, retention: Retention, e: FeedEvent, now: Instant) {
        // After a restart the job writes again what followed its snapshot.
        let last = ring.events.back().map(|(l, _)| l.id).or(ring.evicted);
        if last.is_some_and(|l| e.id <= l) {
            return;
        }
        ring.events.push_back((e, now));
        while ring.events.len() > retention.events
            || retention.age.is_some_and(|age| {
                ring.events
                    .front()
                    .is_some_and(|(_, at)| now.duration_since(*at) > age)
            })
        {
            let (old, _) = ring.events.pop_front().expect("non-empty");
            ring.evicted = Some(old.id);
        }
    }

    /// The notifications of one completed time.
    pub fn notifications(&self, time: u64, ns: &[Notification]) {
        if ns.is_empty() {
            return;
        }
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let now = Instant::now();
        for (i, n) in ns.iter().enumerate() {
            let event = FeedEvent {
                id: (time, i as u64 + 1),
                note: Some(n.clone()),
            };
            Self::push(&mut ring, self.retention, event, now);
        }
        drop(ring);
        self.notify.notify_waiters();
    }

    /// How long until a held-back progress mark is due (`None`: none).
    pub fn progress_due_in(&self) -> Option<Duration> {
        self.ring.lock().ok().and_then(|r| r.progress.held())
    }

    /// The frontier advanced (`None`: the stream ended).
    pub fn progress(&self, frontier: Option<u64>) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let Some(f) = ring.progress.due(frontier) else {
            return;
        };
        let event = FeedEvent {
            id: (f, 0),
            note: None,
        };
        Self::push(&mut ring, self.retention, event, Instant::now());
        drop(ring);
        self.notify.notify_waiters();
    }

    /// Events after `cursor` (all retained when `None`), at most `max`.
    pub fn read(&self, cursor: Option<EventId>, max: usize) -> Read {
        let Ok(ring) = self.ring.lock() else {
            return Read::Events(Vec::new());
        };
        if let (Some(c), Some(evicted)) = (cursor, ring.evicted) {
            if c < evicted {
                return Read::Gone {
                    oldest: ring.events.front().map(|(e, _)| e.id),
                };
            }
        }
        let start = match cursor {
            None => 0,
            Some(c) => ring.events.partition_point(|(e, _)| e.id <= c),
        };
        Read::Events(
            ring.events
                .iter()
                .skip(start)
                .take(max)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(feed: &Feed, t: u64) {
        let mut ring = feed.ring.lock().unwrap();
        ring.progress = ProgressPacer::new(Duration::from_millis(100), None);
        drop(ring);
        feed.progress(Some(t));
    }

    #[test]
    fn resumes_after_the_cursor_and_reports_what_fell_out() {
        let feed = Feed::new(Retention {
            events: 2,
            age: None,
        });
        progress(&feed, 5);
        progress(&feed, 7);
        progress(&feed, 9);
        match feed.read(Some((7, 0)), 10) {
            Read::Events(e) => assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), vec![(9, 0)]),
            Read::Gone { .. } => panic!("within the window"),
        }
        assert!(matches!(
            feed.read(Some((4, 0)), 10),
            Read::Gone {
                oldest: Some((7, 0))
            }
        ));
        assert_eq!(parse_id("12-3"), Some((12, 3)));
        assert_eq!(format_id((12, 3)), "12-3");
        assert_eq!(parse_id("x"), None);
    }
}
