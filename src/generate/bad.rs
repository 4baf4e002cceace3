//! The bad lines of a synthetic dataset: one kind per way an input record can fail docs/spec.md §3
//! validation, each rendered from an otherwise good event.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geom::{push_f64, push_u64, round_to};
use super::line::{push_id, render, type_name, Body, Ev, Names, Opt, Patch};
use crate::model::event::Reason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadKind {
    NotJson,
    NonUtf8,
    NotObject,
    MissingField,
    NullField,
    WrongType,
    EmptyString,
    UnknownType,
    BadCoordinates,
    Inaccurate,
    Huge,
}

impl BadKind {
    pub const ALL: [BadKind; 11] = [
        BadKind::NotJson,
        BadKind::NonUtf8,
        BadKind::NotObject,
        BadKind::MissingField,
        BadKind::NullField,
        BadKind::WrongType,
        BadKind::EmptyString,
        BadKind::UnknownType,
        BadKind::BadCoordinates,
        BadKind::Inaccurate,
        BadKind::Huge,
    ];

    /// The name used in [`super::GenerateStats::bad_kinds`].
    pub fn name(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::NonUtf8 => "non_utf8",
            BadKind::NotObject => "not_object",
            BadKind::MissingField => "missing_field",
            BadKind::NullField => "null_field",
            BadKind::WrongType => "wrong_type",
            BadKind::EmptyString => "empty_string",
            BadKind::UnknownType => "unknown_type",
            BadKind::BadCoordinates => "bad_coordinates",
            BadKind::Inaccurate => "inaccurate",
            BadKind::Huge => "huge_line",
        }
    }

    /// The docs/spec.md §3 reason the engine must reject this line with.
    pub fn reason(self) -> Reason {
        match self {
            BadKind::NotJson | BadKind::NonUtf8 | BadKind::NotObject | BadKind::Huge => {
                Reason::Malformed
            }
            BadKind::MissingField | BadKind::NullField => Reason::MissingField,
            BadKind::WrongType | BadKind::EmptyString => Reason::BadField,
            BadKind::UnknownType => Reason::UnknownType,
            BadKind::BadCoordinates => Reason::BadCoordinates,
            BadKind::Inaccurate => Reason::Inaccurate,
        }
    }

    /// Whether the line must be built from a position event.
    pub fn needs_position(self) -> bool {
        matches!(self, BadKind::BadCoordinates | BadKind::Inaccurate)
    }

    /// Draws a kind: every kind equally likely except huge lines (1 in about 100); inaccurate
    /// positions only when the hunt sets `max_accuracy_m`.
    pub fn pick(rng: &mut ChaCha8Rng, has_max_accuracy: bool) -> BadKind {
        loop {
            let i = rng.random_range(0..101usize);
            let kind = if i == 100 {
                BadKind::Huge
            } else {
                BadKind::ALL[i / 10]
            };
            if kind != BadKind::Inaccurate || has_max_accuracy {
                return kind;
            }
        }
    }
}

fn required(body: &Body) -> [&'static str; 6] {
    let own = match body {
        Body::Position { .. } => ["lat", "lon"],
        Body::Action { .. } => ["action", "target"],
        Body::Sensor { .. } => ["sensor", "value"],
    };
    ["id", "type", "player", "ts", own[0], own[1]]
}

fn choose<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn raw(key: &'static str, value: &str) -> Patch {
    Patch::Raw(key, value.as_bytes().to_vec())
}

/// Appends the bad line of `kind` built from `ev` (a position when `kind.needs_position()`).
pub(super) fn render_bad(
    kind: BadKind,
    ev: &mut Ev,
    names: &Names,
    rng: &mut ChaCha8Rng,
    max_acc: Option<f64>,
    out: &mut Vec<u8>,
) {
    let patch = match kind {
        BadKind::NotJson => return not_json(ev, names, rng, out),
        BadKind::NotObject => return not_object(ev, names, rng, out),
        BadKind::NonUtf8 => match rng.random_range(0..3) {
            0 => Patch::Raw("player", b"\"p\xff\xfe\"".to_vec()),
            1 => Patch::Raw("id", b"\"e\xc3\x28\"".to_vec()),
            _ => Patch::Raw("note", b"\"caf\xe9\"".to_vec()),
        },
        BadKind::MissingField => Patch::Omit(choose(rng, &required(&ev.body))),
        BadKind::NullField => raw(choose(rng, &required(&ev.body)), "null"),
        BadKind::WrongType => wrong_type(ev, rng),
        BadKind::EmptyString => match rng.random_range(0..4) {
            0 => raw("id", "\"\""),
            1 => raw("player", "\"\""),
            2 => raw("id", &format!("\"{}\"", "x".repeat(129))),
            _ => raw("player", &format!("\"{}\"", "p".repeat(200))),
        },
        BadKind::UnknownType => raw(
            "type",
            choose(rng, &["\"teleport\"", "\"Position\"", "\"chat\""]),
        ),
        BadKind::BadCoordinates => {
            if let Body::Position { lat, lon, .. } = &mut ev.body {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                match rng.random_range(0..3) {
                    0 => *lat = sign * round_to(rng.random_range(90.5..180.0), 0.001),
                    1 => *lon = sign * round_to(rng.random_range(180.5..360.0), 0.001),
                    _ => {
                        *lat = sign * round_to(rng.random_range(90.5..180.0), 0.001);
                        *lon = -sign * round_to(rng.random_range(180.5..360.0), 0.001);
                    }
                }
            }
            return render(ev, names, None, out);
        }
        BadKind::Inaccurate => {
            let max = max_acc.unwrap_or(0.0);
            if let Body::Position { acc, .. } = &mut ev.body {
                let a = round_to(max + rng.random_range(0.5..500.0), 0.1);
                *acc = Opt::Val(if a > max { a } else { max + 1.0 });
            }
            return render(ev, names, None, out);
        }
        BadKind::Huge => {
            let mut pad = Vec::with_capacity(70_002);
            pad.push(b'"');
            pad.resize(1 + rng.random_range(66_000..=70_000), b'x');
            pad.push(b'"');
            Patch::Raw("pad", pad)
        }
    };
    render(ev, names, Some(&patch), out);
}

fn wrong_type(ev: &Ev, rng: &mut ChaCha8Rng) -> Patch {
    let common: [(&'static str, &str); 12] = [
        ("ts", "\"1700000000000\""),
        ("ts", "-5"),
        ("ts", "9007199254740993"),
        ("ts", "12.5"),
        ("id", "42"),
        ("player", "true"),
        ("type", "5"),
        ("ttl_ms", "0"),
        ("ttl_ms", "\"60\""),
        ("priority", "10"),
        ("priority", "-1"),
        ("priority", "\"high\""),
    ];
    let own: [(&'static str, &str); 4] = match ev.body {
        Body::Position { .. } => [
            ("lat", "\"48.85\""),
            ("lon", "[2.35]"),
            ("accuracy_m", "\"5\""),
            ("accuracy_m", "-1.0"),
        ],
        Body::Action { .. } => [
            ("action", "3"),
            ("target", "false"),
            ("action", "{}"),
            ("target", "[\"clue-0\"]"),
        ],
        Body::Sensor { .. } => [
            ("sensor", "7"),
            ("value", "\"-60\""),
            ("value", "{}"),
            ("value", "true"),
        ],
    };
    let (key, value) = if rng.random_bool(0.5) {
        choose(rng, &common)
    } else {
        choose(rng, &own)
    };
    raw(key, value)
}

fn not_json(ev: &Ev, names: &Names, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let start = out.len();
    match rng.random_range(0..5) {
        0 => {
            render(ev, names, None, out);
            let len = out.len() - start;
            out.truncate(start + rng.random_range(1..len - 1));
        }
        1 => {
            out.extend_from_slice(b"this is not json ");
            push_id(out, ev);
        }
        2 => {
            render(ev, names, None, out);
            out.pop();
            out.extend_from_slice(b",}");
        }
        3 => render(ev, names, Some(&raw("ts", "NaN")), out),
        _ => {
            out.extend_from_slice(b"{'id': '");
            push_id(out, ev);
            out.extend_from_slice(b"', 'type': '");
            out.extend_from_slice(type_name(&ev.body).as_bytes());
            out.extend_from_slice(b"'}");
        }
    }
}

fn not_object(ev: &Ev, names: &Names, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    match rng.random_range(0..8) {
        0 | 1 => {
            out.push(b'[');
            render(ev, names, None, out);
            out.push(b']');
        }
        2 | 3 => {
            out.extend_from_slice(b"[\"");
            out.extend_from_slice(type_name(&ev.body).as_bytes());
            out.extend_from_slice(b"\",");
            if let Body::Position { lat, lon, .. } = ev.body {
                push_f64(out, lat);
                out.push(b',');
                push_f64(out, lon);
                out.push(b',');
            }
            push_u64(out, ev.ts);
            out.push(b']');
        }
        4 => out.extend_from_slice(b"[]"),
        5 => out.extend_from_slice(b"42"),
        6 => out.extend_from_slice(b"null"),
        _ => {
            out.push(b'"');
            push_id(out, ev);
            out.push(b'"');
        }
    }
}
