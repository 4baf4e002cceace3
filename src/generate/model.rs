//! The synthetic hunt model: zones (circles, polygons with and without holes, multipolygons),
//! rewards mixing zone / requires / sensor / active-window conditions, and what the event
//! simulation needs to know about them (zone centres, polygon vertices, sensor value ranges).

use std::f64::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geom::{round_to, sin_cos, Frame};
use super::GenerateOptions;

/// A ring of `[lon, lat]` points, not closed (the first point is not repeated).
pub(super) type Ring = Vec<[f64; 2]>;

#[derive(Clone)]
pub(super) enum Shape {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    /// Outer ring (counter-clockwise) followed by holes (clockwise).
    Polygon(Vec<Ring>),
    /// Several polygons; only written to the GeoJSON file.
    Multi(Vec<Vec<Ring>>),
}

#[derive(Clone)]
pub(super) struct ZoneSpec {
    pub id: String,
    pub priority: Option<u8>,
    /// Written inline in the TOML rather than in the GeoJSON file.
    pub inline: bool,
    /// Write `holes = []` for a polygon without holes.
    pub empty_holes: bool,
    pub shape: Shape,
    /// Centre and rough radius in the metre frame, for players jumping into the zone.
    pub x: f64,
    pub y: f64,
    pub radius_m: f64,
}

#[derive(Clone)]
pub(super) struct SensorCond {
    pub sensor: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Clone)]
pub(super) struct RewardSpec {
    pub id: String,
    pub priority: Option<u8>,
    pub zone: Option<usize>,
    /// Clue numbers as written (may repeat one, which the loader deduplicates).
    pub requires: Vec<usize>,
    /// Write `requires = []` when `requires` is empty.
    pub empty_requires: bool,
    pub sensor: Option<SensorCond>,
    pub active: Option<(Option<u64>, Option<u64>)>,
}

#[derive(Clone)]
pub(super) struct Model {
    pub zones: Vec<ZoneSpec>,
    /// The TOML names a GeoJSON zone file (which may hold no zone).
    pub geojson: bool,
    pub rewards: Vec<RewardSpec>,
    pub clues: usize,
    pub sensors: usize,
    /// Per sensor, the `(low, high)` band its readings centre on (crossing its condition).
    pub sensor_ranges: Vec<(f64, f64)>,
    /// Exact `(lat, lon)` polygon vertices, for positions on zone boundaries.
    pub vertices: Vec<(f64, f64)>,
    pub frame: Frame,
}

/// The event rate actually used (non-positive or non-finite rates fall back to 1/s).
pub(super) fn rate(opts: &GenerateOptions) -> f64 {
    if opts.rate_per_s.is_finite() && opts.rate_per_s > 0.0 {
        opts.rate_per_s
    } else {
        1.0
    }
}

pub(super) fn build(opts: &GenerateOptions, rng: &mut ChaCha8Rng) -> Model {
    let frame = Frame::new(opts.center_lat, opts.center_lon, opts.extent_m);
    // Event time span: events run from `start_ms` to about `start_ms + span_ms`.
    let span_ms = ((opts.events as f64) * 1000.0 / rate(opts)).ceil().max(1.0) as u64;
    let mut vertices = Vec::new();
    let mut zones: Vec<ZoneSpec> = Vec::new();
    for i in 0..opts.zones as usize {
        let zone = build_zone(i, &zones, &frame, rng, &mut vertices);
        zones.push(zone);
    }
    // Without zones or sensors a reward needs a clue to have any condition at all.
    let clues = if opts.zones == 0 && opts.sensors == 0 {
        (opts.clues as usize).max(1)
    } else {
        opts.clues as usize
    };
    let sensors = opts.sensors as usize;
    let mut sensor_ranges = vec![(-80.0, -50.0); sensors];
    let mut ranged = vec![false; sensors];
    let n_rewards = (opts.rewards as usize).max(1);
    let mut rewards = Vec::with_capacity(n_rewards);
    let mut next_sensor = 0usize;
    for i in 0..n_rewards {
        let (mut zone, mut req, mut sen, mut active) = match i % 6 {
            0 => (true, false, false, false),
            1 => (true, true, false, false),
            2 => (true, false, true, false),
            3 => (false, true, false, false),
            4 => (true, false, false, true),
            _ => (false, true, true, rng.random_bool(0.5)),
        };
        active |= rng.random_bool(0.1);
        zone &= !zones.is_empty();
        req &= clues > 0;
        sen &= sensors > 0;
        if !(zone || req || sen) {
            zone = !zones.is_empty();
            req = !zone && clues > 0;
            sen = !zone && !req;
        }
        let mut reward = RewardSpec {
            id: format!("r{i:02}"),
            priority: rng.random_bool(0.85).then(|| rng.random_range(0..=9u8)),
            zone: zone.then(|| rng.random_range(0..zones.len())),
            requires: Vec::new(),
            empty_requires: false,
            sensor: None,
            active: active.then(|| window(span_ms, opts.start_ms, rng)),
        };
        if req {
            let want = rng.random_range(1..=clues.min(3));
            while reward.requires.len() < want {
                let c = rng.random_range(0..clues);
                if !reward.requires.contains(&c) {
                    reward.requires.push(c);
                }
            }
            if rng.random_bool(0.05) {
                reward.requires.push(reward.requires[0]);
            }
        } else {
            reward.empty_requires = zone && rng.random_bool(0.05);
        }
        if sen {
            let s = next_sensor % sensors;
            next_sensor += 1;
            reward.sensor = Some(sensor_cond(s, rng, &mut sensor_ranges, &mut ranged));
        }
        rewards.push(reward);
    }
    cover_clues(&mut rewards, clues);
    // Sensors not yet named by any reward go to rewards without a sensor condition, if any.
    for s in next_sensor..sensors {
        if let Some(r) = rewards.iter_mut().find(|r| r.sensor.is_none()) {
            r.sensor = Some(sensor_cond(s, rng, &mut sensor_ranges, &mut ranged));
        }
    }
    Model {
        zones,
        geojson: true,
        rewards,
        clues,
        sensors,
        sensor_ranges,
        vertices,
        frame,
    }
}

/// Makes every clue appear in some reward's `requires`, so the hunt's clue list is complete.
fn cover_clues(rewards: &mut [RewardSpec], clues: usize) {
    let mut used = vec![false; clues];
    for r in rewards.iter() {
        for &c in &r.requires {
            used[c] = true;
        }
    }
    let with_req: Vec<usize> = (0..rewards.len())
        .filter(|&i| !rewards[i].requires.is_empty())
        .collect();
    let unused = (0..clues).filter(|&c| !used[c]);
    for (k, c) in unused.enumerate() {
        let target = if with_req.is_empty() {
            k % rewards.len()
        } else {
            with_req[k % with_req.len()]
        };
        rewards[target].requires.push(c);
        rewards[target].empty_requires = false;
    }
}

pub(super) fn sensor_cond(
    s: usize,
    rng: &mut ChaCha8Rng,
    ranges: &mut [(f64, f64)],
    ranged: &mut [bool],
) -> SensorCond {
    let roll: f64 = rng.random();
    let (min, max) = if roll < 0.3 {
        (Some(round_to(rng.random_range(-85.0..-55.0), 0.5)), None)
    } else if roll < 0.55 {
        (None, Some(round_to(rng.random_range(-75.0..-45.0), 0.5)))
    } else if roll < 0.95 {
        let lo = round_to(rng.random_range(-90.0..-60.0), 0.5);
        (
            Some(lo),
            Some(lo + round_to(rng.random_range(5.0..30.0), 0.5)),
        )
    } else {
        let v = round_to(rng.random_range(-80.0..-50.0), 0.5);
        (Some(v), Some(v))
    };
    if !ranged[s] {
        ranged[s] = true;
        ranges[s] = match (min, max) {
            (Some(lo), Some(hi)) => (lo, hi),
            (Some(lo), None) => (lo, lo + 30.0),
            (None, Some(hi)) => (hi - 30.0, hi),
            (None, None) => (-80.0, -50.0),
        };
    }
    SensorCond {
        sensor: s,
        min,
        max,
    }
}

/// An `active` window inside the event time span; sometimes open on one side.
pub(super) fn window(span: u64, start: u64, rng: &mut ChaCha8Rng) -> (Option<u64>, Option<u64>) {
    let at = |f: f64| start.saturating_add((span as f64 * f) as u64);
    let roll: f64 = rng.random();
    if roll < 0.6 {
        let from = at(rng.random_range(0.05..0.5));
        let len = ((span as f64) * rng.random_range(0.2..0.6)).max(1.0) as u64;
        (Some(from), Some(from.saturating_add(len).max(from + 1)))
    } else if roll < 0.8 {
        (Some(at(rng.random_range(0.2..0.7))), None)
    } else {
        (None, Some(at(rng.random_range(0.3..0.9)).max(1)))
    }
}

fn build_zone(
    i: usize,
    earlier: &[ZoneSpec],
    frame: &Frame,
    rng: &mut ChaCha8Rng,
    vertices: &mut Vec<(f64, f64)>,
) -> ZoneSpec {
    // The synthetic frame is square.
    let half = frame.half_x;
    let radius = rng.random_range(0.015..0.12) * 2.0 * half;
    let radius = round_to(radius.max(10.0), 0.1);
    // A quarter of the zones share a centre with an earlier zone (nested or overlapping zones).
    let (x, y) = if !earlier.is_empty() && rng.random_bool(0.25) {
        let z = &earlier[rng.random_range(0..earlier.len())];
        (z.x, z.y)
    } else {
        (
            rng.random_range(-0.9 * half..=0.9 * half),
            rng.random_range(-0.9 * half..=0.9 * half),
        )
    };
    // Zone 0 is always inline and zone 1 always in the GeoJSON file; the rest are mixed.
    let place = match i {
        0 => Place::Inline,
        1 => Place::GeoJson,
        _ => Place::Either,
    };
    zone_at(
        format!("z{i:03}"),
        (x, y, radius),
        place,
        frame,
        rng,
        vertices,
    )
}

/// Where a zone is written (multipolygons always go to the GeoJSON file).
pub(super) enum Place {
    Inline,
    GeoJson,
    Either,
}

/// A zone of a random kind (circle, polygon with or without a hole, multipolygon) centred on
/// `(x, y)` in the metre frame with rough radius `radius`; polygon vertices go to `vertices`.
pub(super) fn zone_at(
    id: String,
    (x, y, radius): (f64, f64, f64),
    place: Place,
    frame: &Frame,
    rng: &mut ChaCha8Rng,
    vertices: &mut Vec<(f64, f64)>,
) -> ZoneSpec {
    let roll: f64 = rng.random();
    let shape = if roll < 0.4 {
        let (lat, lon) = frame.lat_lon(x, y);
        Shape::Circle {
            lat,
            lon,
            radius_m: radius,
        }
    } else if roll < 0.85 {
        let hole = rng.random_bool(0.3);
        Shape::Polygon(star_polygon(frame, rng, x, y, radius, hole))
    } else {
        let (s, c) = sin_cos(rng.random_range(0.0..TAU));
        let r = radius / 2.0;
        let hole = rng.random_bool(0.5);
        let first = star_polygon(frame, rng, x, y, r, hole);
        let second = star_polygon(
            frame,
            rng,
            x + 1.4 * radius * c,
            y + 1.4 * radius * s,
            r,
            false,
        );
        Shape::Multi(vec![first, second])
    };
    match &shape {
        Shape::Polygon(rings) => vertices.extend(rings.iter().flatten().map(|p| (p[1], p[0]))),
        Shape::Multi(polys) => {
            vertices.extend(polys.iter().flatten().flatten().map(|p| (p[1], p[0])))
        }
        Shape::Circle { .. } => {}
    }
    let multi = matches!(shape, Shape::Multi(_));
    let inline = !multi
        && match place {
            Place::Inline => true,
            Place::GeoJson => false,
            Place::Either => rng.random_bool(0.5),
        };
    ZoneSpec {
        id,
        priority: rng.random_bool(0.8).then(|| rng.random_range(0..=9u8)),
        inline,
        empty_holes: rng.random_bool(0.2),
        shape,
        x,
        y,
        radius_m: radius,
    }
}

/// A star-shaped (hence simple) polygon around `(x, y)`: vertex radii in `[0.6 r, r]`, angles
/// jittered around an even spacing. With a hole, at least 5 vertices keep the outer ring at least
/// 0.35 r from the centre, so the hole (a regular ring of radius 0.25 r) lies strictly inside.
fn star_polygon(
    frame: &Frame,
    rng: &mut ChaCha8Rng,
    x: f64,
    y: f64,
    r: f64,
    hole: bool,
) -> Vec<Ring> {
    let n = if hole {
        rng.random_range(5..=9)
    } else {
        rng.random_range(3..=9)
    };
    let base = rng.random_range(0.0..TAU);
    let step = TAU / f64::from(n);
    let outer: Ring = (0..n)
        .map(|k| {
            let (s, c) = sin_cos(base + (f64::from(k) + rng.random_range(-0.25..0.25)) * step);
            let rr = r * rng.random_range(0.6..=1.0);
            let (lat, lon) = frame.lat_lon(x + rr * c, y + rr * s);
            [lon, lat]
        })
        .collect();
    let mut rings = vec![outer];
    if hole {
        let m = rng.random_range(4..=6u32);
        let hb = rng.random_range(0.0..TAU);
        let ring: Ring = (0..m)
            .rev()
            .map(|k| {
                let (s, c) = sin_cos(hb + f64::from(k) * TAU / f64::from(m));
                let (lat, lon) = frame.lat_lon(x + 0.25 * r * c, y + 0.25 * r * s);
                [lon, lat]
            })
            .collect();
        rings.push(ring);
    }
    rings
}
