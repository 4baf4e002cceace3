//! One generated event and its JSON Lines rendering: field order, optional and `null` fields,
//! unknown extra fields, and the field patches that turn a good event into a bad line.

use super::geom::{push_f64, push_u64};
use super::world::World;

/// An optional field: left out, written as `null`, or written with a value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Opt<T> {
    Absent,
    Null,
    Val(T),
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    Clue(usize),
    Reward(usize),
    Player(usize),
    Word(&'static str),
}

#[derive(Clone, Debug)]
pub(super) enum Body {
    Position { lat: f64, lon: f64, acc: Opt<f64> },
    Action { verb: &'static str, target: Target },
    Sensor { sensor: usize, value: f64 },
}

#[derive(Clone, Debug)]
pub(super) struct Ev {
    pub part: u32,
    pub n: u64,
    /// Pad the id to exactly 128 bytes, the longest valid id.
    pub long_id: bool,
    pub player: usize,
    pub ts: u64,
    pub ttl: Opt<u64>,
    pub priority: Opt<u8>,
    pub body: Body,
    /// Index into [`EXTRAS`]: an unknown field appended to the object.
    pub extra: Option<usize>,
}

/// Unknown fields that events carry now and then; each is a raw `"key":value` JSON fragment.
pub(super) const EXTRAS: &[&str] = &[
    r#""app":"huntflow-demo/0.3""#,
    r#""meta":{"battery":0.42,"tags":["night","team-b"],"nested":{"a":[1,2,{"b":null}]}}"#,
    r#""speed_mps":3.5"#,
    r#""note":"caf\u00e9 \"quoted\" \\ text \u2713""#,
    r#""Lat":1.0"#,
    r#""device":null"#,
];

/// Every string the events name, indexed by the generator.
pub(super) struct Names {
    pub players: Vec<String>,
    /// Hunt clues first (`clue-0`…), then clue names the hunt does not know.
    pub clues: Vec<String>,
    pub known_clues: usize,
    /// Hunt rewards first (`r00`…), then unknown reward names.
    pub rewards: Vec<String>,
    pub known_rewards: usize,
    /// Sensors `beacon-0`… first, then unknown sensor names.
    pub sensors: Vec<String>,
    pub known_sensors: usize,
}

impl Names {
    pub fn new(world: &World, players: usize) -> Names {
        let players = (0..players)
            .map(|i| {
                if i % 50 == 49 {
                    format!("p{i}-\u{fc}")
                } else {
                    format!("p{i}")
                }
            })
            .collect();
        Names {
            players,
            known_clues: world.clues.len(),
            clues: with_unknown(&world.clues, ["clue-x1", "CLUE-0", "riddle-7"]),
            known_rewards: world.rewards.len(),
            rewards: with_unknown(&world.rewards, ["r-x1", "R00", "bonus"]),
            known_sensors: world.sensors.len(),
            sensors: with_unknown(&world.sensors, ["beacon-x1", "thermo-1", "BEACON-0"]),
        }
    }
}

/// The known names followed by the unknown ones, each unknown name suffixed with `~` until it
/// differs from every name before it.
pub(super) fn with_unknown(known: &[String], unknown: [&str; 3]) -> Vec<String> {
    let mut names = known.to_vec();
    for u in unknown {
        let mut name = u.to_string();
        while names.contains(&name) {
            name.push('~');
        }
        names.push(name);
    }
    names
}

/// Changes one field of a rendered event: drop it, or replace its value by raw bytes (a field
/// the event does not have is appended).
pub(super) enum Patch {
    Omit(&'static str),
    Raw(&'static str, Vec<u8>),
}

impl Patch {
    fn key(&self) -> &'static str {
        match self {
            Patch::Omit(k) | Patch::Raw(k, _) => k,
        }
    }
}

struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    patch: Option<&'a Patch>,
    applied: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn field(&mut self, key: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        match self.patch {
            Some(p) if p.key() == key => {
                self.applied = true;
                if let Patch::Raw(_, raw) = p {
                    self.key(key);
                    self.out.extend_from_slice(raw);
                }
            }
            _ => {
                self.key(key);
                value(self.out);
            }
        }
    }

    fn str(&mut self, key: &'static str, s: &str) {
        // Writing into a Vec<u8> cannot fail; ids from a hunt file may need escaping.
        self.field(key, |o| {
            let _ = serde_json::to_writer(&mut *o, s);
        });
    }

    fn opt<T: Copy>(&mut self, key: &'static str, v: Opt<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
        match v {
            Opt::Absent => {}
            Opt::Null => self.field(key, |o| o.extend_from_slice(b"null")),
            Opt::Val(x) => self.field(key, |o| write(o, x)),
        }
    }
}

/// Appends the event's id (`e{partition}-{n}`, or that padded with `0` to 128 bytes).
pub(super) fn push_id(out: &mut Vec<u8>, ev: &Ev) {
    let start = out.len();
    out.push(b'e');
    push_u64(out, u64::from(ev.part));
    out.push(b'-');
    push_u64(out, ev.n);
    if ev.long_id {
        out.push(b'-');
        let pad = 128usize.saturating_sub(out.len() - start);
        out.resize(out.len() + pad, b'0');
    }
}

pub(super) fn type_name(body: &Body) -> &'static str {
    match body {
        Body::Position { .. } => "position",
        Body::Action { .. } => "action",
        Body::Sensor { .. } => "sensor",
    }
}

/// Appends the event as one JSON object (no newline), with `patch` applied.
pub(super) fn render(ev: &Ev, names: &Names, patch: Option<&Patch>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut f = Fields {
        out: &mut *out,
        first: true,
        patch,
        applied: false,
    };
    f.field("id", |o| {
        o.push(b'"');
        push_id(o, ev);
        o.push(b'"');
    });
    f.str("type", type_name(&ev.body));
    f.str("player", &names.players[ev.player]);
    f.field("ts", |o| push_u64(o, ev.ts));
    f.opt("ttl_ms", ev.ttl, push_u64);
    f.opt("priority", ev.priority, |o, p| push_u64(o, u64::from(p)));
    match &ev.body {
        Body::Position { lat, lon, acc } => {
            f.field("lat", |o| push_f64(o, *lat));
            f.field("lon", |o| push_f64(o, *lon));
            f.opt("accuracy_m", *acc, push_f64);
        }
        Body::Action { verb, target } => {
            f.str("action", verb);
            let t = match *target {
                Target::Clue(c) => names.clues[c].as_str(),
                Target::Reward(r) => names.rewards[r].as_str(),
                Target::Player(p) => names.players[p].as_str(),
                Target::Word(w) => w,
            };
            f.str("target", t);
        }
        Body::Sensor { sensor, value } => {
            f.str("sensor", &names.sensors[*sensor]);
            f.field("value", |o| push_f64(o, *value));
        }
    }
    if let Some(x) = ev.extra {
        f.key_raw(EXTRAS[x % EXTRAS.len()]);
    }
    if let (Some(Patch::Raw(key, raw)), false) = (f.patch, f.applied) {
        f.key(key);
        f.out.extend_from_slice(raw);
    }
    out.push(b'}');
}

impl Fields<'_> {
    fn key_raw(&mut self, fragment: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(fragment.as_bytes());
    }
}
