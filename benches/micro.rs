//! Micro-benchmarks (criterion) of the engine's hot paths, one group each:
//!
//! - `decode`: `event::parse` (JSON decoding plus every stateless check) on one typical
//!   position, action and sensor line and on a mix of 1,000 generated lines; records/s.
//! - `zones`: `Hunt::zones_at` on seeded random points for hunts of 100, 1,000 and 10,000
//!   zones. `tiled/N` keeps the density of a city: N/100 generated 100-zone hunts on
//!   adjacent 3 km × 3 km tiles, merged into one hunt, so the box grows with N and a point
//!   lies in about as many zones at every N (what grows is the index's cost). `same_box/N`
//!   puts all N generated zones in one 3 km box; the generator scales zone size with the box,
//!   so there a point lies in ~N/90 zones and the cost follows the number of matches.
//!   `tiled_index_only/N` times the R-tree box query alone (every candidate accepted), to
//!   separate the index's share from the exact point-in-shape tests. The mean numbers of
//!   box candidates and of matches per point are printed when each hunt is built.
//! - `admission`: `Admission::admit` over the (id, ts) stream of a generated partition with
//!   up to 2 s of disorder, without and with 5% redeliveries (`duplicate` rejects).
//! - `upsert`: `backfill::run` at 1 worker on a clean generated dataset of 20,000 events
//!   (1,000 players), notifications to a file: the whole per-player latest-with-TTL facts
//!   operator and the dataflow after it, at small scale; records/s.
//!
//! Run: `cargo bench --bench micro` (all groups, a few minutes), or
//! `cargo bench --bench micro -- zones` for one group. The generated hunts and datasets
//! (seeded, so identical on every run) are written under `target/tmp/micro/`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use huntflow::generate::{generate, write_case, GenerateOptions};
use huntflow::input::admission::Admission;
use huntflow::job::backfill::{self, BackfillOptions};
use huntflow::model::event::{self, Body};
use huntflow::model::hunt::Hunt;
use huntflow::model::zones::{Shape, ZoneIndex};

/// Metres per degree of latitude (and of longitude at the equator).
const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;
/// Side of one city tile, metres (the generator's default box).
const TILE_M: f64 = 3_000.0;
/// Zones per city tile.
const TILE_ZONES: u32 = 100;
/// Query points per zone benchmark (cycled through).
const POINTS: usize = 4096;

fn work_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("micro")
        .join(name)
}

/// Options for a clean dataset (no late, duplicate or malformed lines) in one partition,
/// with the event rate of a city of `players` players each moving about every 2 s.
fn clean(events: u64, players: u32) -> GenerateOptions {
    GenerateOptions {
        seed: 7,
        events,
        players,
        zones: TILE_ZONES,
        partitions: 1,
        rate_per_s: f64::from(players) / 2.0,
        late_rate: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..GenerateOptions::default()
    }
}

/// Generates `opts` into `target/tmp/micro/<name>/` and returns the loaded hunt, the hunt
/// TOML path and the partition files.
fn dataset(name: &str, opts: &GenerateOptions) -> (Hunt, PathBuf, Vec<PathBuf>) {
    let dir = work_dir(name);
    let case = generate(opts);
    let (toml, parts) =
        write_case(&case, &dir.join("hunt"), &dir.join("events")).expect("write dataset");
    let hunt = Hunt::load(&toml).expect("load generated hunt");
    (hunt, toml, parts)
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !event::is_blank(l))
        .collect()
}

/// Records decoded with `HUNTFLOW_MICRO_DECODE_ONLY`.
const DECODE_COUNT: usize = 100_000;

/// Decodes every line once; the accepted count. Not inlined, so that callgrind can count
/// its instructions alone (`--toggle-collect='*decode_all*'`).
#[inline(never)]
fn decode_all(lines: &[&[u8]], hunt: &Hunt) -> usize {
    lines
        .iter()
        .filter(|l| event::parse(black_box(l), hunt).is_ok())
        .count()
}

fn bench_decode(c: &mut Criterion) {
    let (hunt, _, parts) = dataset("decode", &clean(20_000, 1_000));
    let bytes = std::fs::read(&parts[0]).expect("read partition");
    let all = lines(&bytes);
    // The first line of each type of 100–150 bytes.
    let pick = |kind: &str| -> &[u8] {
        all.iter()
            .copied()
            .find(|l| {
                (100..=150).contains(&l.len())
                    && matches!(
                        (kind, event::parse(l, &hunt).map(|p| p.body)),
                        ("position", Ok(Body::Position { .. }))
                            | ("action", Ok(Body::Action { .. }))
                            | ("sensor", Ok(Body::Sensor { .. }))
                    )
            })
            .unwrap_or_else(|| panic!("no {kind} line of 100-150 bytes"))
    };
    let mixed = &all[..1_000];
    if let Ok(kind) = std::env::var("HUNTFLOW_MICRO_DECODE_ONLY") {
        // A fixed number of decodes, for counting instructions under callgrind.
        let lines: Vec<&[u8]> = match kind.as_str() {
            "mixed" => mixed.iter().copied().cycle().take(DECODE_COUNT).collect(),
            kind => vec![pick(kind); DECODE_COUNT],
        };
        let ok = decode_all(&lines, &hunt);
        eprintln!("decode/{kind}: {ok} of {} records accepted", lines.len());
        std::process::exit(0);
    }
    let mut group = c.benchmark_group("decode");
    group.measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(1));
    for kind in ["position", "action", "sensor"] {
        let line = pick(kind);
        eprintln!(
            "decode/{kind}: {} bytes: {}",
            line.len(),
            String::from_utf8_lossy(line)
        );
        group.bench_function(kind, |b| {
            b.iter(|| event::parse(black_box(line), &hunt).is_ok())
        });
    }
    assert!(mixed.iter().all(|l| event::parse(l, &hunt).is_ok()));
    group.throughput(Throughput::Elements(mixed.len() as u64));
    group.bench_function("mixed_1000", |b| {
        b.iter(|| {
            mixed
                .iter()
                .filter(|l| event::parse(black_box(l), &hunt).is_ok())
                .count()
        })
    });
    group.finish();
}

/// A hunt with `n` zones: `n / 100` generated 100-zone hunts on adjacent tiles of a square
/// grid (zone ids prefixed by the tile), merged into one GeoJSON file. Returns the hunt and
/// the centres of its tiles.
fn tiled_hunt(n: u32) -> (Hunt, Vec<(f64, f64)>) {
    let dir = work_dir(&format!("zones-tiled-{n}"));
    let tiles = n.div_ceil(TILE_ZONES) as usize;
    let cols = (tiles as f64).sqrt().ceil() as usize;
    let base = GenerateOptions::default();
    let dlat = TILE_M / M_PER_DEG;
    let dlon = dlat / base.center_lat.to_radians().cos();
    let mut centres = Vec::with_capacity(tiles);
    let mut features = Vec::new();
    let mut first_zone = None;
    for t in 0..tiles {
        let (row, col) = ((t / cols) as f64, (t % cols) as f64);
        let centre = (base.center_lat + row * dlat, base.center_lon + col * dlon);
        centres.push(centre);
        let opts = GenerateOptions {
            seed: 1_000 + t as u64,
            events: 1,
            zones: TILE_ZONES,
            center_lat: centre.0,
            center_lon: centre.1,
            extent_m: TILE_M,
            ..base.clone()
        };
        let tile_dir = dir.join(format!("tile-{t:03}"));
        let (toml, _) =
            write_case(&generate(&opts), &tile_dir, &tile_dir.join("events")).expect("write tile");
        let tile = Hunt::load(&toml).expect("load tile");
        for z in &tile.zones {
            let id = format!("t{t:03}-{}", z.id);
            first_zone.get_or_insert_with(|| id.clone());
            features.push(feature(&id, z.priority, &z.shape));
        }
    }
    let geojson = json!({"type": "FeatureCollection", "features": features});
    std::fs::write(dir.join("zones.geojson"), geojson.to_string()).expect("write zones");
    let toml = dir.join("hunt.toml");
    std::fs::write(
        &toml,
        format!(
            "name = \"tiles-{n}\"\nzones_geojson = \"zones.geojson\"\n\n\
             [[rewards]]\nid = \"r0\"\nzone = \"{}\"\n",
            first_zone.expect("at least one zone")
        ),
    )
    .expect("write hunt");
    let hunt = Hunt::load(&toml).expect("load merged hunt");
    assert_eq!(hunt.zones.len(), n as usize);
    (hunt, centres)
}

/// A GeoJSON feature for a loaded zone.
fn feature(id: &str, priority: u8, shape: &Shape) -> Value {
    let ring =
        |ls: &geo::LineString<f64>| -> Value { ls.coords().map(|c| json!([c.x, c.y])).collect() };
    match shape {
        Shape::Circle { lat, lon, radius_m } => json!({
            "type": "Feature",
            "properties": {"id": id, "priority": priority, "radius_m": radius_m},
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
        }),
        Shape::Polygons(mp) => {
            let polygons: Vec<Value> = mp
                .iter()
                .map(|p| {
                    std::iter::once(p.exterior())
                        .chain(p.interiors())
                        .map(ring)
                        .collect()
                })
                .collect();
            json!({
                "type": "Feature",
                "properties": {"id": id, "priority": priority},
                "geometry": {"type": "MultiPolygon", "coordinates": polygons},
            })
        }
    }
}

/// `POINTS` seeded points, each uniform in a 3 km box around a uniformly chosen centre.
fn points(centres: &[(f64, f64)], seed: u64) -> Vec<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let half_lat = TILE_M / 2.0 / M_PER_DEG;
    (0..POINTS)
        .map(|_| {
            let (lat, lon) = centres[rng.random_range(0..centres.len())];
            let half_lon = half_lat / lat.to_radians().cos();
            (
                lat + rng.random_range(-half_lat..=half_lat),
                lon + rng.random_range(-half_lon..=half_lon),
            )
        })
        .collect()
}

fn bench_zones(c: &mut Criterion) {
    let mut group = c.benchmark_group("zones");
    group.throughput(Throughput::Elements(1));
    for layout in ["tiled", "same_box"] {
        for n in [100u32, 1_000, 10_000] {
            let (hunt, centres) = if layout == "tiled" {
                tiled_hunt(n)
            } else {
                let opts = GenerateOptions {
                    events: 1,
                    zones: n,
                    extent_m: TILE_M,
                    ..GenerateOptions::default()
                };
                let centre = (opts.center_lat, opts.center_lon);
                (
                    dataset(&format!("zones-same-box-{n}"), &opts).0,
                    vec![centre],
                )
            };
            let pts = points(&centres, 11);
            let mut out = Vec::new();
            // The same R-tree as the hunt's, to count (and time) the box candidates alone.
            let index = ZoneIndex::new(hunt.zones.iter().map(|z| &z.shape));
            let (mut candidates, mut matches) = (0, 0);
            for &(lat, lon) in &pts {
                index.query(|_| true, lat, lon, &mut out);
                candidates += out.len();
                hunt.zones_at(lat, lon, &mut out);
                matches += out.len();
            }
            eprintln!(
                "zones/{layout}/{n}: {} tiles of 3 km; per point on average {:.2} box \
                 candidates, {:.2} zones",
                centres.len(),
                candidates as f64 / pts.len() as f64,
                matches as f64 / pts.len() as f64
            );
            if layout == "tiled" {
                group.bench_function(BenchmarkId::new("tiled_index_only", n), |b| {
                    let mut i = 0usize;
                    b.iter(|| {
                        let (lat, lon) = pts[i % POINTS];
                        i += 1;
                        index.query(|_| true, black_box(lat), black_box(lon), &mut out);
                        out.len()
                    })
                });
            }
            group.bench_function(BenchmarkId::new(layout, n), |b| {
                let mut i = 0usize;
                b.iter(|| {
                    let (lat, lon) = pts[i % POINTS];
                    i += 1;
                    hunt.zones_at(black_box(lat), black_box(lon), &mut out);
                    out.len()
                })
            });
        }
    }
    group.finish();
}

/// The (id, ts) stream of a generated partition, in file order.
fn id_stream(name: &str, opts: &GenerateOptions) -> (u64, Vec<(String, u64)>) {
    let (hunt, _, parts) = dataset(name, opts);
    let bytes = std::fs::read(&parts[0]).expect("read partition");
    let stream = lines(&bytes)
        .into_iter()
        .map(|l| {
            let p = event::parse(l, &hunt).expect("clean line");
            (p.id.into_owned(), p.ts)
        })
        .collect();
    (hunt.max_lateness_ms, stream)
}

fn bench_admission(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission");
    let dup = GenerateOptions {
        duplicate_rate: 0.05,
        ..clean(20_000, 1_000)
    };
    for (name, opts) in [("disorder", clean(20_000, 1_000)), ("duplicates", dup)] {
        let (lateness, stream) = id_stream(&format!("admission-{name}"), &opts);
        let run = || {
            let mut a = Admission::new(lateness);
            stream
                .iter()
                .filter(|(id, ts)| a.admit(black_box(id), *ts).is_err())
                .count()
        };
        eprintln!(
            "admission/{name}: {} records, {} rejected",
            stream.len(),
            run()
        );
        group.throughput(Throughput::Elements(stream.len() as u64));
        group.bench_function(name, |b| b.iter(&run));
    }
    group.finish();
}

fn bench_upsert(c: &mut Criterion) {
    let events = 20_000;
    let (_, toml, parts) = dataset("upsert", &clean(events, 1_000));
    let output = work_dir("upsert").join("out.jsonl");
    let opts = BackfillOptions {
        workers: 1,
        output: Some(output),
        ..BackfillOptions::new(toml, parts)
    };
    let summary = backfill::run(&opts).expect("backfill");
    assert_eq!(summary.read, events);
    let mut group = c.benchmark_group("upsert");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(events));
    group.bench_function("backfill_20k_1w", |b| {
        b.iter(|| backfill::run(&opts).expect("backfill").accepted)
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_zones,
    bench_admission,
    bench_upsert
);
criterion_main!(benches);
