//! The point-in-zone test of docs/spec.md §5, prepared once per zone so that
//! a lookup costs little: a circle keeps its centre's latitude in radians
//! and its cosine, and the haversine term below which a point is surely
//! inside and above which it is surely outside; a polygon keeps its rings
//! as flat arrays with a box each.
//!
//! Every answer is the exact test's ([`Shape::contains`]): where rounding
//! could decide (a haversine term within a hair of the radius, a point
//! within rounding of a polygon edge), the prepared test says so and the
//! exact one answers.

use super::zones::{haversine_term, Shape, EARTH_RADIUS_M};

/// A point being looked up, with what circle tests share.
pub struct Probe {
    lat: f64,
    lon: f64,
    /// The latitude in radians and its cosine, once a circle needs them.
    phi: Option<(f64, f64)>,
}

impl Probe {
    pub fn new(lat: f64, lon: f64) -> Self {
        Probe {
            lat,
            lon,
            phi: None,
        }
    }

    fn phi(&mut self) -> (f64, f64) {
        let lat = self.lat;
        *self.phi.get_or_insert_with(|| {
            let phi = lat.to_radians();
            (phi, phi.cos())
        })
    }
}

/// One zone's prepared test.
#[derive(Clone, Debug)]
pub enum ZoneTest {
    Circle(Circle),
    Polygons(Vec<Polygon>),
    /// No fast test: always the exact one.
    Exact,
}

#[derive(Clone, Debug)]
pub struct Circle {
    lon: f64,
    phi: f64,
    cos_phi: f64,
    /// Haversine terms at or below `inside` are within the radius, at or
    /// above `outside` beyond it, whatever the rounding of the rest.
    inside: f64,
    outside: f64,
}

/// Relative margin around the haversine term of the radius: the rest of
/// the exact computation (a square root, an arcsine, two products) rounds
/// by a few parts in 10^16.
const MARGIN: f64 = 1e-9;

#[derive(Clone, Debug)]
pub struct Polygon {
    /// `(min, max)`, each `[x, y]`.
    bbox: ([f64; 2], [f64; 2]),
    /// Exterior first, then holes; each closed (last point = first).
    rings: Vec<Vec<[f64; 2]>>,
}

/// What a ring says of a point, when rounding cannot decide it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Inside,
    Outside,
}

impl ZoneTest {
    pub fn new(shape: &Shape) -> ZoneTest {
        match shape {
            Shape::Circle { lat, lon, radius_m } => Circle::new(*lat, *lon, *radius_m)
                .map(ZoneTest::Circle)
                .unwrap_or(ZoneTest::Exact),
            Shape::Polygons(polygons) => {
                let prepared: Option<Vec<Polygon>> = polygons.iter().map(Polygon::new).collect();
                prepared.map(ZoneTest::Polygons).unwrap_or(ZoneTest::Exact)
            }
        }
    }

    /// Whether `shape` (the shape this was prepared from) holds the point:
    /// the prepared test where it decides, else the exact one.
    pub fn contains(&self, shape: &Shape, probe: &mut Probe) -> bool {
        self.decide(probe)
            .unwrap_or_else(|| shape.contains(probe.lat, probe.lon))
    }

    /// The prepared test's answer, when it is sure.
    fn decide(&self, probe: &mut Probe) -> Option<bool> {
        match self {
            ZoneTest::Circle(c) => c.contains(probe),
            ZoneTest::Polygons(ps) => polygons_contain(ps, probe.lon, probe.lat),
            ZoneTest::Exact => None,
        }
    }
}

impl Circle {
    /// `None` for a circle too large for the margin to be sure of (over
    /// a quarter of the Earth's circumference).
    fn new(lat: f64, lon: f64, radius_m: f64) -> Option<Circle> {
        let half_angle = radius_m / (2.0 * EARTH_RADIUS_M);
        if !(half_angle > 0.0 && half_angle < std::f64::consts::FRAC_PI_4) {
            return None;
        }
        let term = half_angle.sin().powi(2);
        let phi = lat.to_radians();
        Some(Circle {
            lon,
            phi,
            cos_phi: phi.cos(),
            inside: term * (1.0 - MARGIN),
            outside: term * (1.0 + MARGIN),
        })
    }

    /// The haversine term as [`super::zones::haversine_m`] computes it,
    /// compared with the radius's.
    fn contains(&self, probe: &mut Probe) -> Option<bool> {
        let a = haversine_term((self.phi, self.cos_phi), probe.phi(), probe.lon - self.lon);
        if a <= self.inside {
            Some(true)
        } else if a >= self.outside {
            Some(false)
        } else {
            None
        }
    }
}

impl Polygon {
    /// `None` for a polygon with an empty or one-point ring.
    fn new(p: &geo::Polygon<f64>) -> Option<Polygon> {
        let rings: Vec<Vec<[f64; 2]>> = std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(|ring| ring.coords().map(|c| [c.x, c.y]).collect())
            .collect();
        if rings.iter().any(|r: &Vec<[f64; 2]>| r.len() < 2) {
            return None;
        }
        let mut min = [f64::INFINITY; 2];
        let mut max = [f64::NEG_INFINITY; 2];
        for &[x, y] in &rings[0] {
            min = [min[0].min(x), min[1].min(y)];
            max = [max[0].max(x), max[1].max(y)];
        }
        Some(Polygon {
            bbox: (min, max),
            rings,
        })
    }

    /// Inside the exterior and outside every hole; `None` when rounding
    /// could decide.
    fn contains(&self, x: f64, y: f64) -> Option<bool> {
        let (min, max) = self.bbox;
        if x < min[0] || x > max[0] || y < min[1] || y > max[1] {
            return Some(false);
        }
        if ring_side(&self.rings[0], x, y)? == Side::Outside {
            return Some(false);
        }
        for hole in &self.rings[1..] {
            if ring_side(hole, x, y)? == Side::Inside {
                return Some(false);
            }
        }
        Some(true)
    }
}

fn polygons_contain(ps: &[Polygon], x: f64, y: f64) -> Option<bool> {
    let mut unsure = false;
    for p in ps {
        match p.contains(x, y) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unsure = true,
        }
    }
    (!unsure).then_some(false)
}

/// The sign of the orientation of `(a, b, c)` (positive: counter-clockwise)
/// when the floating-point determinant is sure of it, as the robust
/// predicate's first stage is; `None` within its error bound.
fn orientation(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> Option<bool> {
    let left = (a[0] - c[0]) * (b[1] - c[1]);
    let right = (a[1] - c[1]) * (b[0] - c[0]);
    let det = left - right;
    // Well above the predicate's own bound, (3 + 16ε)ε with ε = 2^-53.
    let bound = 1e-15 * (left.abs() + right.abs());
    if det > bound {
        Some(true)
    } else if det < -bound {
        Some(false)
    } else {
        None
    }
}

/// The winding-number test of a closed ring with the crossing rules of
/// the exact test (an upward edge includes its start, a downward edge its
/// end, horizontal edges are skipped, the crossing strictly right of the
/// point), where every orientation it needs is sure. A point on the ring
/// is never sure, so the boundary is left to the exact test.
fn ring_side(ring: &[[f64; 2]], x: f64, y: f64) -> Option<Side> {
    let p = [x, y];
    let mut winding = 0i32;
    for edge in ring.windows(2) {
        let (start, end) = (edge[0], edge[1]);
        if start[1] <= y {
            if end[1] >= y {
                let ccw = orientation(start, end, p)?;
                if ccw && end[1] != y {
                    winding += 1;
                }
            }
        } else if end[1] <= y && !orientation(start, end, p)? {
            winding -= 1;
        }
    }
    Some(if winding == 0 {
        Side::Outside
    } else {
        Side::Inside
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, MultiPolygon};
    use rand::{Rng, SeedableRng};

    fn agree(shape: &Shape, lat: f64, lon: f64) {
        let test = ZoneTest::new(shape);
        assert_eq!(
            test.contains(shape, &mut Probe::new(lat, lon)),
            shape.contains(lat, lon),
            "({lat}, {lon}) in {shape:?}"
        );
    }

    #[test]
    fn circles_agree_with_the_exact_test_at_and_near_the_edge() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2_000 {
            let (clat, clon) = (
                rng.random_range(-80.0..80.0),
                rng.random_range(-179.0..179.0),
            );
            let radius_m = rng.random_range(1.0..50_000.0);
            let shape = Shape::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            };
            let deg = radius_m / 111_000.0;
            for _ in 0..50 {
                // Points spread around the edge, some a hair from it.
                let bearing: f64 = rng.random_range(0.0..std::f64::consts::TAU);
                let scale = 1.0 + rng.random_range(-1e-6..1e-6) * rng.random_range(0.0..1.0);
                let (lat, lon) = (
                    clat + deg * scale * bearing.sin(),
                    clon + deg * scale * bearing.cos() / clat.to_radians().cos(),
                );
                agree(&shape, lat, lon);
            }
        }
        let near = Shape::Circle {
            lat: 48.85,
            lon: 2.35,
            radius_m: 300.0,
        };
        let test = ZoneTest::new(&near);
        let decided = (0..1000)
            .filter(|_| {
                let (lat, lon) = (rng.random_range(48.84..48.86), rng.random_range(2.34..2.36));
                test.decide(&mut Probe::new(lat, lon)).is_some()
            })
            .count();
        assert!(decided > 990, "{decided}");
        // Larger than the prepared test takes: the exact one answers.
        let huge = Shape::Circle {
            lat: 0.0,
            lon: 0.0,
            radius_m: 15_000_000.0,
        };
        agree(&huge, 60.0, 100.0);
        agree(&huge, 0.0, 179.0);
    }

    #[test]
    fn polygons_agree_on_vertices_edges_holes_and_self_crossings() {
        let square_with_hole = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 4.0, y: 4.0), (x: 0.0, y: 4.0)],
            interiors: [[(x: 1.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 2.0), (x: 1.0, y: 2.0)]],
        );
        // A bow tie: the exact test counts windings, not crossings.
        let bow_tie =
            polygon![(x: 10.0, y: 0.0), (x: 14.0, y: 4.0), (x: 14.0, y: 0.0), (x: 10.0, y: 4.0)];
        // A ring wound twice around its middle.
        let twice = polygon![
            (x: 20.0, y: 0.0), (x: 24.0, y: 0.0), (x: 24.0, y: 4.0), (x: 20.0, y: 4.0),
            (x: 20.0, y: 1.0), (x: 23.0, y: 1.0), (x: 23.0, y: 3.0), (x: 21.0, y: 3.0),
            (x: 21.0, y: 0.0),
        ];
        let shape = Shape::Polygons(MultiPolygon::new(vec![square_with_hole, bow_tie, twice]));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        // Away from the edges the prepared test decides by itself.
        let test = ZoneTest::new(&shape);
        let decided = (0..1000)
            .filter(|_| {
                let (x, y) = (rng.random_range(-1.0..25.0), rng.random_range(-1.0..5.0));
                test.decide(&mut Probe::new(y, x)).is_some()
            })
            .count();
        assert!(decided > 990, "{decided}");
        for _ in 0..50_000 {
            // On the quarter grid (vertices, edges) and anywhere.
            let (x, y) = if rng.random_bool(0.5) {
                (
                    rng.random_range(-4..100) as f64 / 4.0,
                    rng.random_range(-4..20) as f64 / 4.0,
                )
            } else {
                (rng.random_range(-1.0..25.0), rng.random_range(-1.0..5.0))
            };
            agree(&shape, y, x);
        }
    }

    #[test]
    fn generated_polygons_agree_near_their_edges() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            let (cx, cy) = (
                rng.random_range(-170.0..170.0),
                rng.random_range(-80.0..80.0),
            );
            let n = rng.random_range(3..30);
            let ring: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let a = i as f64 / n as f64 * std::f64::consts::TAU;
                    let r = rng.random_range(0.001..0.02);
                    (cx + r * a.cos(), cy + r * a.sin())
                })
                .collect();
            let shape = Shape::Polygons(MultiPolygon::new(vec![geo::Polygon::new(
                ring.clone().into(),
                vec![],
            )]));
            for _ in 0..300 {
                // Along an edge, a hair to either side, or on it.
                let i = rng.random_range(0..n);
                let (a, b) = (ring[i], ring[(i + 1) % n]);
                let t: f64 = rng.random_range(0.0..=1.0);
                let off = rng.random_range(-1e-12..1e-12) * rng.random_range(0.0..1.0);
                agree(
                    &shape,
                    a.1 + t * (b.1 - a.1) + off,
                    a.0 + t * (b.0 - a.0) - off,
                );
            }
        }
    }
}
