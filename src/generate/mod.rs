//! Seeded synthetic datasets for tests, benchmarks and the demo: a hunt definition (TOML plus a
//! GeoJSON zone file, docs/spec.md §4) and JSON Lines event partitions (docs/spec.md §3) with players walking a
//! city, local disorder, late events, redeliveries and every kind of bad line, and optionally a
//! hunt change log (docs/spec.md §9); or, with [`GenerateOptions::for_hunt`], events alone for an
//! existing hunt. The output bytes are a pure
//! function of [`GenerateOptions`] (and the hunt), on every platform.

mod bad;
mod changes;
mod content;
mod geom;
mod hunt_text;
mod line;
mod model;
mod sim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_changes;
#[cfg(test)]
mod tests_hunt;
mod world;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::hunt::Hunt;

/// What to generate. Rates are fractions of all event lines; out-of-range rates are clamped to
/// `[0, 1]`, `players`, `rewards` and `partitions` below 1 count as 1, and a non-positive
/// `rate_per_s` counts as 1.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Generate events for this existing hunt instead of inventing one. Then no hunt files are
    /// written; `zones`, `rewards`, `clues`, `sensors`, the lateness / TTL / accuracy settings
    /// and the city box are taken from the hunt (players walk the bounding box of its zones
    /// plus a margin; the city box only when it has no zones); solves, claims and readings name
    /// its clues, rewards and sensors (and some unknown ones), with readings around its sensor
    /// conditions' bounds.
    pub for_hunt: Option<Arc<Hunt>>,
    pub seed: u64,
    /// Total event lines (bad lines included), spread over the partitions.
    pub events: u64,
    pub players: u32,
    /// Zones: circles, polygons (some with holes) and multipolygons, inline or in GeoJSON.
    pub zones: u32,
    pub rewards: u32,
    pub clues: u32,
    pub sensors: u32,
    /// One JSONL file per partition; a player's events go (almost always) to one partition.
    pub partitions: u32,
    /// Event time of the first event, ms.
    pub start_ms: u64,
    /// Events per second of event time (sets the time span).
    pub rate_per_s: f64,
    /// Share of good events that are positions; the rest are half actions, half sensor readings.
    pub position_share: f64,
    /// Lines are written up to this much later than their ts within a partition (out of order).
    pub disorder_ms: u64,
    /// Lines written with a ts below the partition's lateness bound (rejected `late`).
    pub late_rate: f64,
    /// Lines that redeliver an earlier line of the same partition (same id, same bytes).
    pub duplicate_rate: f64,
    /// Bad lines of every kind (not JSON, not UTF-8, arrays, missing / null / wrong-type /
    /// empty fields, unknown type, bad coordinates, inaccurate positions, lines over 64 KiB).
    pub malformed_rate: f64,
    /// Good events given the same player and ts as the good event just before.
    pub equal_ts_rate: f64,
    /// Events given an explicit `ttl_ms` of 1..=3000 so TTL expiries happen between events.
    pub short_ttl_rate: f64,
    pub max_lateness_ms: u64,
    pub position_ttl_ms: u64,
    pub sensor_ttl_ms: u64,
    pub max_accuracy_m: Option<f64>,
    /// Centre of the city box, degrees.
    pub center_lat: f64,
    pub center_lon: f64,
    /// Side of the (square) city box, metres.
    pub extent_m: f64,
    /// Hunt change records (docs/spec.md §9) to generate for a synthetic hunt (not with
    /// `for_hunt`): each a new version of the whole hunt, effective strictly inside the events'
    /// time span. With a non-zero `malformed_rate`, one invalid record is sometimes added.
    pub changes: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            for_hunt: None,
            seed: 42,
            events: 10_000,
            players: 100,
            zones: 20,
            rewards: 12,
            clues: 8,
            sensors: 4,
            partitions: 4,
            start_ms: 1_700_000_000_000,
            rate_per_s: 50.0,
            position_share: 0.75,
            disorder_ms: 2_000,
            late_rate: 0.002,
            duplicate_rate: 0.005,
            malformed_rate: 0.005,
            equal_ts_rate: 0.02,
            short_ttl_rate: 0.05,
            max_lateness_ms: 5_000,
            position_ttl_ms: 60_000,
            sensor_ttl_ms: 30_000,
            max_accuracy_m: Some(50.0),
            center_lat: 48.8566,
            center_lon: 2.3522,
            extent_m: 3_000.0,
            changes: 0,
        }
    }
}

/// What the engine must report for the generated events (exact: the generator tracks each
/// partition's accepted maximum ts as docs/spec.md §2 defines it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateStats {
    /// Lines written (== `events`).
    pub lines: u64,
    pub accepted: u64,
    /// Rejected lines by docs/spec.md §3 reason code (only reasons that occur).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Bad lines by kind: `not_json`, `non_utf8`, `not_object`, `missing_field`, `null_field`,
    /// `wrong_type`, `empty_string`, `unknown_type`, `bad_coordinates`, `inaccurate`, `huge_line`.
    pub bad_kinds: BTreeMap<&'static str, u64>,
    /// Change records a reader accepts and rejects (`bad_hunt_change`); admission of events does
    /// not depend on them.
    pub hunt_changes_accepted: u64,
    pub hunt_changes_rejected: u64,
}

/// The hunt a generated dataset's events are for.
#[derive(Clone, Debug)]
pub enum CaseHunt {
    /// Invented with the events: the hunt TOML (it names `zones_geojson = "zones.geojson"`)
    /// and that GeoJSON zone file.
    Synthetic { toml: String, zones_geojson: String },
    /// The existing hunt of [`GenerateOptions::for_hunt`], loaded from this TOML file.
    Existing(PathBuf),
}

/// A generated dataset held in memory.
#[derive(Clone, Debug)]
pub struct GeneratedCase {
    pub hunt: CaseHunt,
    /// JSON Lines bytes per partition.
    pub partitions: Vec<Vec<u8>>,
    /// The hunt change log (docs/spec.md §9): one change record per entry, without newline.
    pub hunt_changes: Vec<String>,
    pub stats: GenerateStats,
}

/// Name of the change log [`write_case`] and [`generate_to_files`] write in the events
/// directory when there are changes.
pub const HUNT_CHANGES_FILE: &str = "hunt-changes.jsonl";

/// Where [`write_case_files`] wrote a generated case.
#[derive(Clone, Debug)]
pub struct CaseFiles {
    pub hunt_toml: PathBuf,
    pub partitions: Vec<PathBuf>,
    /// `events_dir/hunt-changes.jsonl`, when the case has changes.
    pub hunt_changes: Option<PathBuf>,
}

/// Where a dataset was written.
#[derive(Clone, Debug)]
pub struct GeneratedFiles {
    /// The hunt TOML: written to the hunt directory, or the existing hunt's own file.
    pub hunt_toml: PathBuf,
    /// The GeoJSON zone file written next to a synthetic hunt; `None` for an existing hunt.
    pub zones_geojson: Option<PathBuf>,
    /// `part-000.jsonl`, `part-001.jsonl`, … in partition order.
    pub partitions: Vec<PathBuf>,
    /// The change log, when changes were generated.
    pub hunt_changes: Option<PathBuf>,
    pub stats: GenerateStats,
}

struct Prepared {
    /// The options with an existing hunt's settings filled in.
    opts: GenerateOptions,
    world: world::World,
    hunt: CaseHunt,
    changes: Option<changes::ChangeLog>,
}

fn prepare(opts: &GenerateOptions) -> Prepared {
    if let Some(hunt) = &opts.for_hunt {
        let opts = GenerateOptions {
            zones: count(hunt.zones.len()),
            rewards: count(hunt.rewards.len()),
            clues: count(hunt.clues.len()),
            sensors: count(hunt.sensors.len()),
            max_lateness_ms: hunt.max_lateness_ms,
            position_ttl_ms: hunt.position_ttl_ms,
            sensor_ttl_ms: hunt.sensor_ttl_ms,
            max_accuracy_m: hunt.max_accuracy_m,
            ..opts.clone()
        };
        return Prepared {
            world: world::World::for_hunt(hunt, &opts),
            hunt: CaseHunt::Existing(hunt.path.clone()),
            opts,
            changes: None,
        };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let model = model::build(opts, &mut rng);
    let changes = (opts.changes > 0).then(|| changes::generate(opts, &model));
    Prepared {
        opts: opts.clone(),
        world: match &changes {
            Some(log) => world::World::with_changes(&model, log),
            None => world::World::synthetic(&model),
        },
        hunt: CaseHunt::Synthetic {
            toml: hunt_text::toml(opts, &model),
            zones_geojson: hunt_text::geojson(&model),
        },
        changes,
    }
}

impl Prepared {
    fn change_lines(&self) -> Vec<String> {
        self.changes
            .as_ref()
            .map(|log| log.lines.clone())
            .unwrap_or_default()
    }

    fn count_changes(&self, stats: &mut GenerateStats) {
        if let Some(log) = &self.changes {
            stats.hunt_changes_accepted = log.accepted;
            stats.hunt_changes_rejected = log.rejected;
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn partition_count(opts: &GenerateOptions) -> usize {
    opts.partitions.max(1) as usize
}

/// Generates a dataset in memory.
pub fn generate(opts: &GenerateOptions) -> GeneratedCase {
    let p = prepare(opts);
    let sinks = vec![Vec::new(); partition_count(opts)];
    let (partitions, mut stats) = sim::Sim::new(&p.opts, &p.world, sinks)
        .run(&mut |_| {})
        .expect("writing to a Vec<u8> cannot fail");
    p.count_changes(&mut stats);
    GeneratedCase {
        hunt_changes: p.change_lines(),
        hunt: p.hunt,
        partitions,
        stats,
    }
}

/// Writes the change log to `events_dir/hunt-changes.jsonl` when there are changes.
fn write_changes(lines: &[String], events_dir: &Path) -> io::Result<Option<PathBuf>> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let path = events_dir.join(HUNT_CHANGES_FILE);
    fs::write(&path, text)?;
    Ok(Some(path))
}

fn part_path(events_dir: &Path, i: usize) -> PathBuf {
    events_dir.join(format!("part-{i:03}.jsonl"))
}

/// Writes a synthetic hunt to `hunt_dir`; an existing hunt stays where it is. Returns the
/// hunt TOML path and the GeoJSON path, if one was written.
fn write_hunt(hunt: &CaseHunt, hunt_dir: &Path) -> io::Result<(PathBuf, Option<PathBuf>)> {
    match hunt {
        CaseHunt::Existing(path) => Ok((path.clone(), None)),
        CaseHunt::Synthetic {
            toml,
            zones_geojson,
        } => {
            fs::create_dir_all(hunt_dir)?;
            let toml_path = hunt_dir.join("hunt.toml");
            let geo_path = hunt_dir.join(hunt_text::ZONES_FILE);
            fs::write(&toml_path, toml)?;
            fs::write(&geo_path, zones_geojson)?;
            Ok((toml_path, Some(geo_path)))
        }
    }
}

/// Writes a generated case: `hunt_dir/hunt.toml` and `hunt_dir/zones.geojson` (a synthetic
/// hunt only; `hunt_dir` is unused for an existing hunt), `events_dir/part-NNN.jsonl` and, when
/// the case has changes, `events_dir/hunt-changes.jsonl`; returns the hunt TOML path and the
/// partition paths ([`write_case_files`] also returns the change log's).
pub fn write_case(
    case: &GeneratedCase,
    hunt_dir: &Path,
    events_dir: &Path,
) -> io::Result<(PathBuf, Vec<PathBuf>)> {
    let files = write_case_files(case, hunt_dir, events_dir)?;
    Ok((files.hunt_toml, files.partitions))
}

/// [`write_case`], returning every path written.
pub fn write_case_files(
    case: &GeneratedCase,
    hunt_dir: &Path,
    events_dir: &Path,
) -> io::Result<CaseFiles> {
    let (hunt_toml, _) = write_hunt(&case.hunt, hunt_dir)?;
    fs::create_dir_all(events_dir)?;
    let mut partitions = Vec::with_capacity(case.partitions.len());
    for (i, bytes) in case.partitions.iter().enumerate() {
        let path = part_path(events_dir, i);
        fs::write(&path, bytes)?;
        partitions.push(path);
    }
    let hunt_changes = write_changes(&case.hunt_changes, events_dir)?;
    Ok(CaseFiles {
        hunt_toml,
        partitions,
        hunt_changes,
    })
}

/// Generates a dataset straight to files (the same bytes as [`generate`] + [`write_case`]),
/// streaming the events through buffered writers: memory stays bounded by the players, the
/// zones and the lines in flight within `disorder_ms`, whatever `events` is. `hunt_dir` is
/// unused with [`GenerateOptions::for_hunt`].
pub fn generate_to_files(
    opts: &GenerateOptions,
    hunt_dir: &Path,
    events_dir: &Path,
) -> io::Result<GeneratedFiles> {
    generate_to_files_with_progress(opts, hunt_dir, events_dir, &mut |_| {})
}

/// [`generate_to_files`], calling `progress` with the number of lines generated so far every
/// 65,536 lines and once at the end.
pub fn generate_to_files_with_progress(
    opts: &GenerateOptions,
    hunt_dir: &Path,
    events_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> io::Result<GeneratedFiles> {
    let p = prepare(opts);
    let (hunt_toml, zones_geojson) = write_hunt(&p.hunt, hunt_dir)?;
    fs::create_dir_all(events_dir)?;
    let partitions: Vec<PathBuf> = (0..partition_count(opts))
        .map(|i| part_path(events_dir, i))
        .collect();
    let sinks = partitions
        .iter()
        .map(|path| File::create(path).map(|f| BufWriter::with_capacity(1 << 20, f)))
        .collect::<io::Result<Vec<_>>>()?;
    let hunt_changes = write_changes(&p.change_lines(), events_dir)?;
    let (writers, mut stats) = sim::Sim::new(&p.opts, &p.world, sinks).run(progress)?;
    for mut w in writers {
        w.flush()?;
    }
    p.count_changes(&mut stats);
    Ok(GeneratedFiles {
        hunt_toml,
        zones_geojson,
        partitions,
        hunt_changes,
        stats,
    })
}
