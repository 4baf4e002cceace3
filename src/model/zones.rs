//! Zone geometry: the `Shape` of a zone, the exact point-in-zone test of docs/spec.md §5
//! (planar polygons in (lon, lat) with boundary inside and holes excluded; circles by
//! haversine distance), and `ZoneIndex`, an R-tree over zone bounding boxes used to find
//! the zones containing a point with a cheap box query followed by the exact test.

use geo::{BoundingRect, Coord, Intersects, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;

use super::zone_test::{Probe, ZoneTest};

/// Radius of the sphere used for circle zones, in metres (the mean Earth radius).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The geometry of a zone. Coordinates are WGS84 degrees.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Every point whose haversine distance to the centre is at most `radius_m`.
    Circle { lat: f64, lon: f64, radius_m: f64 },
    /// Planar polygons with x = longitude and y = latitude, as GeoJSON defines them.
    Polygons(MultiPolygon<f64>),
}

impl Shape {
    /// Whether the point lies in the shape. Polygon boundaries (hole rings included) count
    /// as inside; the interiors of holes do not. Circles include their edge.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match self {
            Shape::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            } => haversine_m(*clat, *clon, lat, lon) <= *radius_m,
            // Each polygon's own test: a multipolygon's would first
            // recompute its bounding box from every vertex, and the zone
            // index has tested the box already.
            Shape::Polygons(polygons) => {
                let point = Coord { x: lon, y: lat };
                polygons.iter().any(|p| p.intersects(&point))
            }
        }
    }

    /// A box `(min, max)`, each `[lon, lat]`, that contains every point of the shape.
    /// For circles it is conservative: it spans every longitude when the circle reaches a
    /// pole or crosses the antimeridian. `None` for an empty polygon set.
    pub fn bounding_box(&self) -> Option<([f64; 2], [f64; 2])> {
        match self {
            Shape::Circle { lat, lon, radius_m } => Some(circle_box(*lat, *lon, *radius_m)),
            Shape::Polygons(polygons) => polygons
                .bounding_rect()
                .map(|r| ([r.min().x, r.min().y], [r.max().x, r.max().y])),
        }
    }
}

/// Great-circle distance in metres between two points on a sphere of radius
/// [`EARTH_RADIUS_M`], by the haversine formula.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let phi1 = lat1.to_radians();
    let phi2 = lat2.to_radians();
    let a = haversine_term((phi1, phi1.cos()), (phi2, phi2.cos()), lon2 - lon1);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The haversine formula's term `a` (the square of the sine of half the
/// central angle), clamped to `[0, 1]`, of two points given by their
/// latitudes in radians with their cosines and the difference of their
/// longitudes in degrees (the second's minus the first's).
pub(crate) fn haversine_term(
    (phi1, cos_phi1): (f64, f64),
    (phi2, cos_phi2): (f64, f64),
    dlon_deg: f64,
) -> f64 {
    let half_dphi = (phi2 - phi1) / 2.0;
    let half_dlambda = dlon_deg.to_radians() / 2.0;
    let a = half_dphi.sin().powi(2) + cos_phi1 * cos_phi2 * half_dlambda.sin().powi(2);
    a.clamp(0.0, 1.0)
}

/// Relative and absolute widening applied to circle boxes so that rounding in the box
/// computation can never exclude a point the exact haversine test accepts.
const BOX_SLACK_REL: f64 = 1e-6;
const BOX_SLACK_DEG: f64 = 1e-9;

fn circle_box(lat: f64, lon: f64, radius_m: f64) -> ([f64; 2], [f64; 2]) {
    // Angular radius of the circle, in radians.
    let delta = radius_m / EARTH_RADIUS_M;
    let dlat = delta.to_degrees() * (1.0 + BOX_SLACK_REL) + BOX_SLACK_DEG;
    let min_lat = lat - dlat;
    let max_lat = lat + dlat;
    let full = ([-180.0, min_lat.max(-90.0)], [180.0, max_lat.min(90.0)]);
    if delta >= std::f64::consts::FRAC_PI_2 || min_lat <= -90.0 || max_lat >= 90.0 {
        // The circle reaches a pole (or is a hemisphere or more): every longitude.
        return full;
    }
    // Widest longitude extent of a spherical cap not containing a pole.
    let ratio = delta.sin() / lat.to_radians().cos();
    if ratio >= 1.0 {
        return full;
    }
    let dlon = ratio.asin().to_degrees() * (1.0 + BOX_SLACK_REL) + BOX_SLACK_DEG;
    if lon - dlon < -180.0 || lon + dlon > 180.0 {
        // Crosses the antimeridian: every longitude.
        return full;
    }
    ([lon - dlon, min_lat], [lon + dlon, max_lat])
}

type Bbox = ([f64; 2], [f64; 2]);

/// Cells per zone the grid aims for.
const CELLS_PER_ZONE: usize = 4;
/// Cells per grid side at most.
const MAX_CELLS_PER_SIDE: usize = 2048;
/// A zone whose box covers more cells than this is kept out of the grid
/// (a zone a few times wider than the typical one still fits: an R-tree
/// lookup costs more than a few more box tests in a cell).
const MAX_CELLS_PER_ZONE: usize = 256;

/// The spatial index of a hunt's zones: a uniform grid over the extent of the
/// zones' bounding boxes, each cell listing the zones whose box overlaps it,
/// so that a lookup costs one cell and a few box tests whatever the number
/// of zones; zones too wide for the grid (spanning every longitude, or far
/// larger than the typical zone) are kept in an R-tree. Entry `n` is shape
/// number `n`.
#[derive(Clone, Debug)]
pub struct ZoneIndex {
    boxes: Vec<Option<Bbox>>,
    /// Each shape's prepared test.
    tests: Vec<ZoneTest>,
    grid: Option<Grid>,
    wide: RTree<GeomWithData<Rectangle<[f64; 2]>, u32>>,
}

#[derive(Clone, Debug)]
struct Grid {
    min: [f64; 2],
    cell: [f64; 2],
    cols: usize,
    rows: usize,
    /// Zones of cell `c` are `zones[starts[c]..starts[c + 1]]`, ascending.
    starts: Vec<u32>,
    zones: Vec<u32>,
}

impl Grid {
    fn col_row(&self, x: f64, y: f64) -> (usize, usize) {
        let col = ((x - self.min[0]) / self.cell[0]).floor().max(0.0) as usize;
        let row = ((y - self.min[1]) / self.cell[1]).floor().max(0.0) as usize;
        (col.min(self.cols - 1), row.min(self.rows - 1))
    }

    /// The cells a box overlaps, as column and row ranges.
    fn span(
        &self,
        b: &Bbox,
    ) -> (
        std::ops::RangeInclusive<usize>,
        std::ops::RangeInclusive<usize>,
    ) {
        let (c0, r0) = self.col_row(b.0[0], b.0[1]);
        let (c1, r1) = self.col_row(b.1[0], b.1[1]);
        (c0..=c1, r0..=r1)
    }

    fn build(boxes: &[(u32, Bbox)]) -> Option<(Grid, Vec<u32>)> {
        let first = boxes.first()?;
        let mut min = first.1 .0;
        let mut max = first.1 .1;
        for (_, b) in boxes {
            min = [min[0].min(b.0[0]), min[1].min(b.0[1])];
            max = [max[0].max(b.1[0]), max[1].max(b.1[1])];
        }
        let (w, h) = ((max[0] - min[0]).max(0.0), (max[1] - min[1]).max(0.0));
        let target = (boxes.len() * CELLS_PER_ZONE).max(1) as f64;
        let (cols, rows) = if w > 0.0 && h > 0.0 {
            let cols = (target * w / h).sqrt().ceil();
            (cols, (target / cols).ceil())
        } else if w > 0.0 {
            (target, 1.0)
        } else if h > 0.0 {
            (1.0, target)
        } else {
            (1.0, 1.0)
        };
        let cols = (cols as usize).clamp(1, MAX_CELLS_PER_SIDE);
        let rows = (rows as usize).clamp(1, MAX_CELLS_PER_SIDE);
        let cell = [
            if w > 0.0 { w / cols as f64 } else { 1.0 },
            if h > 0.0 { h / rows as f64 } else { 1.0 },
        ];
        let mut grid = Grid {
            min,
            cell,
            cols,
            rows,
            starts: Vec::new(),
            zones: Vec::new(),
        };
        let mut cells: Vec<Vec<u32>> = vec![Vec::new(); cols * rows];
        let mut too_wide = Vec::new();
        for (n, b) in boxes {
            let (cs, rs) = grid.span(b);
            if cs.clone().count() * rs.clone().count() > MAX_CELLS_PER_ZONE {
                too_wide.push(*n);
                continue;
            }
            for r in rs {
                for c in cs.clone() {
                    cells[r * cols + c].push(*n);
                }
            }
        }
        grid.starts.push(0);
        for cell in cells {
            grid.zones.extend(cell);
            grid.starts.push(grid.zones.len() as u32);
        }
        Some((grid, too_wide))
    }

    fn cell(&self, x: f64, y: f64) -> &[u32] {
        if x < self.min[0] || y < self.min[1] {
            return &[];
        }
        let (c, r) = self.col_row(x, y);
        let i = r * self.cols + c;
        &self.zones[self.starts[i] as usize..self.starts[i + 1] as usize]
    }
}

fn in_box(b: &Bbox, x: f64, y: f64) -> bool {
    b.0[0] <= x && x <= b.1[0] && b.0[1] <= y && y <= b.1[1]
}

impl ZoneIndex {
    /// Indexes `shapes`, numbering them from 0 in iteration order.
    pub fn new<'a>(shapes: impl IntoIterator<Item = &'a Shape>) -> ZoneIndex {
        let shapes: Vec<&Shape> = shapes.into_iter().collect();
        let boxes: Vec<Option<Bbox>> = shapes.iter().map(|s| s.bounding_box()).collect();
        let tests = shapes.iter().map(|s| ZoneTest::new(s)).collect();
        let number = |n: usize| u32::try_from(n).expect("more than u32::MAX zones");
        type Numbered = Vec<(u32, Bbox)>;
        let (narrow, mut wide): (Numbered, Numbered) = boxes
            .iter()
            .enumerate()
            .filter_map(|(n, b)| b.map(|b| (number(n), b)))
            .partition(|(_, b)| b.1[0] - b.0[0] < 180.0);
        let grid = match Grid::build(&narrow) {
            Some((grid, too_wide)) => {
                wide.extend(too_wide.into_iter().map(|n| {
                    let b = boxes[n as usize].expect("indexed zones have a box");
                    (n, b)
                }));
                Some(grid)
            }
            None => None,
        };
        let wide = RTree::bulk_load(
            wide.into_iter()
                .map(|(n, b)| GeomWithData::new(Rectangle::from_corners(b.0, b.1), n))
                .collect(),
        );
        ZoneIndex {
            boxes,
            tests,
            grid,
            wide,
        }
    }

    /// Clears `out`, then pushes, ascending, the number of every shape of
    /// `shapes` (those the index was built from, in the same order) that
    /// contains the point: [`Shape::contains`], by each shape's prepared
    /// test.
    pub fn containing(&self, shapes: &[impl AsRef<Shape>], lat: f64, lon: f64, out: &mut Vec<u32>) {
        let mut probe = Probe::new(lat, lon);
        self.query(
            |n| self.tests[n as usize].contains(shapes[n as usize].as_ref(), &mut probe),
            lat,
            lon,
            out,
        );
    }

    /// Clears `out`, then pushes, ascending, the number of every shape whose box holds the
    /// point and for which `exact` (the exact test, given the shape's number) is true.
    /// Non-finite input matches nothing.
    pub fn query(
        &self,
        mut exact: impl FnMut(u32) -> bool,
        lat: f64,
        lon: f64,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        if !lat.is_finite() || !lon.is_finite() {
            return;
        }
        if let Some(grid) = &self.grid {
            for &n in grid.cell(lon, lat) {
                let b = self.boxes[n as usize]
                    .as_ref()
                    .expect("indexed zones have a box");
                if in_box(b, lon, lat) && exact(n) {
                    out.push(n);
                }
            }
        }
        let from_grid = out.len();
        for entry in self.wide.locate_all_at_point(&[lon, lat]) {
            if exact(entry.data) {
                out.push(entry.data);
            }
        }
        if out.len() > from_grid {
            out.sort_unstable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, MultiPolygon};

    #[test]
    fn haversine_one_degree_of_latitude() {
        let d = haversine_m(48.0, 2.0, 49.0, 2.0);
        let expected = EARTH_RADIUS_M * 1f64.to_radians();
        assert!((d - expected).abs() < 1e-6, "{d} vs {expected}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn circle_boxes_are_conservative() {
        for &(lat, lon, r) in &[
            (48.85, 2.35, 40.0),
            (0.0, 0.0, 1000.0),
            (89.99, 10.0, 5000.0),
            (-60.0, 179.999, 500.0),
            (70.0, -120.0, 100_000.0),
        ] {
            let shape = Shape::Circle {
                lat,
                lon,
                radius_m: r,
            };
            let (min, max) = shape.bounding_box().unwrap();
            // Walk around the circle's edge (just inside) and check the box holds it.
            for k in 0..720 {
                let bearing = (k as f64 / 2.0).to_radians();
                let (plat, plon) = destination(lat, lon, r * 0.999_999, bearing);
                assert!(shape.contains(plat, plon));
                assert!(
                    plon >= min[0] && plon <= max[0] && plat >= min[1] && plat <= max[1],
                    "({plat}, {plon}) outside box {min:?}..{max:?} of circle ({lat}, {lon}, {r})"
                );
            }
        }
    }

    fn destination(lat: f64, lon: f64, d: f64, bearing: f64) -> (f64, f64) {
        let delta = d / EARTH_RADIUS_M;
        let phi1 = lat.to_radians();
        let phi2 = (phi1.sin() * delta.cos() + phi1.cos() * delta.sin() * bearing.cos()).asin();
        let lambda2 = lon.to_radians()
            + (bearing.sin() * delta.sin() * phi1.cos())
                .atan2(delta.cos() - phi1.sin() * phi2.sin());
        let mut lon2 = lambda2.to_degrees();
        if lon2 > 180.0 {
            lon2 -= 360.0;
        } else if lon2 < -180.0 {
            lon2 += 360.0;
        }
        (phi2.to_degrees(), lon2)
    }

    #[test]
    fn polygon_boundary_and_holes() {
        let shape = Shape::Polygons(MultiPolygon::new(vec![polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 4.0, y: 4.0), (x: 0.0, y: 4.0)],
            interiors: [[(x: 1.0, y: 1.0), (x: 2.0, y: 1.0), (x: 2.0, y: 2.0), (x: 1.0, y: 2.0)]],
        )]));
        assert!(shape.contains(3.0, 3.0));
        assert!(shape.contains(0.0, 2.0)); // outer edge
        assert!(shape.contains(4.0, 4.0)); // corner
        assert!(shape.contains(1.0, 1.5)); // hole edge
        assert!(!shape.contains(1.5, 1.5)); // hole interior
        assert!(!shape.contains(5.0, 1.0));
    }

    #[test]
    fn index_query_matches_exact_test() {
        let shapes = [
            Shape::Circle {
                lat: 1.0,
                lon: 1.0,
                radius_m: 50_000.0,
            },
            Shape::Polygons(MultiPolygon::new(vec![polygon![
                (x: 0.0, y: 0.0), (x: 2.0, y: 0.0), (x: 0.0, y: 2.0)
            ]])),
        ];
        let index = ZoneIndex::new(&shapes);
        let mut out = Vec::new();
        let at = |lat: f64, lon: f64, out: &mut Vec<u32>| {
            index.query(|n| shapes[n as usize].contains(lat, lon), lat, lon, out)
        };
        at(1.0, 1.0, &mut out);
        assert_eq!(out, vec![0, 1]);
        at(0.1, 0.1, &mut out);
        assert_eq!(out, vec![1]);
        at(1.3, 1.3, &mut out);
        assert_eq!(out, vec![0]);
        at(f64::NAN, 1.0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn grid_index_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut shapes = Vec::new();
        for n in 0..600 {
            let lat = rng.random_range(40.0..50.0);
            let lon = rng.random_range(0.0..10.0);
            let size: f64 = if n % 50 == 0 {
                3.0
            } else {
                rng.random_range(0.001..0.2)
            };
            if n % 2 == 0 {
                shapes.push(Shape::Circle {
                    lat,
                    lon,
                    radius_m: size * 111_000.0,
                });
            } else {
                let (x0, y0, x1, y1) = (lon, lat, lon + size, lat + size / 2.0);
                shapes.push(Shape::Polygons(MultiPolygon::new(vec![polygon![
                    (x: x0, y: y0),
                    (x: x1, y: y0),
                    (x: x1, y: y1),
                    (x: x0, y: y1),
                ]])));
            }
        }
        // Circles around a pole and across the antimeridian span every longitude.
        shapes.push(Shape::Circle {
            lat: 89.9,
            lon: 0.0,
            radius_m: 50_000.0,
        });
        shapes.push(Shape::Circle {
            lat: 45.0,
            lon: 179.99,
            radius_m: 5_000.0,
        });
        let index = ZoneIndex::new(&shapes);
        let mut out = Vec::new();
        let mut check = |lat: f64, lon: f64| {
            index.query(
                |n| shapes[n as usize].contains(lat, lon),
                lat,
                lon,
                &mut out,
            );
            let expected: Vec<u32> = (0..shapes.len() as u32)
                .filter(|&n| shapes[n as usize].contains(lat, lon))
                .collect();
            assert_eq!(out, expected, "at {lat}, {lon}");
        };
        for _ in 0..20_000 {
            let (lat, lon) = if rng.random_bool(0.9) {
                (rng.random_range(39.0..52.0), rng.random_range(-1.0..12.0))
            } else {
                (
                    rng.random_range(-90.0..=90.0),
                    rng.random_range(-180.0..=180.0),
                )
            };
            check(lat, lon);
        }
        // Box corners and edges land in the right cells.
        for shape in &shapes[..50] {
            let (min, max) = shape.bounding_box().expect("box");
            for (lon, lat) in [(min[0], min[1]), (max[0], max[1]), (min[0], max[1])] {
                check(lat, lon);
            }
        }
    }
}
