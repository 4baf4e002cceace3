//! Reading zones from a GeoJSON FeatureCollection: each Feature becomes a zone named by
//! `properties.id`, with optional `properties.priority`; Polygon and MultiPolygon
//! geometries become polygon zones and a Point with `properties.radius_m` a circle.
//!
//! Features are named in messages as `feature N` (N counts from 0 in `features`), followed
//! by `("id")` when the feature has a usable id. Properties other than `id`, `priority`
//! and `radius_m` are ignored: GeoJSON files are commonly shared with map editors and
//! other tools that keep their own properties (names, styling) on the same features. A
//! property whose value is `null` counts as absent.

use super::error::{syntax, Ctx, HuntError};
use super::fields::{check_lat_lon, check_priority, check_radius, ring};
use super::{RawZone, ZonePlace};
use crate::model::zones::Shape;
use geo::{Coord, LineString, MultiPolygon, Polygon};
use geojson::{Feature, GeometryValue, Position};
use serde_json::Value;
use std::path::Path;

/// Every zone of the FeatureCollection `text`, read from `path` (which
/// errors name), in file order.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<RawZone>, HuntError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| syntax(path, text, None, &e.to_string()))?;
    let ctx = Ctx::file(path);
    let collection = match &value {
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("FeatureCollection") => o,
        _ => return Err(ctx.err("expected a GeoJSON FeatureCollection")),
    };
    let Some(features) = collection.get("features").and_then(Value::as_array) else {
        return Err(ctx.err("features: expected an array of Features"));
    };
    features
        .iter()
        .enumerate()
        .map(|(i, feature)| zone(&ctx, i, feature))
        .collect()
}

/// A property, with `null` counted as absent.
fn property<'v>(feature: &'v Value, key: &str) -> Option<&'v Value> {
    feature
        .get("properties")
        .and_then(|p| p.get(key))
        .filter(|v| !v.is_null())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn zone(ctx: &Ctx, i: usize, raw: &Value) -> Result<RawZone, HuntError> {
    let id = property(raw, "id");
    let ctx = match id.and_then(Value::as_str) {
        Some(id) if !id.is_empty() => ctx.item(format!("feature {i} (\"{id}\")")),
        _ => ctx.item(format!("feature {i}")),
    };
    let id = match id {
        None => return Err(ctx.err("missing properties.id")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ctx.err("properties.id must not be empty"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ctx.err(format!(
                "properties.id: expected a string, found {}",
                json_type(other)
            )))
        }
    };
    let priority = match property(raw, "priority") {
        None => 0,
        Some(p) => match p.as_i64() {
            Some(p) => check_priority(p).map_err(|m| ctx.err(m))?,
            None => {
                return Err(ctx.err(format!(
                    "properties.priority: expected an integer 0..=9, found {p}"
                )))
            }
        },
    };
    let radius_m = match property(raw, "radius_m") {
        None => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            return Err(ctx.err(format!(
                "properties.radius_m: expected a number, found {}",
                json_type(other)
            )))
        }
    };

    // Checked before decoding so that types GeoJSON does not define either (e.g. "Circle")
    // get the same message as the ones it defines but zones cannot use.
    let geometry_type = raw.get("geometry").and_then(|g| g.get("type"));
    if let Some(t) = geometry_type.and_then(Value::as_str) {
        if !matches!(t, "Point" | "Polygon" | "MultiPolygon") {
            return Err(unsupported(&ctx, t));
        }
    }
    let feature: Feature = serde_json::from_value(raw.clone())
        .map_err(|e| ctx.err(format!("not a valid GeoJSON Feature: {e}")))?;
    let Some(geometry) = feature.geometry else {
        return Err(ctx.err("has no geometry"));
    };
    let shape = match &geometry.value {
        GeometryValue::Point { coordinates } => {
            let c = coord(coordinates, "geometry.coordinates").map_err(|m| ctx.err(m))?;
            let Some(radius_m) = radius_m else {
                return Err(ctx.err("a Point zone needs properties.radius_m (a number > 0)"));
            };
            check_radius(radius_m).map_err(|m| ctx.err(format!("properties.radius_m: {m}")))?;
            Shape::Circle {
                lat: c.y,
                lon: c.x,
                radius_m,
            }
        }
        other => {
            if radius_m.is_some() {
                return Err(ctx.err(format!(
                    "properties.radius_m is only allowed on a Point, not a {}",
                    other.type_name()
                )));
            }
            let polygons = match other {
                GeometryValue::Polygon { coordinates } => {
                    vec![polygon(coordinates, "geometry.coordinates").map_err(|m| ctx.err(m))?]
                }
                GeometryValue::MultiPolygon { coordinates } => {
                    if coordinates.is_empty() {
                        return Err(ctx.err("MultiPolygon has no polygons"));
                    }
                    coordinates
                        .iter()
                        .enumerate()
                        .map(|(p, rings)| polygon(rings, &format!("geometry.coordinates[{p}]")))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|m| ctx.err(m))?
                }
                other => return Err(unsupported(&ctx, other.type_name())),
            };
            Shape::Polygons(MultiPolygon::new(polygons))
        }
    };
    Ok(RawZone {
        id,
        priority,
        shape,
        place: ZonePlace::GeoJson(i),
    })
}

fn unsupported(ctx: &Ctx, geometry_type: &str) -> HuntError {
    ctx.err(format!(
        "geometry type {geometry_type} is not supported (Polygon, MultiPolygon or Point)"
    ))
}

/// A checked `[lon, lat]` position (an altitude, if given, is ignored).
fn coord(p: &Position, label: &str) -> Result<Coord<f64>, String> {
    let s = p.as_slice();
    if s.len() < 2 {
        return Err(format!("{label}: a position needs [lon, lat]"));
    }
    check_lat_lon(s[1], s[0]).map_err(|m| format!("{label}: {m}"))?;
    Ok(Coord { x: s[0], y: s[1] })
}

/// A polygon from GeoJSON rings: the exterior, then holes.
fn polygon(rings: &[Vec<Position>], label: &str) -> Result<Polygon<f64>, String> {
    if rings.is_empty() {
        return Err(format!(
            "{label}: a polygon needs at least an exterior ring"
        ));
    }
    let mut built: Vec<LineString<f64>> = Vec::with_capacity(rings.len());
    for (r, positions) in rings.iter().enumerate() {
        let coords = positions
            .iter()
            .enumerate()
            .map(|(k, p)| coord(p, &format!("{label}[{r}][{k}]")))
            .collect::<Result<Vec<_>, _>>()?;
        built.push(ring(coords).map_err(|m| format!("{label}[{r}]: {m}"))?);
    }
    let exterior = built.remove(0);
    Ok(Polygon::new(exterior, built))
}
