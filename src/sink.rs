//! Ordered sinks. One writer per output stream, on worker 0: changes and
//! rejects are buffered by time and written once their time is complete.
//!
//! Notifications for a completed time are consolidated (a change undone
//! within the same time produces nothing), turned into SPEC §6 records and
//! written in SPEC §6 order. Rejects are written in the order of the partition
//! frontier at which they were read, then partition, then line: a function of
//! the input alone, whatever the number of workers.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::dataflow::Change;
use crate::event::Id;
use crate::hunt::Hunt;
use crate::source::Reject;

/// A shared slot for the first write error of a sink.
pub type ErrorSlot = Arc<Mutex<Option<std::io::Error>>>;

/// One notification, SPEC §6.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Notification {
    /// Player notifications: priority (for descending order), player, kind rank, item.
    Player {
        rank_priority: std::cmp::Reverse<u8>,
        player: Id,
        kind: PlayerKind,
        item: u32,
    },
    Occupancy {
        zone: u32,
        count: i64,
    },
}

/// Kinds of player notification, in their order within a player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlayerKind {
    Exit,
    Enter,
    Ineligible,
    Eligible,
}

impl PlayerKind {
    /// The `kind` a notification of this kind has.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerKind::Exit => "exit",
            PlayerKind::Enter => "enter",
            PlayerKind::Ineligible => "ineligible",
            PlayerKind::Eligible => "eligible",
        }
    }
}

/// Turns the changes of one time into its notifications, in SPEC §6 order.
pub fn notifications(hunt: &Hunt, mut changes: Vec<(Change, isize)>) -> Vec<Notification> {
    changes.sort_unstable();
    let mut consolidated: Vec<(Change, isize)> = Vec::with_capacity(changes.len());
    for (change, diff) in changes {
        match consolidated.last_mut() {
            Some((last, d)) if *last == change => *d += diff,
            _ => consolidated.push((change, diff)),
        }
    }
    consolidated.retain(|(_, d)| *d != 0);

    let mut out = Vec::with_capacity(consolidated.len());
    let mut occupancy: BTreeMap<u32, i64> = BTreeMap::new();
    for (change, diff) in consolidated {
        match change {
            Change::Presence(player, zone) => out.push(Notification::Player {
                rank_priority: std::cmp::Reverse(hunt.zones[zone as usize].priority),
                player,
                kind: if diff > 0 {
                    PlayerKind::Enter
                } else {
                    PlayerKind::Exit
                },
                item: zone,
            }),
            Change::Eligible(player, reward) => out.push(Notification::Player {
                rank_priority: std::cmp::Reverse(hunt.rewards[reward as usize].priority),
                player,
                kind: if diff > 0 {
                    PlayerKind::Eligible
                } else {
                    PlayerKind::Ineligible
                },
                item: reward,
            }),
            Change::Occupancy(zone, count) => {
                let slot = occupancy.entry(zone).or_insert(0);
                if diff > 0 {
                    *slot = count;
                }
            }
        }
    }
    out.extend(
        occupancy
            .into_iter()
            .map(|(zone, count)| Notification::Occupancy { zone, count }),
    );
    // Zones and rewards are numbered in id order, so numbers order as ids do.
    out.sort_unstable();
    out
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Appends one notification as a JSON line.
pub fn format_notification(out: &mut Vec<u8>, hunt: &Hunt, time: u64, n: &Notification) {
    match n {
        Notification::Player {
            rank_priority,
            player,
            kind,
            item,
        } => {
            let (field, id) = match kind {
                PlayerKind::Exit | PlayerKind::Enter => ("zone", &hunt.zones[*item as usize].id),
                _ => ("reward", &hunt.rewards[*item as usize].id),
            };
            let _ = write!(
                out,
                "{{\"time\":{time},\"kind\":\"{}\",\"player\":",
                kind.as_str()
            );
            json_str(out, player);
            let _ = write!(out, ",\"{field}\":");
            json_str(out, id);
            let _ = writeln!(out, ",\"priority\":{}}}", rank_priority.0);
        }
        Notification::Occupancy { zone, count } => {
            let _ = write!(out, "{{\"time\":{time},\"kind\":\"occupancy\",\"zone\":");
            json_str(out, &hunt.zones[*zone as usize].id);
            let _ = writeln!(out, ",\"count\":{count}}}");
        }
    }
}

fn record_error(slot: &ErrorSlot, e: std::io::Error) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
}

/// Where the notification sink writes: the notifications of each completed
/// time in order, and the frontier as it advances.
pub trait NotificationOutput {
    /// Writes the notifications of completed time `time`, in SPEC §6 order.
    fn write_time(
        &mut self,
        hunt: &Hunt,
        time: u64,
        notifications: &[Notification],
    ) -> std::io::Result<()>;
    /// Every time below `frontier` is complete and written; `None`: the
    /// stream has ended.
    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()>;
}

/// When a progress record is due: for a frontier above the last one
/// recorded, and at most once per `every` (the end of the stream is always
/// due). Shared by every output that writes progress records.
pub struct ProgressPacer {
    last: Option<u64>,
    at: std::time::Instant,
    every: std::time::Duration,
}

impl ProgressPacer {
    /// Starting after frontier `after` (a restarted job: its snapshot's),
    /// or from the first frontier above 0 when `None`.
    pub fn new(every: std::time::Duration, after: Option<u64>) -> Self {
        ProgressPacer {
            last: after,
            at: std::time::Instant::now(),
            every,
        }
    }

    /// The progress time to record now for `frontier` (`None`: the stream
    /// ended, recorded as `u64::MAX`), if one is due.
    pub fn due(&mut self, frontier: Option<u64>) -> Option<u64> {
        let f = frontier.unwrap_or(u64::MAX);
        let rises = self.last.map_or(f > 0, |last| f > last);
        let time = frontier.is_none() || self.last.is_none() || self.at.elapsed() >= self.every;
        if !(rises && time) {
            return None;
        }
        self.last = Some(f);
        self.at = std::time::Instant::now();
        Some(f)
    }
}

/// The progress record for frontier `f`, without newline.
pub fn progress_record(f: u64) -> String {
    format!("{{\"kind\":\"progress\",\"time\":{f}}}")
}

/// JSON Lines to a byte stream, with optional progress records.
pub struct LineOutput {
    writer: Box<dyn Write + Send>,
    buf: Vec<u8>,
    progress: Option<ProgressPacer>,
}

impl LineOutput {
    /// With `progress_records`, a progress record for every new frontier.
    pub fn new(writer: Box<dyn Write + Send>, progress_records: bool) -> Self {
        let pacer = progress_records.then(|| ProgressPacer::new(std::time::Duration::ZERO, None));
        Self::paced(writer, pacer)
    }

    /// Progress records when `pacer` says so (none without one).
    pub fn paced(writer: Box<dyn Write + Send>, pacer: Option<ProgressPacer>) -> Self {
        LineOutput {
            writer,
            buf: Vec::with_capacity(1 << 16),
            progress: pacer,
        }
    }
}

impl NotificationOutput for LineOutput {
    fn write_time(&mut self, hunt: &Hunt, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        for n in ns {
            format_notification(&mut self.buf, hunt, time, n);
        }
        if self.buf.len() >= 1 << 16 {
            self.writer.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()> {
        // The end of a stream needs no record: every time is complete.
        if let (Some(f), Some(pacer)) = (frontier, self.progress.as_mut()) {
            if pacer.due(Some(f)).is_some() {
                let _ = writeln!(self.buf, "{}", progress_record(f));
            }
        }
        if !self.buf.is_empty() || frontier.is_none() {
            self.writer.write_all(&self.buf)?;
            self.writer.flush()?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Writes the notification stream. `output` is `Some` on the worker that
/// writes (worker 0) and `None` elsewhere; every change is routed to worker 0.
pub fn notification_sink<'scope>(
    changes: Stream<'scope, u64, Vec<(Change, u64, isize)>>,
    hunt: Arc<Hunt>,
    output: Option<Box<dyn NotificationOutput>>,
    errors: ErrorSlot,
) {
    let mut output = output;
    let mut pending: BTreeMap<u64, Vec<(Change, isize)>> = BTreeMap::new();
    let mut last: Option<Option<u64>> = None;
    changes.sink(
        Exchange::new(|_: &(Change, u64, isize)| 0),
        "NotificationSink",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for (change, time, diff) in data.drain(..) {
                    pending.entry(time).or_default().push((change, diff));
                }
            });
            let limit = frontier.frontier().first().copied();
            let Some(out) = output.as_mut() else {
                pending.clear();
                return;
            };
            let mut result = Ok(());
            while let Some(entry) = pending.first_entry() {
                let time = *entry.key();
                if limit.is_some_and(|f| time >= f) {
                    break;
                }
                let notifications = notifications(&hunt, entry.remove());
                result = result.and_then(|_| out.write_time(&hunt, time, &notifications));
            }
            if last != Some(limit) {
                result = result.and_then(|_| out.progress(limit));
                last = Some(limit);
            }
            if let Err(e) = result {
                record_error(&errors, e);
            }
            if limit.is_none() {
                output = None;
            }
        },
    );
}

/// Appends one reject as a JSON line: reason, detail, source, line, raw text
/// (and the raw bytes in base64 when they are not UTF-8).
pub fn format_reject(out: &mut Vec<u8>, names: &[String], r: &Reject) {
    let _ = write!(out, "{{\"reason\":\"{}\",\"detail\":", r.reason.as_str());
    json_str(out, &r.detail);
    out.extend_from_slice(b",\"source\":");
    json_str(out, &names[r.partition as usize]);
    let _ = write!(out, ",\"line\":{},\"raw\":", r.line);
    match std::str::from_utf8(&r.raw) {
        Ok(text) => json_str(out, text),
        Err(_) => {
            json_str(out, &String::from_utf8_lossy(&r.raw));
            out.extend_from_slice(b",\"raw_base64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&r.raw)
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

/// Writes the rejects stream (or only drains it when `writer` is `None`).
pub fn reject_sink<'scope>(
    rejects: Stream<'scope, u64, Vec<Reject>>,
    names: Arc<Vec<String>>,
    writer: Option<Box<dyn Write>>,
    errors: ErrorSlot,
) {
    let mut writer = writer;
    let mut pending: BTreeMap<(u64, u32, u64), Reject> = BTreeMap::new();
    let mut buf = Vec::with_capacity(1 << 16);
    rejects.sink(
        Exchange::new(|_: &Reject| 0),
        "RejectSink",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for r in data.drain(..) {
                    if writer.is_some() {
                        pending.insert((r.frontier, r.partition, r.line), r);
                    }
                }
            });
            let Some(w) = writer.as_mut() else { return };
            let limit = frontier.frontier().first().copied();
            while let Some(entry) = pending.first_entry() {
                if limit.is_some_and(|f| entry.key().0 >= f) {
                    break;
                }
                format_reject(&mut buf, &names, &entry.remove());
            }
            if !buf.is_empty() || limit.is_none() {
                if let Err(e) = w.write_all(&buf).and_then(|_| w.flush()) {
                    record_error(&errors, e);
                }
                buf.clear();
            }
            if limit.is_none() {
                writer = None;
            }
        },
    );
}

#[derive(serde::Deserialize)]
struct NotificationRecord<'a> {
    time: Option<u64>,
    #[serde(borrow)]
    kind: &'a str,
    player: Option<String>,
    zone: Option<String>,
    reward: Option<String>,
    priority: Option<u8>,
    count: Option<i64>,
}

/// Reads back a line written by [`format_notification`]: `Ok(None)` for a
/// progress record, `Err` for anything else that is not a notification of
/// this hunt.
pub fn parse_notification(hunt: &Hunt, line: &[u8]) -> Result<Option<(u64, Notification)>, String> {
    let r: NotificationRecord =
        serde_json::from_slice(line).map_err(|e| format!("not a notification: {e}"))?;
    if r.kind == "progress" {
        return Ok(None);
    }
    let time = r.time.ok_or("no time")?;
    let zone = || -> Result<u32, String> {
        let id = r.zone.as_deref().ok_or("no zone")?;
        hunt.zone_number(id)
            .ok_or_else(|| format!("unknown zone {id:?}"))
    };
    let reward = || -> Result<u32, String> {
        let id = r.reward.as_deref().ok_or("no reward")?;
        hunt.reward_number(id)
            .ok_or_else(|| format!("unknown reward {id:?}"))
    };
    let (kind, item) = match r.kind {
        "occupancy" => {
            let count = r.count.ok_or("no count")?;
            return Ok(Some((
                time,
                Notification::Occupancy {
                    zone: zone()?,
                    count,
                },
            )));
        }
        "exit" => (PlayerKind::Exit, zone()?),
        "enter" => (PlayerKind::Enter, zone()?),
        "ineligible" => (PlayerKind::Ineligible, reward()?),
        "eligible" => (PlayerKind::Eligible, reward()?),
        other => return Err(format!("unknown kind {other:?}")),
    };
    let player = r.player.ok_or("no player")?;
    Ok(Some((
        time,
        Notification::Player {
            rank_priority: std::cmp::Reverse(r.priority.ok_or("no priority")?),
            player: Id::from(player),
            kind,
            item,
        },
    )))
}
