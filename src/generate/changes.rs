//! Hunt change logs for a synthetic hunt (docs/spec.md §9). Each change is a new version of the
//! whole hunt derived from the one before by a mix of edits: zones moved, resized, added and
//! removed (and moved between the TOML and the GeoJSON); rewards added, retired and rewritten
//! (other zone, other clues, other sensor bounds, other window); priorities and default TTLs
//! changed. `max_lateness_ms` and `max_accuracy_m` never change in a valid record. Effective
//! times lie strictly inside the events' time span, in order; now and then two records share
//! one (the later wins), and sometimes one invalid record is mixed in so that rejects occur.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::geom::round_to;
use super::hunt_text::version_toml;
use super::model::{self, rate, Model, Place, RewardSpec, Shape};
use super::GenerateOptions;

/// Chance that a record takes the effective time of the record before it.
const SAME_TIME_RATE: f64 = 0.2;
/// Chance that a change log (with bad lines allowed) holds one invalid record.
const BAD_RECORD_RATE: f64 = 0.4;

/// A generated change log.
pub(super) struct ChangeLog {
    /// The change records in log order, one JSON object each (no newline).
    pub lines: Vec<String>,
    /// Records a reader accepts and rejects.
    pub accepted: u64,
    pub rejected: u64,
    /// Every valid version, in log order.
    pub versions: Vec<Model>,
    /// Clues and sensors numbered over every version (`clue-0`…, `beacon-0`…).
    pub clues: usize,
    pub sensors: usize,
    /// Per sensor, the band its readings centre on.
    pub sensor_ranges: Vec<(f64, f64)>,
    /// Polygon vertices of every version's zones.
    pub vertices: Vec<(f64, f64)>,
}

/// One version: the hunt model and its default TTLs.
#[derive(Clone)]
struct Version {
    model: Model,
    position_ttl_ms: u64,
    sensor_ttl_ms: u64,
}

/// Ways a change record is invalid.
#[derive(Clone, Copy)]
enum Bad {
    NotJson,
    Toml,
    UnknownZone,
    ChangedLateness,
    ChangedAccuracy,
    GeojsonMismatch,
    Effective,
}

const BAD: [Bad; 7] = [
    Bad::NotJson,
    Bad::Toml,
    Bad::UnknownZone,
    Bad::ChangedLateness,
    Bad::ChangedAccuracy,
    Bad::GeojsonMismatch,
    Bad::Effective,
];

struct Evolver<'a> {
    opts: &'a GenerateOptions,
    rng: ChaCha8Rng,
    start_ms: u64,
    span_ms: u64,
    next_zone: usize,
    next_reward: usize,
    clues: usize,
    sensors: usize,
    sensor_ranges: Vec<(f64, f64)>,
    ranged: Vec<bool>,
    vertices: Vec<(f64, f64)>,
}

/// The event time span of `opts`, as the hunt model computes it.
fn span_ms(opts: &GenerateOptions) -> u64 {
    ((opts.events as f64) * 1000.0 / rate(opts)).ceil().max(1.0) as u64
}

/// Generates `opts.changes` valid change records (and maybe one invalid one) for the synthetic
/// hunt `start`.
pub(super) fn generate(opts: &GenerateOptions, start: &Model) -> ChangeLog {
    let mut ev = Evolver {
        opts,
        rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6a09_e667_f3bc_c908),
        start_ms: opts.start_ms,
        span_ms: span_ms(opts),
        next_zone: start.zones.len(),
        next_reward: start.rewards.len(),
        clues: start.clues,
        sensors: start.sensors,
        sensor_ranges: start.sensor_ranges.clone(),
        ranged: vec![true; start.sensors],
        vertices: start.vertices.clone(),
    };
    let n = opts.changes as usize;
    // Well inside the span, so that events lie on both sides of every change.
    let lo = opts.start_ms.saturating_add((ev.span_ms / 20).max(1));
    let hi = opts.start_ms.saturating_add(ev.span_ms / 10 * 9).max(lo);
    let mut times: Vec<u64> = (0..n).map(|_| ev.rng.random_range(lo..=hi)).collect();
    times.sort_unstable();
    for i in 1..n {
        if ev.rng.random_bool(SAME_TIME_RATE) {
            times[i] = times[i - 1];
        }
    }
    let bad_allowed = opts.malformed_rate.is_finite() && opts.malformed_rate > 0.0;
    let bad_at = (n > 0 && bad_allowed && ev.rng.random_bool(BAD_RECORD_RATE))
        .then(|| ev.rng.random_range(0..=n));
    let mut current = Version {
        model: start.clone(),
        position_ttl_ms: opts.position_ttl_ms.max(1),
        sensor_ttl_ms: opts.sensor_ttl_ms.max(1),
    };
    let mut log = ChangeLog {
        lines: Vec::with_capacity(n + 1),
        accepted: n as u64,
        rejected: u64::from(bad_at.is_some()),
        versions: Vec::with_capacity(n),
        clues: 0,
        sensors: 0,
        sensor_ranges: Vec::new(),
        vertices: Vec::new(),
    };
    for k in 0..=n {
        if bad_at == Some(k) {
            let t = times.get(k).or(times.last()).copied().unwrap_or(lo);
            let kind = BAD[ev.rng.random_range(0..BAD.len())];
            let line = ev.bad_record(kind, t, &current, k + 1);
            log.lines.push(line);
        }
        if k < n {
            ev.edit(&mut current);
            log.lines.push(ev.record(times[k], &current, k + 1));
            log.versions.push(current.model.clone());
        }
    }
    log.clues = ev.clues;
    log.sensors = ev.sensors;
    log.sensor_ranges = ev.sensor_ranges;
    log.vertices = ev.vertices;
    log
}

impl Evolver<'_> {
    /// The options a version's TOML is written with.
    fn options(&self, v: &Version) -> GenerateOptions {
        GenerateOptions {
            for_hunt: None,
            position_ttl_ms: v.position_ttl_ms,
            sensor_ttl_ms: v.sensor_ttl_ms,
            ..self.opts.clone()
        }
    }

    fn object(effective: Value, toml: String, geojson: Option<Value>) -> String {
        let mut obj = Map::new();
        obj.insert("effective".into(), effective);
        obj.insert("hunt".into(), Value::String(toml));
        if let Some(g) = geojson {
            obj.insert("zones_geojson".into(), g);
        }
        Value::Object(obj).to_string()
    }

    /// The change record of version `number` of the hunt, effective at `t`.
    fn record(&self, t: u64, v: &Version, number: usize) -> String {
        let toml = version_toml(&self.options(v), &v.model, number);
        let geojson = v
            .model
            .geojson
            .then(|| super::hunt_text::geojson_value(&v.model));
        Self::object(json!(t), toml, geojson)
    }

    /// An invalid change record of kind `kind`, based on version `v`.
    fn bad_record(&mut self, kind: Bad, t: u64, v: &Version, number: usize) -> String {
        let opts = self.options(v);
        let toml = || version_toml(&opts, &v.model, number);
        let geojson = || {
            v.model
                .geojson
                .then(|| super::hunt_text::geojson_value(&v.model))
        };
        match kind {
            Bad::NotJson => {
                let whole = Self::object(json!(t), toml(), geojson());
                let mut cut = whole.len() / 2;
                while !whole.is_char_boundary(cut) {
                    cut -= 1;
                }
                whole[..cut].to_string()
            }
            Bad::Toml => {
                // The name loses its opening quote.
                let text = toml().replacen("name = \"", "name = ", 1);
                Self::object(json!(t), text, geojson())
            }
            Bad::UnknownZone => {
                let text = toml() + "\n[[rewards]]\nid = \"r-stray\"\nzone = \"no-such-zone\"\n";
                Self::object(json!(t), text, geojson())
            }
            Bad::ChangedLateness => {
                let opts = GenerateOptions {
                    max_lateness_ms: opts
                        .max_lateness_ms
                        .saturating_add(self.rng.random_range(1..=1_000)),
                    ..opts.clone()
                };
                let text = version_toml(&opts, &v.model, number);
                Self::object(json!(t), text, geojson())
            }
            Bad::ChangedAccuracy => {
                // An absent max_accuracy_m counts as a value, so dropping it is a change too.
                let accuracy = match super::hunt_text::max_accuracy(&opts) {
                    Some(a) if self.rng.random_bool(0.5) => Some(a + 10.0),
                    Some(_) => None,
                    None => Some(25.0),
                };
                let opts = GenerateOptions {
                    max_accuracy_m: accuracy,
                    ..opts.clone()
                };
                let text = version_toml(&opts, &v.model, number);
                Self::object(json!(t), text, geojson())
            }
            Bad::GeojsonMismatch => {
                // Zones missing while the TOML names a GeoJSON file, or given while it names none.
                let zones = match geojson() {
                    Some(_) => None,
                    None => Some(json!({"type": "FeatureCollection", "features": []})),
                };
                Self::object(json!(t), toml(), zones)
            }
            Bad::Effective => {
                let effective = match self.rng.random_range(0..4) {
                    0 => json!(-1),
                    1 => json!(t as f64 + 0.5),
                    2 => json!(t.to_string()),
                    _ => json!((1u64 << 53) + 1),
                };
                Self::object(effective, toml(), geojson())
            }
        }
    }

    /// Applies 2 to 5 random edits to `v`, then decides where its zones are written.
    fn edit(&mut self, v: &mut Version) {
        let edits = self.rng.random_range(2..=5);
        for _ in 0..edits {
            match self.rng.random_range(0..10) {
                0 => self.move_zone(&mut v.model),
                1 => self.resize_zone(&mut v.model),
                2 => self.add_zone(&mut v.model),
                3 => self.remove_zone(&mut v.model),
                4 => self.add_reward(&mut v.model),
                5 => self.retire_reward(&mut v.model),
                6 | 7 => self.rewrite_reward(&mut v.model),
                8 => self.priorities(&mut v.model),
                _ => self.ttls(v),
            }
        }
        let m = &mut v.model;
        let all_inline_possible = m.zones.iter().all(|z| !matches!(z.shape, Shape::Multi(_)));
        if all_inline_possible && self.rng.random_bool(0.25) {
            for z in &mut m.zones {
                z.inline = true;
            }
            m.geojson = false;
        } else {
            m.geojson = true;
        }
        m.clues = self.clues;
        m.sensors = self.sensors;
        m.sensor_ranges = self.sensor_ranges.clone();
    }

    /// A zone of a random kind, inline or in the GeoJSON, centred on `(x, y)`.
    fn zone(&mut self, m: &Model, id: String, at: (f64, f64, f64)) -> model::ZoneSpec {
        model::zone_at(
            id,
            at,
            Place::Either,
            &m.frame,
            &mut self.rng,
            &mut self.vertices,
        )
    }

    /// A new zone shape for zone `i` around `(x, y)` with rough radius `radius`, keeping its id
    /// and priority.
    fn reshape(&mut self, m: &mut Model, i: usize, x: f64, y: f64, radius: f64) {
        let old = &m.zones[i];
        let (id, priority) = (old.id.clone(), old.priority);
        let mut zone = self.zone(m, id, (x, y, radius));
        zone.priority = priority;
        m.zones[i] = zone;
    }

    fn move_zone(&mut self, m: &mut Model) {
        if m.zones.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..m.zones.len());
        let z = &m.zones[i];
        let (x, y, r) = (z.x, z.y, z.radius_m);
        let d = r * self.rng.random_range(0.3..1.5);
        let (s, c) = super::geom::sin_cos(self.rng.random_range(0.0..std::f64::consts::TAU));
        let (hx, hy) = (0.9 * m.frame.half_x, 0.9 * m.frame.half_y);
        let (nx, ny) = ((x + d * c).clamp(-hx, hx), (y + d * s).clamp(-hy, hy));
        self.reshape(m, i, nx, ny, r);
    }

    fn resize_zone(&mut self, m: &mut Model) {
        if m.zones.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..m.zones.len());
        let z = &m.zones[i];
        let (x, y) = (z.x, z.y);
        let r = round_to(
            (z.radius_m * self.rng.random_range(0.4..2.0)).max(10.0),
            0.1,
        );
        self.reshape(m, i, x, y, r);
    }

    fn add_zone(&mut self, m: &mut Model) {
        let half = m.frame.half_x;
        let radius = round_to(
            (self.rng.random_range(0.015..0.12) * 2.0 * half).max(10.0),
            0.1,
        );
        // Half the new zones share a centre with a zone already there (players stand there).
        let (x, y) = if !m.zones.is_empty() && self.rng.random_bool(0.5) {
            let z = &m.zones[self.rng.random_range(0..m.zones.len())];
            (z.x, z.y)
        } else {
            (
                self.rng.random_range(-0.9 * half..=0.9 * half),
                self.rng
                    .random_range(-0.9 * m.frame.half_y..=0.9 * m.frame.half_y),
            )
        };
        let id = format!("z{:03}", self.next_zone);
        self.next_zone += 1;
        let zone = self.zone(m, id, (x, y, radius));
        m.zones.push(zone);
    }

    fn remove_zone(&mut self, m: &mut Model) {
        if m.zones.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..m.zones.len());
        m.zones.remove(i);
        let mut rewards = std::mem::take(&mut m.rewards);
        for r in &mut rewards {
            r.zone = match r.zone {
                Some(z) if z == i => None,
                Some(z) if z > i => Some(z - 1),
                other => other,
            };
            self.ensure_condition(r, m.zones.len());
        }
        m.rewards = rewards;
    }

    fn add_reward(&mut self, m: &mut Model) {
        let id = format!("r{:02}", self.next_reward);
        self.next_reward += 1;
        let mut r = RewardSpec {
            id,
            priority: self.priority(),
            zone: None,
            requires: Vec::new(),
            empty_requires: false,
            sensor: None,
            active: None,
        };
        let zones = m.zones.len();
        let (zone, clues, sensor) = match self.rng.random_range(0..5) {
            0 => (true, false, false),
            1 => (true, true, false),
            2 => (false, true, true),
            3 => (true, false, true),
            _ => (false, true, false),
        };
        if zone && zones > 0 {
            r.zone = Some(self.rng.random_range(0..zones));
        }
        if clues {
            r.requires = self.pick_clues();
        }
        if sensor {
            r.sensor = Some(self.pick_sensor());
        }
        if self.rng.random_bool(0.3) {
            r.active = Some(model::window(self.span_ms, self.start_ms, &mut self.rng));
        }
        self.ensure_condition(&mut r, zones);
        m.rewards.push(r);
    }

    fn retire_reward(&mut self, m: &mut Model) {
        if m.rewards.len() > 1 {
            let i = self.rng.random_range(0..m.rewards.len());
            m.rewards.remove(i);
        }
    }

    fn rewrite_reward(&mut self, m: &mut Model) {
        let zones = m.zones.len();
        let i = self.rng.random_range(0..m.rewards.len());
        let mut r = m.rewards[i].clone();
        let aspects = self.rng.random_range(1..=2);
        for _ in 0..aspects {
            let others = |r: &RewardSpec| {
                usize::from(r.zone.is_some())
                    + usize::from(!r.requires.is_empty())
                    + usize::from(r.sensor.is_some())
            };
            let drop = others(&r) > 1 && self.rng.random_bool(0.3);
            match self.rng.random_range(0..4) {
                0 if zones > 0 => {
                    r.zone = if drop && r.zone.is_some() {
                        None
                    } else {
                        Some(self.rng.random_range(0..zones))
                    };
                }
                0 | 1 => {
                    r.requires = if drop && !r.requires.is_empty() {
                        Vec::new()
                    } else {
                        self.pick_clues()
                    };
                    r.empty_requires = false;
                }
                2 => {
                    r.sensor = match &r.sensor {
                        Some(_) if drop => None,
                        // Other bounds for the same sensor.
                        Some(s) => Some(self.sensor_cond(s.sensor)),
                        None => Some(self.pick_sensor()),
                    };
                }
                _ => {
                    r.active = if r.active.is_some() && self.rng.random_bool(0.3) {
                        None
                    } else {
                        Some(model::window(self.span_ms, self.start_ms, &mut self.rng))
                    };
                }
            }
        }
        self.ensure_condition(&mut r, zones);
        m.rewards[i] = r;
    }

    fn priorities(&mut self, m: &mut Model) {
        for _ in 0..self.rng.random_range(1..=3) {
            if !m.zones.is_empty() && self.rng.random_bool(0.5) {
                let i = self.rng.random_range(0..m.zones.len());
                m.zones[i].priority = self.priority();
            } else {
                let i = self.rng.random_range(0..m.rewards.len());
                m.rewards[i].priority = self.priority();
            }
        }
    }

    fn ttls(&mut self, v: &mut Version) {
        let scale = |rng: &mut ChaCha8Rng, ttl: u64| {
            ((ttl as f64) * rng.random_range(0.3..2.0)).round().max(1.0) as u64
        };
        if self.rng.random_bool(0.7) {
            v.position_ttl_ms = scale(&mut self.rng, v.position_ttl_ms);
        }
        if self.rng.random_bool(0.7) {
            v.sensor_ttl_ms = scale(&mut self.rng, v.sensor_ttl_ms);
        }
    }

    fn priority(&mut self) -> Option<u8> {
        self.rng
            .random_bool(0.85)
            .then(|| self.rng.random_range(0..=9u8))
    }

    /// One or two clues, now and then one no version had before.
    fn pick_clues(&mut self) -> Vec<usize> {
        let want = self.rng.random_range(1..=2);
        let mut clues = Vec::with_capacity(want);
        while clues.len() < want {
            let c = if self.clues == 0 || self.rng.random_bool(0.3) {
                self.clues += 1;
                self.clues - 1
            } else {
                self.rng.random_range(0..self.clues)
            };
            if !clues.contains(&c) {
                clues.push(c);
            }
        }
        clues
    }

    /// A condition on a sensor, now and then one no version had before.
    fn pick_sensor(&mut self) -> model::SensorCond {
        let s = if self.sensors == 0 || self.rng.random_bool(0.3) {
            self.sensors += 1;
            self.sensor_ranges.push((-80.0, -50.0));
            self.ranged.push(false);
            self.sensors - 1
        } else {
            self.rng.random_range(0..self.sensors)
        };
        self.sensor_cond(s)
    }

    fn sensor_cond(&mut self, s: usize) -> model::SensorCond {
        model::sensor_cond(s, &mut self.rng, &mut self.sensor_ranges, &mut self.ranged)
    }

    /// Gives a reward left without any condition a zone (or, with no zones, clues).
    fn ensure_condition(&mut self, r: &mut RewardSpec, zones: usize) {
        if r.zone.is_none() && r.requires.is_empty() && r.sensor.is_none() {
            if zones > 0 {
                r.zone = Some(self.rng.random_range(0..zones));
            } else {
                r.requires = self.pick_clues();
                r.empty_requires = false;
            }
        }
    }
}
