//! The bytes of every record huntflow writes: notifications and progress
//! records (docs/spec.md §6), and reading a notification back (a restarted
//! job compares what a destination holds with what it re-creates).

use super::order::{Notification, PlayerKind};
use crate::model::event::Id;

/// Appends `s` as a JSON string, as serde_json writes it.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Appends an integer in decimal.
fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends one notification as a JSON line.
pub fn format_notification(out: &mut Vec<u8>, time: u64, n: &Notification) {
    LinesAt::new(time).push(out, n);
}

/// The lines of one time's notifications: the time's part of every line
/// is formatted once.
pub struct LinesAt {
    head: Vec<u8>,
}

/// What follows the time in a player notification of each kind, up to the
/// player; and what follows the player, up to the item.
fn pieces(kind: PlayerKind) -> (&'static [u8], &'static [u8]) {
    match kind {
        PlayerKind::Exit => (b",\"kind\":\"exit\",\"player\":", b",\"zone\":"),
        PlayerKind::Enter => (b",\"kind\":\"enter\",\"player\":", b",\"zone\":"),
        PlayerKind::Ineligible => (b",\"kind\":\"ineligible\",\"player\":", b",\"reward\":"),
        PlayerKind::Eligible => (b",\"kind\":\"eligible\",\"player\":", b",\"reward\":"),
    }
}

/// The end of a player notification of each priority the contract allows.
const PRIORITY_TAILS: [&[u8]; 10] = [
    b",\"priority\":0}\n",
    b",\"priority\":1}\n",
    b",\"priority\":2}\n",
    b",\"priority\":3}\n",
    b",\"priority\":4}\n",
    b",\"priority\":5}\n",
    b",\"priority\":6}\n",
    b",\"priority\":7}\n",
    b",\"priority\":8}\n",
    b",\"priority\":9}\n",
];

impl LinesAt {
    pub fn new(time: u64) -> Self {
        let mut head = Vec::with_capacity(32);
        head.extend_from_slice(b"{\"time\":");
        number(&mut head, time);
        LinesAt { head }
    }

    /// Appends one notification of this time as a JSON line.
    pub fn push(&self, out: &mut Vec<u8>, n: &Notification) {
        out.extend_from_slice(&self.head);
        match n {
            Notification::Player {
                rank_priority,
                player,
                kind,
                item,
            } => {
                let (before, after) = pieces(*kind);
                out.extend_from_slice(before);
                json_str(out, player);
                out.extend_from_slice(after);
                json_str(out, item);
                match PRIORITY_TAILS.get(usize::from(rank_priority.0)) {
                    Some(tail) => out.extend_from_slice(tail),
                    None => {
                        out.extend_from_slice(b",\"priority\":");
                        number(out, rank_priority.0);
                        out.extend_from_slice(b"}\n");
                    }
                }
            }
            Notification::Occupancy { zone, count } => {
                out.extend_from_slice(b",\"kind\":\"occupancy\",\"zone\":");
                json_str(out, zone);
                out.extend_from_slice(b",\"count\":");
                number(out, *count);
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

/// The progress record for frontier `f`, without newline.
pub fn progress_record(f: u64) -> String {
    format!("{{\"kind\":\"progress\",\"time\":{f}}}")
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
/// progress record, `Err` for anything else that is not a notification.
pub fn parse_notification(line: &[u8]) -> Result<Option<(u64, Notification)>, String> {
    let r: NotificationRecord =
        serde_json::from_slice(line).map_err(|e| format!("not a notification: {e}"))?;
    if r.kind == "progress" {
        return Ok(None);
    }
    let time = r.time.ok_or("no time")?;
    let zone = || r.zone.as_deref().map(Id::from).ok_or("no zone");
    let reward = || r.reward.as_deref().map(Id::from).ok_or("no reward");
    let (kind, item) = match r.kind {
        "occupancy" => {
            let count = r.count.ok_or("no count")?;
            let zone = zone()?;
            return Ok(Some((time, Notification::Occupancy { zone, count })));
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
