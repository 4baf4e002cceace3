//! Input records: decoding one JSON line into a validated event, in the order of
//! checks the contract fixes, and the stable reject reasons.
//!
//! The decoder borrows strings from the input line where it can and classifies
//! numbers by their JSON spelling: only an integer literal is an integer.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::model::hunt::Hunt;

/// Longest accepted record, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Largest accepted `ts`: 2^53.
pub const MAX_TS: u64 = 1 << 53;
/// Longest `id` and `player`, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Why a record was rejected: the stable reason codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    Malformed,
    MissingField,
    BadField,
    UnknownType,
    BadCoordinates,
    Inaccurate,
    Late,
    Duplicate,
    /// A hunt change record that is not valid (docs/spec.md §9); counted
    /// apart from the events' reasons.
    BadHuntChange,
}

impl Reason {
    /// Every reason of an event, in the order of the contract's table.
    pub const ALL: [Reason; 8] = [
        Reason::Malformed,
        Reason::MissingField,
        Reason::BadField,
        Reason::UnknownType,
        Reason::BadCoordinates,
        Reason::Inaccurate,
        Reason::Late,
        Reason::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::MissingField => "missing_field",
            Reason::BadField => "bad_field",
            Reason::UnknownType => "unknown_type",
            Reason::BadCoordinates => "bad_coordinates",
            Reason::Inaccurate => "inaccurate",
            Reason::Late => "late",
            Reason::Duplicate => "duplicate",
            Reason::BadHuntChange => "bad_hunt_change",
        }
    }

    /// The place of an event's reason in [`Reason::ALL`] (not for
    /// [`Reason::BadHuntChange`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that failed validation: the reason and a human-readable detail.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    pub reason: Reason,
    pub detail: String,
}

fn invalid(reason: Reason, detail: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        detail: detail.into(),
    }
}

/// A record that passed every check that needs no partition state.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<'a> {
    pub id: Cow<'a, str>,
    pub player: Cow<'a, str>,
    pub ts: u64,
    pub ttl_ms: Option<u64>,
    pub priority: Option<u8>,
    pub body: Body<'a>,
}

/// The type-specific part of a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Body<'a> {
    Position {
        lat: f64,
        lon: f64,
        accuracy_m: Option<f64>,
    },
    Action {
        action: Cow<'a, str>,
        target: Cow<'a, str>,
    },
    Sensor {
        sensor: Cow<'a, str>,
        value: f64,
    },
}

/// One JSON value as far as validation needs to know it.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Bool,
    Int(u64),
    NegInt(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Compound,
}

impl Val<'_> {
    fn number(&self) -> Option<f64> {
        match self {
            Val::Int(v) => Some(*v as f64),
            Val::NegInt(v) => Some(*v as f64),
            Val::Float(v) => Some(*v),
            _ => None,
        }
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Int(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(if v >= 0 {
            Val::Int(v as u64)
        } else {
            Val::NegInt(v)
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Compound)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// The fields the contract knows, each as its raw JSON value. A repeated key
/// keeps its last value; unknown keys are skipped.
#[derive(Debug, Default, PartialEq)]
struct Fields<'a> {
    id: Option<Val<'a>>,
    kind: Option<Val<'a>>,
    player: Option<Val<'a>>,
    ts: Option<Val<'a>>,
    ttl_ms: Option<Val<'a>>,
    priority: Option<Val<'a>>,
    lat: Option<Val<'a>>,
    lon: Option<Val<'a>>,
    accuracy_m: Option<Val<'a>>,
    action: Option<Val<'a>>,
    target: Option<Val<'a>>,
    sensor: Option<Val<'a>>,
    value: Option<Val<'a>>,
}

impl<'a> Fields<'a> {
    /// Records `value` under `key` (nothing for [`Key::Other`]); `null`
    /// counts as absent.
    fn set(&mut self, key: Key, value: Val<'a>) {
        let slot = match key {
            Key::Id => &mut self.id,
            Key::Type => &mut self.kind,
            Key::Player => &mut self.player,
            Key::Ts => &mut self.ts,
            Key::TtlMs => &mut self.ttl_ms,
            Key::Priority => &mut self.priority,
            Key::Lat => &mut self.lat,
            Key::Lon => &mut self.lon,
            Key::AccuracyM => &mut self.accuracy_m,
            Key::Action => &mut self.action,
            Key::Target => &mut self.target,
            Key::Sensor => &mut self.sensor,
            Key::Value => &mut self.value,
            Key::Other => return,
        };
        *slot = if matches!(value, Val::Null) {
            None
        } else {
            Some(value)
        };
    }
}

/// The keys the contract knows; any other key is `Other`. Decoded without
/// allocating, whether or not the key is escaped.
#[derive(Clone, Copy)]
enum Key {
    Id,
    Type,
    Player,
    Ts,
    TtlMs,
    Priority,
    Lat,
    Lon,
    AccuracyM,
    Action,
    Target,
    Sensor,
    Value,
    Other,
}

struct KeyVisitor;

/// The key a decoded object key names.
fn key(name: &str) -> Key {
    match name {
        "id" => Key::Id,
        "type" => Key::Type,
        "player" => Key::Player,
        "ts" => Key::Ts,
        "ttl_ms" => Key::TtlMs,
        "priority" => Key::Priority,
        "lat" => Key::Lat,
        "lon" => Key::Lon,
        "accuracy_m" => Key::AccuracyM,
        "action" => Key::Action,
        "target" => Key::Target,
        "sensor" => Key::Sensor,
        "value" => Key::Value,
        _ => Key::Other,
    }
}

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, name: &str) -> Result<Key, E> {
        Ok(key(name))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            if let Key::Other = key {
                map.next_value::<IgnoredAny>()?;
            } else {
                fields.set(key, map.next_value()?);
            }
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

/// A decoder for the usual shape of a record: one flat JSON object whose
/// strings have no escapes and whose numbers have no exponent and at most 19
/// digits. It gives exactly the [`Fields`] serde_json gives (numbers converted
/// as serde_json converts them), or `None` for anything else, which then goes
/// through serde_json: its decisions and error messages stay the reference.
/// No allocation: strings are borrowed from the line.
mod flat {
    use std::borrow::Cow;

    use super::{key, Fields, Val};

    /// `10^k` for the fraction digits a number may have here.
    const POW10: [f64; 20] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19,
    ];
    /// Most digits a number may have: fewer than 20 never overflow a `u64`.
    const MAX_DIGITS: usize = 19;
    /// The bytes that end the plain part of a string: a quote, a backslash,
    /// a control character.
    const STOP: [bool; 256] = {
        let mut stop = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            stop[b] = true;
            b += 1;
        }
        stop[b'"' as usize] = true;
        stop[b'\\' as usize] = true;
        stop
    };

    struct Cursor<'a> {
        text: &'a str,
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.at).copied()
        }

        /// JSON white space, as serde_json skips it.
        fn white(&mut self) {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.at += 1;
            }
        }

        fn eat(&mut self, byte: u8) -> Option<()> {
            (self.peek()? == byte).then(|| self.at += 1)
        }

        /// A string without escapes or control characters, borrowed.
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.at;
            let rest = &self.text.as_bytes()[start..];
            let len = rest.iter().position(|&b| STOP[usize::from(b)])?;
            if rest[len] != b'"' {
                return None;
            }
            self.at = start + len + 1;
            // The quotes are ASCII, so both ends are character boundaries.
            self.text.get(start..start + len)
        }

        fn word(&mut self, word: &[u8], val: Val<'a>) -> Option<Val<'a>> {
            let found = self.text.as_bytes()[self.at..].starts_with(word);
            found.then(|| {
                self.at += word.len();
                val
            })
        }

        /// Digits into `significand`; how many there were.
        fn digits(&mut self, significand: &mut u64, count: &mut usize) -> Option<usize> {
            let mut n = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if *count == MAX_DIGITS {
                    return None;
                }
                *significand = *significand * 10 + u64::from(d - b'0');
                *count += 1;
                n += 1;
                self.at += 1;
            }
            Some(n)
        }

        /// A number: an integer literal is an integer (negative ones as
        /// serde_json classifies them, `-0` a float), one with a fraction a
        /// float computed as serde_json computes it (the digits as an integer,
        /// divided by a power of ten).
        fn number(&mut self) -> Option<Val<'a>> {
            let negative = self.peek() == Some(b'-');
            if negative {
                self.at += 1;
            }
            let (mut significand, mut count) = (0u64, 0usize);
            match self.peek()? {
                b'0' => {
                    self.at += 1;
                    count = 1;
                    if let Some(b'0'..=b'9') = self.peek() {
                        return None;
                    }
                }
                b'1'..=b'9' => {
                    self.digits(&mut significand, &mut count)?;
                }
                _ => return None,
            }
            let mut fraction = 0;
            if self.peek() == Some(b'.') {
                self.at += 1;
                fraction = self.digits(&mut significand, &mut count)?;
                if fraction == 0 {
                    return None;
                }
            }
            if let Some(b'e' | b'E') = self.peek() {
                return None;
            }
            if fraction > 0 {
                let f = significand as f64 / POW10[fraction];
                return Some(Val::Float(if negative { -f } else { f }));
            }
            if !negative {
                return Some(Val::Int(significand));
            }
            let neg = (significand as i64).wrapping_neg();
            Some(if neg >= 0 {
                Val::Float(-(significand as f64))
            } else {
                Val::NegInt(neg)
            })
        }

        /// A value other than an array or an object.
        fn value(&mut self) -> Option<Val<'a>> {
            match self.peek()? {
                b'"' => Some(Val::Str(Cow::Borrowed(self.string()?))),
                b'n' => self.word(b"null", Val::Null),
                b't' => self.word(b"true", Val::Bool),
                b'f' => self.word(b"false", Val::Bool),
                b'-' | b'0'..=b'9' => self.number(),
                _ => None,
            }
        }
    }

    /// The fields of `text`, or `None` when it is not of the shape above.
    #[cfg(test)]
    pub(super) fn fields(text: &str) -> Option<Fields<'_>> {
        let mut fields = Fields::default();
        decode(text, &mut fields).map(|()| fields)
    }

    /// Decodes `text` into `fields` (default on entry); `None` when it is
    /// not of the shape above, `fields` then holding part of it.
    pub(super) fn decode<'a>(text: &'a str, fields: &mut Fields<'a>) -> Option<()> {
        let mut c = Cursor { text, at: 0 };
        c.white();
        c.eat(b'{')?;
        c.white();
        if c.eat(b'}').is_none() {
            loop {
                let name = c.string()?;
                c.white();
                c.eat(b':')?;
                c.white();
                let value = c.value()?;
                fields.set(key(name), value);
                c.white();
                match c.peek()? {
                    b',' => {
                        c.at += 1;
                        c.white();
                    }
                    b'}' => {
                        c.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        c.white();
        (c.at == text.len()).then_some(())
    }
}

/// True for a line that holds only JSON white space (skipped, not counted).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn require<'v, 'a>(v: &'v Option<Val<'a>>, name: &str) -> Result<&'v Val<'a>, Invalid> {
    v.as_ref()
        .ok_or_else(|| invalid(Reason::MissingField, format!("missing field \"{name}\"")))
}

fn string<'a>(v: &Val<'a>, name: &str, max_len: Option<usize>) -> Result<Cow<'a, str>, Invalid> {
    match v {
        Val::Str(s) => {
            if let Some(max) = max_len {
                if s.is_empty() || s.len() > max {
                    return Err(invalid(
                        Reason::BadField,
                        format!("field \"{name}\" must be a string of 1 to {max} bytes"),
                    ));
                }
            }
            Ok(s.clone())
        }
        _ => Err(invalid(
            Reason::BadField,
            format!("field \"{name}\" must be a string"),
        )),
    }
}

fn integer(v: &Val<'_>, name: &str, min: u64, max: u64) -> Result<u64, Invalid> {
    match v {
        Val::Int(i) if *i >= min && *i <= max => Ok(*i),
        _ => Err(invalid(
            Reason::BadField,
            if max == u64::MAX {
                format!("field \"{name}\" must be an integer >= {min}")
            } else {
                format!("field \"{name}\" must be an integer in {min}..={max}")
            },
        )),
    }
}

fn number(v: &Val<'_>, name: &str) -> Result<f64, Invalid> {
    match v.number() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(invalid(
            Reason::BadField,
            format!("field \"{name}\" must be a finite number"),
        )),
    }
}

/// Decodes and validates one record, through every check that needs no
/// partition state (all but `late` and `duplicate`).
pub fn parse<'a>(line: &'a [u8], hunt: &Hunt) -> Result<Parsed<'a>, Invalid> {
    if line.len() > MAX_RECORD_BYTES {
        return Err(invalid(
            Reason::Malformed,
            format!(
                "record of {} bytes is over {} bytes",
                line.len(),
                MAX_RECORD_BYTES
            ),
        ));
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| invalid(Reason::Malformed, format!("not UTF-8: {e}")))?;
    let mut f = Fields::default();
    if flat::decode(text, &mut f).is_none() {
        f = serde_json::from_str(text)
            .map_err(|e| invalid(Reason::Malformed, format!("not a JSON object: {e}")))?;
    }

    // Common fields: present, then well-typed and in range.
    let id = require(&f.id, "id")?;
    let kind = require(&f.kind, "type")?;
    let player = require(&f.player, "player")?;
    let ts = require(&f.ts, "ts")?;
    let id = string(id, "id", Some(MAX_ID_BYTES))?;
    let kind = string(kind, "type", None)?;
    let player = string(player, "player", Some(MAX_ID_BYTES))?;
    let ts = integer(ts, "ts", 0, MAX_TS)?;
    let ttl_ms = match &f.ttl_ms {
        Some(v) => Some(integer(v, "ttl_ms", 1, u64::MAX)?),
        None => None,
    };
    let priority = match &f.priority {
        Some(v) => Some(integer(v, "priority", 0, 9)? as u8),
        None => None,
    };

    let body = match kind.as_ref() {
        "position" => {
            let lat = require(&f.lat, "lat")?;
            let lon = require(&f.lon, "lon")?;
            let lat = number(lat, "lat")?;
            let lon = number(lon, "lon")?;
            let accuracy_m = match &f.accuracy_m {
                Some(v) => match v.number() {
                    Some(a) if a >= 0.0 && a.is_finite() => Some(a),
                    _ => {
                        return Err(invalid(
                            Reason::BadField,
                            "field \"accuracy_m\" must be a finite number >= 0",
                        ))
                    }
                },
                None => None,
            };
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(invalid(
                    Reason::BadCoordinates,
                    format!("lat {lat} / lon {lon} out of range"),
                ));
            }
            if let (Some(a), Some(max)) = (accuracy_m, hunt.max_accuracy_m) {
                if a > max {
                    return Err(invalid(
                        Reason::Inaccurate,
                        format!("accuracy_m {a} above the hunt's max_accuracy_m {max}"),
                    ));
                }
            }
            Body::Position {
                lat,
                lon,
                accuracy_m,
            }
        }
        "action" => {
            let action = require(&f.action, "action")?;
            let target = require(&f.target, "target")?;
            Body::Action {
                action: string(action, "action", None)?,
                target: string(target, "target", None)?,
            }
        }
        "sensor" => {
            let sensor = require(&f.sensor, "sensor")?;
            let value = require(&f.value, "value")?;
            Body::Sensor {
                sensor: string(sensor, "sensor", None)?,
                value: number(value, "value")?,
            }
        }
        other => {
            let mut shown: String = other.chars().take(64).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(invalid(
                Reason::UnknownType,
                format!("unknown type {shown:?} (position, action or sensor)"),
            ));
        }
    };

    Ok(Parsed {
        id,
        player,
        ts,
        ttl_ms,
        priority,
        body,
    })
}

/// A player or event id as the dataflow carries it: short ids are stored
/// inline, so copying one does not allocate.
pub type Id = compact_str::CompactString;

/// An accepted record reduced to what the dataflow needs. Hunt items are
/// named, not numbered: an event is interpreted by the hunt version in
/// effect at its `ts` (docs/spec.md §9), which the facts operator knows.
/// Records with no effect under any hunt (other verbs) never become one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts: u64,
    pub player: Id,
    pub fact: Fact,
}

/// What an accepted record says; `ttl` is the record's own `ttl_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    Position {
        id: Id,
        lat: f64,
        lon: f64,
        ttl: Option<u64>,
    },
    Reading {
        id: Id,
        sensor: Id,
        value: f64,
        ttl: Option<u64>,
    },
    Solve {
        clue: Id,
        ttl: Option<u64>,
    },
    Claim {
        reward: Id,
    },
}

impl Parsed<'_> {
    /// The dataflow event for an accepted record, or `None` when the record
    /// can have no effect under any hunt (a verb other than solve or claim).
    pub fn into_event(self) -> Option<Event> {
        let ttl = self.ttl_ms;
        let fact = match self.body {
            Body::Position { lat, lon, .. } => Fact::Position {
                id: Id::from(self.id.as_ref()),
                lat,
                lon,
                ttl,
            },
            Body::Sensor { sensor, value } => Fact::Reading {
                id: Id::from(self.id.as_ref()),
                sensor: Id::from(sensor.as_ref()),
                value,
                ttl,
            },
            Body::Action { action, target } => match action.as_ref() {
                "solve" => Fact::Solve {
                    clue: Id::from(target.as_ref()),
                    ttl,
                },
                "claim" => Fact::Claim {
                    reward: Id::from(target.as_ref()),
                },
                _ => return None,
            },
        };
        Some(Event {
            ts: self.ts,
            player: Id::from(self.player.as_ref()),
            fact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunt() -> Hunt {
        let dir = std::env::temp_dir().join(format!("huntflow-event-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("hunt.toml");
        std::fs::write(&path, "max_accuracy_m = 10.0\n").expect("write hunt");
        Hunt::load(&path).expect("hunt loads")
    }

    fn reason(line: &str) -> Result<(), Reason> {
        parse(line.as_bytes(), &hunt())
            .map(|_| ())
            .map_err(|e| e.reason)
    }

    const POS: &str = r#""type":"position","player":"p","lat":1,"lon":-2"#;

    /// Whether the flat decoder took `text`; when it did, its fields must be
    /// serde_json's (floats compared by their exact spelling, so `-0.0`).
    fn flat_agrees(text: &str) -> bool {
        let Some(fast) = flat::fields(text) else {
            return false;
        };
        let slow: Fields = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{text:?}: decoded flat, serde_json says {e}"));
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text:?}");
        true
    }

    #[test]
    fn the_flat_decoder_agrees_with_serde_json_or_leaves_the_record_to_it() {
        let taken = [
            "{}",
            " \t{ } \r\n",
            r#"{"id":"a","ts":5,"type":"position","lat":48.8530,"lon":-2.25}"#,
            r#"{ "id" : "x" , "ts" : 5 }"#,
            r#"{"ts":0,"lat":-0,"lon":-0.0,"value":0.000}"#,
            r#"{"ts":9999999999999999999,"value":-9999999999999999999}"#,
            r#"{"ts":-9223372036854775808,"lat":-9223372036854775809}"#,
            r#"{"lat":0.123456789012345678,"lon":123456789.0123456789}"#,
            r#"{"id":true,"id":"x","player":null,"ttl_ms":false}"#,
            r#"{"id":"é ü 東","x":"y","ID":3,"":""}"#,
        ];
        for text in taken {
            assert!(flat_agrees(text), "{text:?} left to serde_json");
        }
        let left = [
            "",
            "[1]",
            r#"{"ts":1e5}"#,
            r#"{"ts":1E5}"#,
            r#"{"ts":00}"#,
            r#"{"ts":01}"#,
            r#"{"ts":1.}"#,
            r#"{"ts":.5}"#,
            r#"{"ts":-}"#,
            r#"{"ts":+1}"#,
            r#"{"ts":18446744073709551615}"#,
            r#"{"ts":18446744073709551616}"#,
            r#"{"lat":0.12345678901234567890}"#,
            r#"{"id":"a\"b"}"#,
            r#"{"\u0069d":"a"}"#,
            "{\"id\":\"tab\there\"}",
            r#"{"id":"x"}x"#,
            r#"{"id":"x"}{"id":"y"}"#,
            r#"{"id":"x",}"#,
            r#"{,}"#,
            r#"{"id":nul}"#,
            r#"{"id":nullx}"#,
            r#"{"x":{"y":1}}"#,
            r#"{"x":[1]}"#,
            r#"{"id" "x"}"#,
            r#"{"id":"x""#,
        ];
        for text in left {
            assert!(!flat_agrees(text), "{text:?} decoded flat");
        }
    }

    /// Seeded random edits of the demo's records, as robustness tests make
    /// them: wherever the flat decoder answers, serde_json answers the same.
    #[test]
    fn the_flat_decoder_agrees_on_edited_records() {
        use rand::{Rng, SeedableRng};
        let demo = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/demo/part-000.jsonl"),
        )
        .expect("read the demo");
        let alphabet: Vec<char> = "{}[]\",:.-+eE0123456789 \t\n\\nultrfasé\u{1}"
            .chars()
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut lines, mut flat, mut edited, mut edited_flat) = (0, 0, 0, 0);
        let texts = demo
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok());
        for line in texts.take(3_000) {
            lines += 1;
            flat += usize::from(flat_agrees(line));
            for _ in 0..20 {
                let mut chars: Vec<char> = line.chars().collect();
                for _ in 0..rng.random_range(1..=2) {
                    let at = rng.random_range(0..=chars.len());
                    let c = alphabet[rng.random_range(0..alphabet.len())];
                    match rng.random_range(0..3) {
                        0 if at < chars.len() => chars[at] = c,
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ => chars.insert(at, c),
                    }
                }
                let text: String = chars.into_iter().collect();
                edited += 1;
                edited_flat += usize::from(flat_agrees(&text));
            }
        }
        // The usual records take the flat path, and so do many edited ones.
        assert!(
            flat * 100 >= lines * 95,
            "{flat} of {lines} demo lines flat"
        );
        assert!(
            edited_flat * 4 >= edited,
            "{edited_flat} of {edited} edits flat"
        );
    }

    #[test]
    fn numbers_are_classified_by_their_spelling() {
        assert_eq!(reason(&format!(r#"{{"id":"a","ts":5,{POS}}}"#)), Ok(()));
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":5.0,{POS}}}"#)),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":5e0,{POS}}}"#)),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":-5,{POS}}}"#)),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":true,{POS}}}"#)),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":9007199254740993,{POS}}}"#)),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","ts":9007199254740992,{POS}}}"#)),
            Ok(())
        );
    }

    #[test]
    fn keys_nulls_and_repeats() {
        // An escaped key is the same key.
        assert_eq!(
            reason(&format!(r#"{{"\u0069d":"a","ts":5,{POS}}}"#)),
            Ok(())
        );
        // null counts as absent; the last of repeated keys wins.
        assert_eq!(
            reason(&format!(r#"{{"id":null,"ts":5,{POS}}}"#)),
            Err(Reason::MissingField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":"a","id":null,"ts":5,{POS}}}"#)),
            Err(Reason::MissingField)
        );
        assert_eq!(
            reason(&format!(r#"{{"id":1,"id":"a","ts":5,{POS}}}"#)),
            Ok(())
        );
        // Unknown fields, even nested, are ignored.
        assert_eq!(
            reason(&format!(
                r#"{{"id":"a","ts":5,"x":{{"y":[1,{{}}]}},{POS}}}"#
            )),
            Ok(())
        );
    }

    #[test]
    fn order_of_checks() {
        assert_eq!(reason("[1]"), Err(Reason::Malformed));
        assert_eq!(reason(r#"{"id":"a"} x"#), Err(Reason::Malformed));
        assert_eq!(reason(r#"{"type":"nope"}"#), Err(Reason::MissingField));
        assert_eq!(
            reason(r#"{"id":"","type":"nope","player":"p","ts":1}"#),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(r#"{"id":"a","type":"nope","player":"p","ts":1}"#),
            Err(Reason::UnknownType)
        );
        assert_eq!(
            reason(r#"{"id":"a","type":"position","player":"p","ts":1,"lat":91}"#),
            Err(Reason::MissingField)
        );
        assert_eq!(
            reason(
                r#"{"id":"a","type":"position","player":"p","ts":1,"lat":91,"lon":0,"accuracy_m":99}"#
            ),
            Err(Reason::BadCoordinates)
        );
        assert_eq!(
            reason(
                r#"{"id":"a","type":"position","player":"p","ts":1,"lat":9,"lon":0,"accuracy_m":99}"#
            ),
            Err(Reason::Inaccurate)
        );
        assert_eq!(
            reason(r#"{"id":"a","type":"sensor","player":"p","ts":1,"sensor":"s","value":"1"}"#),
            Err(Reason::BadField)
        );
        assert_eq!(
            reason(r#"{"id":"a","type":"action","player":"p","ts":1,"action":"wave","target":""}"#),
            Ok(())
        );
    }
}
