//! Typed access to the fields of a TOML table, with errors that name the field, and the
//! coordinate and ring checks shared by TOML and GeoJSON zones.

use super::error::{Ctx, HuntError};
use geo::{Coord, LineString};
use toml::{Table, Value};

/// The fields of one TOML table. `prefix` is how the table is named inside its item
/// (e.g. `circle`), empty for the item's own table.
pub(crate) struct Fields<'a> {
    pub ctx: &'a Ctx<'a>,
    pub table: &'a Table,
    pub prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn new(ctx: &'a Ctx<'a>, table: &'a Table, prefix: &'a str) -> Fields<'a> {
        Fields { ctx, table, prefix }
    }

    /// How field `key` is named in messages.
    pub fn label(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub fn err(&self, message: impl Into<String>) -> HuntError {
        self.ctx.err(message)
    }

    fn type_err(&self, key: &str, expected: &str, found: &Value) -> HuntError {
        self.err(format!(
            "{}: expected {expected}, found {}",
            self.label(key),
            found.type_str()
        ))
    }

    /// Fails on the first key not in `allowed`.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), HuntError> {
        match self.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => {
                let place = if self.prefix.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", self.prefix)
                };
                Err(self.err(format!(
                    "unknown key \"{key}\"{place} (expected one of: {})",
                    allowed.join(", ")
                )))
            }
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub fn missing(&self, key: &str) -> HuntError {
        self.err(format!("missing {}", self.label(key)))
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, HuntError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.type_err(key, "a string", other)),
        }
    }

    /// A non-empty string.
    pub fn id(&self, key: &str) -> Result<Option<&'a str>, HuntError> {
        match self.str(key)? {
            Some("") => Err(self.err(format!("{} must not be empty", self.label(key)))),
            other => Ok(other),
        }
    }

    /// A non-negative integer.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, HuntError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => u64::try_from(*i)
                .map(Some)
                .map_err(|_| self.err(format!("{}: must be >= 0, found {i}", self.label(key)))),
            Some(other) => Err(self.type_err(key, "a non-negative integer", other)),
        }
    }

    /// A finite number (an integer is accepted).
    pub fn f64(&self, key: &str) -> Result<Option<f64>, HuntError> {
        let x = match self.table.get(key) {
            None => return Ok(None),
            Some(Value::Integer(i)) => *i as f64,
            Some(Value::Float(x)) => *x,
            Some(other) => return Err(self.type_err(key, "a number", other)),
        };
        if x.is_finite() {
            Ok(Some(x))
        } else {
            Err(self.err(format!(
                "{}: must be a finite number, found {x}",
                self.label(key)
            )))
        }
    }

    /// An integer 0..=9, 0 when absent.
    pub fn priority(&self, key: &str) -> Result<u8, HuntError> {
        match self.table.get(key) {
            None => Ok(0),
            Some(Value::Integer(i)) => check_priority(*i).map_err(|m| self.err(m)),
            Some(other) => Err(self.type_err(key, "an integer 0..=9", other)),
        }
    }

    pub fn table(&self, key: &str) -> Result<Option<&'a Table>, HuntError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(t)),
            Some(other) => Err(self.type_err(key, "a table", other)),
        }
    }

    pub fn array(&self, key: &str) -> Result<Option<&'a [Value]>, HuntError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(other) => Err(self.type_err(key, "an array", other)),
        }
    }

    /// An array whose every element is a table (`[[key]]` in TOML).
    pub fn tables(&self, key: &str) -> Result<Vec<&'a Table>, HuntError> {
        let Some(items) = self.array(key)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Table(t) => Ok(t),
                other => Err(self.err(format!(
                    "{}[{i}]: expected a table, found {}",
                    self.label(key),
                    other.type_str()
                ))),
            })
            .collect()
    }

    /// A TOML ring: an array of `[lon, lat]` pairs.
    pub fn ring(&self, value: &Value, label: &str) -> Result<LineString<f64>, HuntError> {
        let Value::Array(points) = value else {
            return Err(self.err(format!(
                "{label}: expected an array of [lon, lat] points, found {}",
                value.type_str()
            )));
        };
        let mut coords = Vec::with_capacity(points.len());
        for (i, point) in points.iter().enumerate() {
            let pair = match point {
                Value::Array(pair) if pair.len() == 2 => {
                    let num = |v: &Value| match v {
                        Value::Integer(i) => Some(*i as f64),
                        Value::Float(x) => Some(*x),
                        _ => None,
                    };
                    num(&pair[0]).zip(num(&pair[1]))
                }
                _ => None,
            };
            let Some((lon, lat)) = pair else {
                return Err(self.err(format!(
                    "{label}[{i}]: expected a [lon, lat] pair of numbers"
                )));
            };
            check_lat_lon(lat, lon).map_err(|m| self.err(format!("{label}[{i}]: {m}")))?;
            coords.push(Coord { x: lon, y: lat });
        }
        ring(coords).map_err(|m| self.err(format!("{label}: {m}")))
    }
}

/// Checks a priority value.
pub(crate) fn check_priority(p: i64) -> Result<u8, String> {
    match u8::try_from(p) {
        Ok(p) if p <= 9 => Ok(p),
        _ => Err(format!("priority {p} is outside 0..=9")),
    }
}

/// Checks WGS84 coordinates: finite, lat in [-90, 90], lon in [-180, 180].
pub(crate) fn check_lat_lon(lat: f64, lon: f64) -> Result<(), String> {
    if lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
    {
        Ok(())
    } else {
        Err(format!(
            "coordinates (lon {lon}, lat {lat}) out of range (lon in [-180, 180], lat in [-90, 90])"
        ))
    }
}

/// Checks a circle radius: finite and > 0.
pub(crate) fn check_radius(radius_m: f64) -> Result<(), String> {
    if radius_m.is_finite() && radius_m > 0.0 {
        Ok(())
    } else {
        Err(format!("must be > 0, found {radius_m}"))
    }
}

/// Builds a ring from already range-checked coordinates; it must have at least 3 distinct
/// points. The ring may be given closed or not.
pub(crate) fn ring(coords: Vec<Coord<f64>>) -> Result<LineString<f64>, String> {
    let mut distinct: Vec<(u64, u64)> = coords
        .iter()
        // +0.0 normalises -0.0 so that both spellings of zero compare equal.
        .map(|c| ((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits()))
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(format!(
            "ring has {} distinct point{}, needs at least 3",
            distinct.len(),
            if distinct.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(LineString::new(coords))
}
