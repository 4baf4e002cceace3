//! The hunt definition (docs/spec.md §4): loading and validating the hunt TOML file and its
//! optional GeoJSON zones, and the resolved, interned form the engine works with: zones,
//! rewards, clues and sensors numbered by their position in id-sorted lists, plus a
//! spatial index answering "which zones contain this point".
//!
//! Defaults and choices beyond the spec: `name` is optional and defaults to the TOML
//! file's stem; an empty `requires = []` counts as absent; duplicate clue ids within one
//! reward's `requires` are merged; a sensor condition with neither `min` nor `max` holds
//! for any reading; an `active` table with neither bound is always active.

mod error;
mod fields;
mod geojson_zones;
mod toml_def;

pub use error::HuntError;

use crate::model::zones::{Shape, ZoneIndex};
use error::{read, syntax, Ctx};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loaded, validated hunt.
#[derive(Clone, Debug)]
pub struct Hunt {
    pub name: String,
    /// The TOML file it was loaded from.
    pub path: PathBuf,
    pub max_lateness_ms: u64,
    pub position_ttl_ms: u64,
    pub sensor_ttl_ms: u64,
    pub max_accuracy_m: Option<f64>,
    /// Sorted by id (bytewise); a zone's number is its index.
    pub zones: Vec<Zone>,
    /// Sorted by id (bytewise); a reward's number is its index.
    pub rewards: Vec<Reward>,
    /// The definition's own text, as loaded.
    pub text: HuntText,
    /// Every clue id some reward requires, sorted and deduplicated.
    pub clues: Vec<String>,
    /// Every sensor id some reward's sensor condition names, sorted and deduplicated.
    pub sensors: Vec<String>,
    index: ZoneIndex,
}

/// The text a hunt was loaded from: the TOML file, and the GeoJSON file it
/// names, if any.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HuntText {
    pub toml: String,
    pub geojson: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub id: String,
    pub priority: u8,
    pub shape: Shape,
}

impl AsRef<Shape> for Zone {
    fn as_ref(&self) -> &Shape {
        &self.shape
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reward {
    pub id: String,
    pub priority: u8,
    /// Zone number.
    pub zone: Option<u32>,
    /// Clue numbers (into `Hunt::clues`), sorted and deduplicated.
    pub requires: Vec<u32>,
    pub sensor: Option<SensorCondition>,
    pub active: Option<Window>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensorCondition {
    /// Sensor number (into `Hunt::sensors`).
    pub sensor: u32,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The half-open window `[from, until)` of event times; either bound optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Option<u64>,
    pub until: Option<u64>,
}

impl Reward {
    /// The number of player conditions: zone (0 or 1) + clues required + sensor (0 or 1).
    pub fn condition_count(&self) -> usize {
        usize::from(self.zone.is_some()) + self.requires.len() + usize::from(self.sensor.is_some())
    }
}

impl SensorCondition {
    /// Whether a reading satisfies `min <= value <= max` (absent bounds always hold).
    pub fn holds(&self, value: f64) -> bool {
        self.min.is_none_or(|m| m <= value) && self.max.is_none_or(|m| value <= m)
    }
}

impl Window {
    /// Whether `from <= t < until`.
    pub fn contains(&self, t: u64) -> bool {
        self.from.is_none_or(|f| f <= t) && self.until.is_none_or(|u| t < u)
    }
}

/// Where a zone was defined: `zones[i]` of the TOML file or feature `i` of the GeoJSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ZonePlace {
    Toml(usize),
    GeoJson(usize),
}

#[derive(Debug)]
pub(crate) struct RawZone {
    pub id: String,
    pub priority: u8,
    pub shape: Shape,
    pub place: ZonePlace,
}

#[derive(Debug)]
pub(crate) struct RawSensor {
    pub id: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct RawReward {
    pub id: String,
    pub priority: u8,
    /// Position in `rewards`.
    pub index: usize,
    pub zone: Option<String>,
    /// Sorted, deduplicated clue ids.
    pub requires: Vec<String>,
    pub sensor: Option<RawSensor>,
    pub active: Option<Window>,
}

/// The GeoJSON file the TOML `text` of `path` names, as written there.
fn geojson_name(path: &Path, text: &str) -> Result<Option<String>, HuntError> {
    let top: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| syntax(path, text, e.span().map(|s| s.start), e.message()))?;
    let ctx = Ctx::file(path);
    Ok(toml_def::settings(&ctx, &top)?.zones_geojson)
}

/// Where a GeoJSON file named `rel` in the TOML file `path` lies.
fn geojson_path(path: &Path, rel: &str) -> PathBuf {
    path.parent().unwrap_or_else(|| Path::new("")).join(rel)
}

fn number(i: usize) -> u32 {
    u32::try_from(i).expect("more than u32::MAX items in a hunt")
}

fn position(sorted: &[impl AsRef<str>], id: &str) -> Option<u32> {
    sorted
        .binary_search_by(|x| x.as_ref().as_bytes().cmp(id.as_bytes()))
        .ok()
        .map(number)
}

impl AsRef<str> for Zone {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl AsRef<str> for Reward {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

/// Fails on a zone id or reward id defined twice, naming the later definition.
fn check_duplicates(
    path: &Path,
    geojson_path: Option<&Path>,
    zones: &[RawZone],
    rewards: &[RawReward],
) -> Result<(), HuntError> {
    let mut seen: BTreeMap<&str, ZonePlace> = BTreeMap::new();
    for z in zones {
        let Some(first) = seen.insert(&z.id, z.place) else {
            continue;
        };
        return Err(match (first, z.place) {
            (ZonePlace::Toml(f), ZonePlace::Toml(i)) => Ctx::file(path)
                .item(format!("zone \"{}\"", z.id))
                .err(format!("duplicate id (zones[{f}] and zones[{i}])")),
            (first, ZonePlace::GeoJson(i)) => {
                let first = match first {
                    ZonePlace::Toml(f) => format!("zones[{f}] in {}", path.display()),
                    ZonePlace::GeoJson(f) => format!("feature {f}"),
                };
                Ctx::file(geojson_path.expect("GeoJSON zone without a GeoJSON file"))
                    .item(format!("feature {i} (\"{}\")", z.id))
                    .err(format!("duplicate zone id, already defined by {first}"))
            }
            (ZonePlace::GeoJson(_), ZonePlace::Toml(_)) => unreachable!("TOML zones come first"),
        });
    }
    let mut seen_rewards: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rewards {
        if let Some(first) = seen_rewards.insert(&r.id, r.index) {
            return Err(Ctx::file(path)
                .item(format!("reward \"{}\"", r.id))
                .err(format!(
                    "duplicate id (rewards[{first}] and rewards[{}])",
                    r.index
                )));
        }
    }
    Ok(())
}

impl Hunt {
    /// Loads the hunt TOML file at `path` and the GeoJSON file its `zones_geojson` names
    /// (relative to the TOML file's directory), validating everything docs/spec.md §4 lists.
    pub fn load(path: &Path) -> Result<Hunt, HuntError> {
        let toml = read(path)?;
        let geojson = match geojson_name(path, &toml)? {
            Some(rel) => Some(read(&geojson_path(path, &rel))?),
            None => None,
        };
        Hunt::parse(path, HuntText { toml, geojson })
    }

    /// The hunt of `text`, as if loaded from the TOML file `path` (which
    /// errors name; the GeoJSON file, when the TOML names one, is named
    /// relative to it). `text.geojson` must be there when the TOML names a
    /// GeoJSON file.
    pub fn parse(path: &Path, text: HuntText) -> Result<Hunt, HuntError> {
        let top: toml::Table = text.toml.parse().map_err(|e: toml::de::Error| {
            syntax(path, &text.toml, e.span().map(|s| s.start), e.message())
        })?;
        let ctx = Ctx::file(path);
        let settings = toml_def::settings(&ctx, &top)?;
        let top_fields = fields::Fields::new(&ctx, &top, "");
        let mut raw_zones = top_fields
            .tables("zones")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| toml_def::zone(&ctx, i, t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut raw_rewards = top_fields
            .tables("rewards")?
            .into_iter()
            .enumerate()
            .map(|(i, t)| toml_def::reward(&ctx, i, t))
            .collect::<Result<Vec<_>, _>>()?;
        let geojson_path = settings
            .zones_geojson
            .as_ref()
            .map(|rel| geojson_path(path, rel));
        match (&geojson_path, &text.geojson) {
            (Some(gpath), Some(g)) => raw_zones.extend(geojson_zones::parse(gpath, g)?),
            (Some(gpath), None) => {
                return Err(ctx.err(format!(
                    "zones_geojson names {}, whose zones are missing",
                    gpath.display()
                )))
            }
            (None, Some(_)) => {
                return Err(ctx.err("zones in GeoJSON are given, but zones_geojson names no file"))
            }
            (None, None) => {}
        }

        check_duplicates(path, geojson_path.as_deref(), &raw_zones, &raw_rewards)?;

        raw_zones.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
        let zones: Vec<Zone> = raw_zones
            .into_iter()
            .map(|z| Zone {
                id: z.id,
                priority: z.priority,
                shape: z.shape,
            })
            .collect();

        let mut clues: Vec<String> = raw_rewards
            .iter()
            .flat_map(|r| r.requires.clone())
            .collect();
        clues.sort();
        clues.dedup();
        let mut sensors: Vec<String> = raw_rewards
            .iter()
            .filter_map(|r| r.sensor.as_ref().map(|s| s.id.clone()))
            .collect();
        sensors.sort();
        sensors.dedup();

        raw_rewards.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
        let rewards = raw_rewards
            .into_iter()
            .map(|r| {
                let zone = match &r.zone {
                    None => None,
                    Some(name) => Some(position(&zones, name).ok_or_else(|| {
                        ctx.item(format!("reward \"{}\"", r.id))
                            .err(format!("unknown zone \"{name}\""))
                    })?),
                };
                Ok(Reward {
                    zone,
                    requires: r
                        .requires
                        .iter()
                        .map(|c| position(&clues, c).expect("clue interned"))
                        .collect(),
                    sensor: r.sensor.as_ref().map(|s| SensorCondition {
                        sensor: position(&sensors, &s.id).expect("sensor interned"),
                        min: s.min,
                        max: s.max,
                    }),
                    active: r.active,
                    id: r.id,
                    priority: r.priority,
                })
            })
            .collect::<Result<Vec<_>, HuntError>>()?;

        let name = settings.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let index = ZoneIndex::new(zones.iter().map(|z| &z.shape));
        Ok(Hunt {
            name,
            path: path.to_path_buf(),
            max_lateness_ms: settings.max_lateness_ms,
            position_ttl_ms: settings.position_ttl_ms,
            sensor_ttl_ms: settings.sensor_ttl_ms,
            max_accuracy_m: settings.max_accuracy_m,
            zones,
            rewards,
            text,
            clues,
            sensors,
            index,
        })
    }

    /// Clears `out`, then pushes the number of every zone containing the point, ascending.
    pub fn zones_at(&self, lat: f64, lon: f64, out: &mut Vec<u32>) {
        self.index.containing(&self.zones, lat, lon, out);
    }

    pub fn zone_number(&self, id: &str) -> Option<u32> {
        position(&self.zones, id)
    }

    pub fn reward_number(&self, id: &str) -> Option<u32> {
        position(&self.rewards, id)
    }

    pub fn clue_number(&self, id: &str) -> Option<u32> {
        position(&self.clues, id)
    }

    pub fn sensor_number(&self, id: &str) -> Option<u32> {
        position(&self.sensors, id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hunt_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Hunt>();
    }
}
