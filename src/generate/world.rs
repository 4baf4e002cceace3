//! What the event simulation knows about the hunt its events are for, derived either from the
//! synthetic model or from an existing, loaded hunt: the walking area, the spots players jump
//! to, exact polygon vertices, the clue, reward and sensor ids, and the band of values each
//! sensor's readings centre on (so that the hunt's sensor conditions flip).

use geo::BoundingRect;

use crate::model::hunt::Hunt;
use crate::model::zones::Shape;

use super::changes::ChangeLog;
use super::geom::{sin_cos, Frame, M_PER_DEG};
use super::hunt_text::{clue_id, sensor_id};
use super::model::Model;
use super::GenerateOptions;

/// Sensor bounds are clamped to this magnitude so readings stay modest, finite numbers.
const MAX_BOUND: f64 = 1e9;

/// A place players jump to: a centre in the metre frame and a rough radius.
pub(super) struct Spot {
    pub x: f64,
    pub y: f64,
    pub radius_m: f64,
}

pub(super) struct World {
    pub frame: Frame,
    pub spots: Vec<Spot>,
    /// Exact `(lat, lon)` polygon vertices, for positions on zone boundaries.
    pub vertices: Vec<(f64, f64)>,
    pub clues: Vec<String>,
    pub rewards: Vec<String>,
    pub sensors: Vec<String>,
    /// Per sensor (as in `sensors`), the `(low, high)` band its readings centre on.
    pub sensor_ranges: Vec<(f64, f64)>,
}

impl World {
    /// The world of a synthetic hunt model.
    pub fn synthetic(model: &Model) -> World {
        World {
            frame: model.frame.clone(),
            spots: model
                .zones
                .iter()
                .map(|z| Spot {
                    x: z.x,
                    y: z.y,
                    radius_m: z.radius_m,
                })
                .collect(),
            vertices: model.vertices.clone(),
            clues: (0..model.clues).map(clue_id).collect(),
            rewards: model.rewards.iter().map(|r| r.id.clone()).collect(),
            sensors: (0..model.sensors).map(sensor_id).collect(),
            sensor_ranges: model.sensor_ranges.clone(),
        }
    }

    /// The world of a synthetic hunt and its change log: the zones, clues, rewards and sensors
    /// of every version (those of the start hunt first), so that events name items that exist
    /// in some versions only.
    pub fn with_changes(start: &Model, log: &ChangeLog) -> World {
        let mut world = World::synthetic(start);
        for version in &log.versions {
            for z in &version.zones {
                let known = world
                    .spots
                    .iter()
                    .any(|s| (s.x, s.y, s.radius_m) == (z.x, z.y, z.radius_m));
                if !known {
                    world.spots.push(Spot {
                        x: z.x,
                        y: z.y,
                        radius_m: z.radius_m,
                    });
                }
            }
            for r in &version.rewards {
                if !world.rewards.contains(&r.id) {
                    world.rewards.push(r.id.clone());
                }
            }
        }
        world.vertices = log.vertices.clone();
        world.clues = (0..log.clues).map(clue_id).collect();
        world.sensors = (0..log.sensors).map(sensor_id).collect();
        world.sensor_ranges = log.sensor_ranges.clone();
        world
    }

    /// The world of an existing hunt: players walk the bounding box of its zones plus a margin
    /// (the city box of `opts` when it has no zones) and jump to its circles and polygons.
    pub fn for_hunt(hunt: &Hunt, opts: &GenerateOptions) -> World {
        let frame = match zones_box(hunt) {
            Some((min, max)) => Frame::covering(min, max),
            None => Frame::new(opts.center_lat, opts.center_lon, opts.extent_m),
        };
        let mut spots = Vec::new();
        let mut vertices = Vec::new();
        for zone in &hunt.zones {
            match &zone.shape {
                Shape::Circle { lat, lon, radius_m } => {
                    let (x, y) = frame.xy(*lat, *lon);
                    spots.push(Spot {
                        x,
                        y,
                        radius_m: *radius_m,
                    });
                }
                Shape::Polygons(polygons) => {
                    for polygon in polygons {
                        let Some(r) = polygon.exterior().bounding_rect() else {
                            continue;
                        };
                        let (x0, y0) = frame.xy(r.min().y, r.min().x);
                        let (x1, y1) = frame.xy(r.max().y, r.max().x);
                        spots.push(Spot {
                            x: (x0 + x1) / 2.0,
                            y: (y0 + y1) / 2.0,
                            radius_m: ((x1 - x0) / 2.0).max((y1 - y0) / 2.0).max(1.0),
                        });
                        let rings = std::iter::once(polygon.exterior()).chain(polygon.interiors());
                        vertices.extend(rings.flat_map(|ring| ring.coords().map(|c| (c.y, c.x))));
                    }
                }
            }
        }
        let sensor_ranges = (0..hunt.sensors.len())
            .map(|s| {
                hunt.rewards
                    .iter()
                    .filter_map(|r| r.sensor.filter(|c| c.sensor as usize == s))
                    .map(|c| band(c.min, c.max))
                    .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
                    .unwrap_or((-80.0, -50.0))
            })
            .collect();
        World {
            frame,
            spots,
            vertices,
            clues: hunt.clues.clone(),
            rewards: hunt.rewards.iter().map(|r| r.id.clone()).collect(),
            sensors: hunt.sensors.clone(),
            sensor_ranges,
        }
    }
}

/// The `(lat, lon)` box `(min, max)` around every zone of the hunt; circles get a box computed
/// with the frame's flat-earth scale, so it never depends on the platform's libm.
fn zones_box(hunt: &Hunt) -> Option<((f64, f64), (f64, f64))> {
    let boxes = hunt.zones.iter().filter_map(|z| match z.shape {
        Shape::Circle { lat, lon, radius_m } => {
            let (_, cos) = sin_cos(lat.to_radians());
            let dlat = radius_m / M_PER_DEG;
            let dlon = radius_m / (M_PER_DEG * cos.max(0.01));
            Some((
                ((lat - dlat).max(-90.0), (lon - dlon).max(-180.0)),
                ((lat + dlat).min(90.0), (lon + dlon).min(180.0)),
            ))
        }
        Shape::Polygons(_) => z
            .shape
            .bounding_box()
            .map(|(min, max)| ((min[1], min[0]), (max[1], max[0]))),
    });
    boxes.reduce(|(amin, amax), (bmin, bmax)| {
        (
            (amin.0.min(bmin.0), amin.1.min(bmin.1)),
            (amax.0.max(bmax.0), amax.1.max(bmax.1)),
        )
    })
}

/// The band readings of a sensor condition centre on: its bounds, widened to 30 when one is
/// missing.
fn band(min: Option<f64>, max: Option<f64>) -> (f64, f64) {
    let ok = |v: Option<f64>| {
        v.filter(|v| v.is_finite())
            .map(|v| v.clamp(-MAX_BOUND, MAX_BOUND))
    };
    match (ok(min), ok(max)) {
        (Some(lo), Some(hi)) => (lo, hi),
        (Some(lo), None) => (lo, lo + 30.0),
        (None, Some(hi)) => (hi - 30.0, hi),
        (None, None) => (-80.0, -50.0),
    }
}
