//! The bytes of every record huntflow writes: notifications and progress
//! records (docs/spec.md §6), and reading a notification back (a restarted
//! job compares what a destination holds with what it re-creates).

use std::io::Write;

use super::order::{Notification, PlayerKind};
use crate::model::event::Id;

/// Appends `s` as a JSON string.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Appends one notification as a JSON line.
pub fn format_notification(out: &mut Vec<u8>, time: u64, n: &Notification) {
    match n {
        Notification::Player {
            rank_priority,
            player,
            kind,
            item,
        } => {
            let field = if kind.is_zone() { "zone" } else { "reward" };
            let _ = write!(
                out,
                "{{\"time\":{time},\"kind\":\"{}\",\"player\":",
                kind.as_str()
            );
            json_str(out, player);
            let _ = write!(out, ",\"{field}\":");
            json_str(out, item);
            let _ = writeln!(out, ",\"priority\":{}}}", rank_priority.0);
        }
        Notification::Occupancy { zone, count } => {
            let _ = write!(out, "{{\"time\":{time},\"kind\":\"occupancy\",\"zone\":");
            json_str(out, zone);
            let _ = writeln!(out, ",\"count\":{count}}}");
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
