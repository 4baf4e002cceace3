//! Tests of the hunt loader: every validation of docs/spec.md §4 fails with a one-line message
//! naming the file and the item, valid hunts load with zones merged, sorted and interned,
//! zone membership follows docs/spec.md §5, and the demo hunt loads.

#[path = "loader/fields.rs"]
mod fields;
#[path = "loader/items.rs"]
mod items;
#[path = "loader/valid.rs"]
mod valid;

use huntflow::model::hunt::Hunt;
use std::fs;
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test.
fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("loader")
        .join(test);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `hunt.toml` (and `zones.geojson` when given) into a fresh directory.
fn write(test: &str, toml: &str, geojson: Option<&str>) -> PathBuf {
    let d = dir(test);
    if let Some(g) = geojson {
        fs::write(d.join("zones.geojson"), g).unwrap();
    }
    let path = d.join("hunt.toml");
    fs::write(&path, toml).unwrap();
    path
}

fn load(test: &str, toml: &str, geojson: Option<&str>) -> Hunt {
    let path = write(test, toml, geojson);
    Hunt::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads a hunt that must fail and returns its message, checked to be one line.
fn error(test: &str, toml: &str, geojson: Option<&str>) -> (PathBuf, String) {
    let path = write(test, toml, geojson);
    let message = match Hunt::load(&path) {
        Ok(_) => panic!("{test}: loaded"),
        Err(e) => e.to_string(),
    };
    assert!(!message.contains('\n'), "not one line: {message}");
    (path, message)
}

/// Asserts the TOML file's error is exactly `<hunt.toml>: <expected>`.
fn toml_error(test: &str, toml: &str, expected: &str) {
    let (path, message) = error(test, toml, None);
    assert_eq!(message, format!("{}: {expected}", path.display()));
}

/// Asserts the GeoJSON file's error is exactly `<zones.geojson>: <expected>`.
fn geojson_error(test: &str, toml: &str, geojson: &str, expected: &str) {
    let (path, message) = error(test, toml, Some(geojson));
    let gpath = path.parent().unwrap().join("zones.geojson");
    assert_eq!(message, format!("{}: {expected}", gpath.display()));
}

const ZONE: &str = r#"
[[zones]]
id = "fountain"
circle = { lat = 48.853, lon = 2.3499, radius_m = 40.0 }
"#;

const REWARD: &str = r#"
[[rewards]]
id = "golden-key"
zone = "fountain"
"#;

/// A hunt naming zones.geojson, with one inline zone.
const WITH_GEOJSON: &str = r#"
zones_geojson = "zones.geojson"
[[zones]]
id = "fountain"
circle = { lat = 48.853, lon = 2.3499, radius_m = 40.0 }
"#;

/// A FeatureCollection of the given features.
fn fc(features: &[&str]) -> String {
    format!(
        r#"{{"type": "FeatureCollection", "features": [{}]}}"#,
        features.join(",")
    )
}

fn feature(properties: &str, geometry: &str) -> String {
    format!(r#"{{"type": "Feature", "properties": {properties}, "geometry": {geometry}}}"#)
}

const SQUARE: &str = r#"{"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.1, 48.0], [2.1, 48.1], [2.0, 48.1], [2.0, 48.0]]]}"#;
