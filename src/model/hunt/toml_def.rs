//! Reading the hunt TOML file: the top-level settings, the inline `[[zones]]` and the
//! `[[rewards]]`, each checked field by field (types, ranges, unknown keys). Cross-item
//! checks (duplicate ids, reward zones that do not exist) happen once every zone is known.

use super::error::{Ctx, HuntError};
use super::fields::{check_radius, Fields};
use super::{RawReward, RawSensor, RawZone, Window, ZonePlace};
use crate::model::zones::Shape;
use geo::{MultiPolygon, Polygon};
use toml::Table;

/// The top-level settings of a hunt file.
#[derive(Debug)]
pub(crate) struct Settings {
    pub name: Option<String>,
    pub max_lateness_ms: u64,
    pub position_ttl_ms: u64,
    pub sensor_ttl_ms: u64,
    pub max_accuracy_m: Option<f64>,
    pub zones_geojson: Option<String>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "max_lateness_ms",
    "position_ttl_ms",
    "sensor_ttl_ms",
    "max_accuracy_m",
    "zones_geojson",
    "zones",
    "rewards",
];

pub(crate) fn settings(ctx: &Ctx, top: &Table) -> Result<Settings, HuntError> {
    let f = Fields::new(ctx, top, "");
    f.check_keys(TOP_KEYS)?;
    let ttl = |key: &str, default: u64| -> Result<u64, HuntError> {
        match f.u64(key)? {
            None => Ok(default),
            Some(0) => Err(f.err(format!("{key}: must be >= 1, found 0"))),
            Some(v) => Ok(v),
        }
    };
    let max_accuracy_m = f.f64("max_accuracy_m")?;
    if let Some(m) = max_accuracy_m {
        if m < 0.0 {
            return Err(f.err(format!("max_accuracy_m: must be >= 0, found {m}")));
        }
    }
    let zones_geojson = f.str("zones_geojson")?;
    if zones_geojson == Some("") {
        return Err(f.err("zones_geojson must not be empty"));
    }
    Ok(Settings {
        name: f.id("name")?.map(str::to_string),
        max_lateness_ms: f.u64("max_lateness_ms")?.unwrap_or(5000),
        position_ttl_ms: ttl("position_ttl_ms", 60_000)?,
        sensor_ttl_ms: ttl("sensor_ttl_ms", 30_000)?,
        max_accuracy_m,
        zones_geojson: zones_geojson.map(str::to_string),
    })
}

/// Names an item by id when it has a usable one, else by position.
fn item_ctx<'a>(ctx: &Ctx<'a>, table: &Table, kind: &str, list: &str, i: usize) -> Ctx<'a> {
    match table.get("id") {
        Some(toml::Value::String(id)) if !id.is_empty() => ctx.item(format!("{kind} \"{id}\"")),
        _ => ctx.item(format!("{list}[{i}]")),
    }
}

/// Reads `zones[i]`.
pub(crate) fn zone(ctx: &Ctx, i: usize, table: &Table) -> Result<RawZone, HuntError> {
    let ctx = item_ctx(ctx, table, "zone", "zones", i);
    let f = Fields::new(&ctx, table, "");
    let id = f.id("id")?.ok_or_else(|| f.missing("id"))?.to_string();
    f.check_keys(&["id", "priority", "circle", "polygon", "holes"])?;
    let priority = f.priority("priority")?;
    let shape = match (f.table("circle")?, f.has("polygon")) {
        (Some(_), true) => return Err(f.err("has both circle and polygon (give exactly one)")),
        (None, false) => return Err(f.err("needs a circle or a polygon")),
        (Some(circle), false) => {
            if f.has("holes") {
                return Err(f.err("holes is only allowed with a polygon"));
            }
            let c = Fields::new(&ctx, circle, "circle");
            c.check_keys(&["lat", "lon", "radius_m"])?;
            let lat = c.f64("lat")?.ok_or_else(|| c.missing("lat"))?;
            let lon = c.f64("lon")?.ok_or_else(|| c.missing("lon"))?;
            let radius_m = c.f64("radius_m")?.ok_or_else(|| c.missing("radius_m"))?;
            super::fields::check_lat_lon(lat, lon).map_err(|m| c.err(format!("circle: {m}")))?;
            check_radius(radius_m).map_err(|m| c.err(format!("circle.radius_m: {m}")))?;
            Shape::Circle { lat, lon, radius_m }
        }
        (None, true) => {
            let exterior = f.ring(&table["polygon"], "polygon")?;
            let mut interiors = Vec::new();
            if let Some(holes) = f.array("holes")? {
                for (h, hole) in holes.iter().enumerate() {
                    interiors.push(f.ring(hole, &format!("holes[{h}]"))?);
                }
            }
            Shape::Polygons(MultiPolygon::new(vec![Polygon::new(exterior, interiors)]))
        }
    };
    Ok(RawZone {
        id,
        priority,
        shape,
        place: ZonePlace::Toml(i),
    })
}

/// Reads `rewards[i]`; its zone name is resolved later.
pub(crate) fn reward(ctx: &Ctx, i: usize, table: &Table) -> Result<RawReward, HuntError> {
    let ctx = item_ctx(ctx, table, "reward", "rewards", i);
    let f = Fields::new(&ctx, table, "");
    let id = f.id("id")?.ok_or_else(|| f.missing("id"))?.to_string();
    f.check_keys(&["id", "priority", "zone", "requires", "sensor", "active"])?;
    let priority = f.priority("priority")?;
    let zone = f.id("zone")?.map(str::to_string);

    let mut requires = Vec::new();
    for (r, clue) in f.array("requires")?.unwrap_or_default().iter().enumerate() {
        match clue {
            toml::Value::String(c) if !c.is_empty() => requires.push(c.clone()),
            toml::Value::String(_) => {
                return Err(f.err(format!("requires[{r}]: clue id must not be empty")))
            }
            other => {
                return Err(f.err(format!(
                    "requires[{r}]: expected a string, found {}",
                    other.type_str()
                )))
            }
        }
    }
    requires.sort();
    requires.dedup();

    let sensor = match f.table("sensor")? {
        None => None,
        Some(t) => {
            let s = Fields::new(&ctx, t, "sensor");
            s.check_keys(&["id", "min", "max"])?;
            let id = s.id("id")?.ok_or_else(|| s.missing("id"))?.to_string();
            let (min, max) = (s.f64("min")?, s.f64("max")?);
            if let (Some(lo), Some(hi)) = (min, max) {
                if lo > hi {
                    return Err(s.err(format!("sensor: min ({lo}) is greater than max ({hi})")));
                }
            }
            Some(RawSensor { id, min, max })
        }
    };

    let active = match f.table("active")? {
        None => None,
        Some(t) => {
            let a = Fields::new(&ctx, t, "active");
            a.check_keys(&["from", "until"])?;
            let (from, until) = (a.u64("from")?, a.u64("until")?);
            if let (Some(from), Some(until)) = (from, until) {
                if from >= until {
                    return Err(a.err(format!(
                        "active: from ({from}) must be less than until ({until})"
                    )));
                }
            }
            Some(Window { from, until })
        }
    };

    if zone.is_none() && requires.is_empty() && sensor.is_none() {
        return Err(f.err("sets no condition (needs at least one of zone, requires, sensor)"));
    }
    Ok(RawReward {
        id,
        priority,
        index: i,
        zone,
        requires,
        sensor,
        active,
    })
}
