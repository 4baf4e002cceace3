//! Hunt change records (docs/spec.md §9): validating one, and the change
//! log of a backfill, read before any event. A valid record becomes a
//! version of the hunt; an invalid one a reject with reason
//! `bad_hunt_change`. The continuous job reads its changes from a topic
//! (the job's hunt reader); both turn accepted changes into [`Notice`]s,
//! which carry each version to every worker at its effective time.

use std::path::Path;

use serde_json::Value;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::reject::{Place, Reject};
use crate::dataflow::Control;
use crate::model::event::{Invalid, Reason, MAX_TS};
use crate::model::hunt::{Hunt, HuntText};
use crate::model::versions::Notice;

/// The partition number of a change log's or hunt topic's rejects: their
/// records are numbered apart from the input partitions.
pub const CHANGES: u32 = u32::MAX;

fn bad(detail: impl Into<String>) -> Invalid {
    Invalid {
        reason: Reason::BadHuntChange,
        detail: detail.into(),
    }
}

/// Validates one change record against the start hunt: its effective time
/// and the version it holds. `name` is what the hunt's errors are reported
/// against (the change log's path, or the topic).
pub fn parse_change(raw: &[u8], name: &Path, start: &Hunt) -> Result<(u64, Hunt), Invalid> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let Value::Object(record) = value else {
        return Err(bad("not a JSON object"));
    };
    let field = |key: &str| record.get(key).filter(|v| !v.is_null());
    let effective = match field("effective") {
        None => return Err(bad("missing field \"effective\"")),
        Some(v) => v
            .as_u64()
            .filter(|&t| t <= MAX_TS && !v.is_f64())
            .ok_or_else(|| {
                bad(format!(
                    "field \"effective\" must be an integer in 0..={MAX_TS}"
                ))
            })?,
    };
    let toml = match field("hunt") {
        None => return Err(bad("missing field \"hunt\"")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(bad(
                "field \"hunt\" must be a string (the hunt's TOML text)",
            ))
        }
    };
    let geojson = match field("zones_geojson") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => {
            return Err(bad(
                "field \"zones_geojson\" must be a GeoJSON FeatureCollection",
            ))
        }
    };
    let hunt = Hunt::parse(name, HuntText { toml, geojson }).map_err(|e| bad(e.to_string()))?;
    admissible(start, &hunt).map_err(bad)?;
    Ok((effective, hunt))
}

/// Whether `hunt` can be a version of the job started with `start`: the
/// admission rules of the sources cannot change.
pub fn admissible(start: &Hunt, hunt: &Hunt) -> Result<(), String> {
    if hunt.max_lateness_ms != start.max_lateness_ms {
        return Err(format!(
            "max_lateness_ms {} differs from the running hunt's {}: it cannot change",
            hunt.max_lateness_ms, start.max_lateness_ms
        ));
    }
    if hunt.max_accuracy_m != start.max_accuracy_m {
        return Err(format!(
            "max_accuracy_m {:?} differs from the running hunt's {:?}: it cannot change",
            hunt.max_accuracy_m, start.max_accuracy_m
        ));
    }
    Ok(())
}

/// A change record of `hunt` taking effect at `effective`, as one JSON line
/// (without its newline).
pub fn change_record(effective: u64, hunt: &Hunt) -> String {
    let mut record = serde_json::Map::new();
    record.insert("effective".into(), effective.into());
    record.insert("hunt".into(), hunt.text.toml.clone().into());
    if let Some(g) = &hunt.text.geojson {
        let parsed: Value = serde_json::from_str(g).unwrap_or(Value::Null);
        record.insert("zones_geojson".into(), parsed);
    }
    Value::Object(record).to_string()
}

/// A backfill's change log, read and decided.
#[derive(Default)]
pub struct ChangeLog {
    /// The accepted versions, in log order.
    pub accepted: Vec<(Notice, Hunt)>,
    pub rejects: Vec<Reject>,
}

/// Reads the change log at `path` (JSON Lines; blank lines skipped).
pub fn read_log(path: &Path, start: &Hunt) -> std::io::Result<ChangeLog> {
    let bytes = std::fs::read(path)?;
    let mut log = ChangeLog::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if crate::model::event::is_blank(line) {
            continue;
        }
        match parse_change(line, path, start) {
            Ok((effective, hunt)) => {
                let notice = Notice {
                    seq: log.accepted.len() as u64 + 1,
                    effective,
                    text: hunt.text.clone(),
                };
                log.accepted.push((notice, hunt));
            }
            Err(invalid) => {
                let place = Place::Line(i as u64 + 1);
                log.rejects
                    .push(Reject::new(invalid, CHANGES, place, 0, line));
            }
        }
    }
    Ok(log)
}

/// A source that sends each notice at its effective time (on worker 0),
/// then closes.
pub fn notices<'scope>(
    scope: Scope<'scope, u64>,
    notices: Vec<Notice>,
) -> Stream<'scope, u64, Vec<Control>> {
    let mine = if scope.index() == 0 {
        notices
    } else {
        Vec::new()
    };
    source(scope, "HuntChanges", move |cap, _info| {
        let mut pending = Some((cap, mine));
        move |output| {
            if let Some((cap, notices)) = pending.take() {
                for n in notices {
                    output
                        .session(&cap.delayed(&n.effective))
                        .give(Control::Version(n));
                }
            }
        }
    })
}
