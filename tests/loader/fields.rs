//! Load errors about fields: priorities, unknown keys, unreadable or unparsable files,
//! wrong value types, zone shapes and ids, and top-level settings.

use super::*;

// ---- priorities ----

#[test]
fn priority_out_of_range() {
    toml_error(
        "zone_priority_10",
        &ZONE.replace("id = \"fountain\"", "id = \"fountain\"\npriority = 10"),
        r#"zone "fountain": priority 10 is outside 0..=9"#,
    );
    toml_error(
        "reward_priority_negative",
        &format!(
            "{ZONE}{}",
            REWARD.replace("zone =", "priority = -1\nzone =")
        ),
        r#"reward "golden-key": priority -1 is outside 0..=9"#,
    );
    geojson_error(
        "geojson_priority_12",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "lake", "priority": 12}"#, SQUARE)]),
        r#"feature 0 ("lake"): priority 12 is outside 0..=9"#,
    );
}

#[test]
fn priority_not_an_integer() {
    toml_error(
        "zone_priority_float",
        &ZONE.replace("id = \"fountain\"", "id = \"fountain\"\npriority = 3.5"),
        r#"zone "fountain": priority: expected an integer 0..=9, found float"#,
    );
    geojson_error(
        "geojson_priority_float",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "lake", "priority": 2.5}"#, SQUARE)]),
        r#"feature 0 ("lake"): properties.priority: expected an integer 0..=9, found 2.5"#,
    );
}

// ---- unknown keys ----

#[test]
fn unknown_keys() {
    toml_error(
        "unknown_top_key",
        "name = \"x\"\nmax_lateness = 5000\n",
        r#"unknown key "max_lateness" (expected one of: name, max_lateness_ms, position_ttl_ms, sensor_ttl_ms, max_accuracy_m, zones_geojson, zones, rewards)"#,
    );
    toml_error(
        "unknown_zone_key",
        &ZONE.replace("id = \"fountain\"", "id = \"fountain\"\nradius = 3"),
        r#"zone "fountain": unknown key "radius" (expected one of: id, priority, circle, polygon, holes)"#,
    );
    toml_error(
        "unknown_circle_key",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0, radius = 10.0 }\n",
        r#"zone "z": unknown key "radius" in circle (expected one of: lat, lon, radius_m)"#,
    );
    toml_error(
        "unknown_reward_key",
        &format!("{ZONE}{REWARD}points = 5\n"),
        r#"reward "golden-key": unknown key "points" (expected one of: id, priority, zone, requires, sensor, active)"#,
    );
    toml_error(
        "unknown_sensor_key",
        "[[rewards]]\nid = \"r\"\nsensor = { id = \"b\", minimum = 1.0 }\n",
        r#"reward "r": unknown key "minimum" in sensor (expected one of: id, min, max)"#,
    );
    toml_error(
        "unknown_active_key",
        "[[rewards]]\nid = \"r\"\nrequires = [\"c\"]\nactive = { from = 1, to = 5 }\n",
        r#"reward "r": unknown key "to" in active (expected one of: from, until)"#,
    );
}

// ---- files ----

#[test]
fn unreadable_files() {
    let d = dir("unreadable_toml");
    let missing = d.join("nope.toml");
    let message = Hunt::load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}: cannot read file: ", missing.display())),
        "{message}"
    );

    let (path, message) = error("unreadable_geojson", WITH_GEOJSON, None);
    let gpath = path.parent().unwrap().join("zones.geojson");
    assert!(
        message.starts_with(&format!("{}: cannot read file: ", gpath.display())),
        "{message}"
    );
}

#[test]
fn syntax_errors() {
    let (path, message) = error("toml_syntax", "name = \"x\"\nzones = [\n", None);
    assert!(
        message.starts_with(&format!("{}: line 2, column ", path.display())),
        "{message}"
    );
    let (path, message) = error("geojson_syntax", WITH_GEOJSON, Some("{\"type\": "));
    let gpath = path.parent().unwrap().join("zones.geojson");
    assert!(
        message.starts_with(&format!("{}: ", gpath.display())) && message.contains("line 1"),
        "{message}"
    );
}

// ---- value types ----

#[test]
fn wrong_value_types() {
    toml_error(
        "lateness_string",
        "max_lateness_ms = \"5000\"\n",
        "max_lateness_ms: expected a non-negative integer, found string",
    );
    toml_error(
        "zones_not_tables",
        "zones = 5\n",
        "zones: expected an array, found integer",
    );
    toml_error(
        "zones_array_of_strings",
        "zones = [\"fountain\"]\n",
        "zones[0]: expected a table, found string",
    );
    toml_error(
        "requires_string",
        "[[rewards]]\nid = \"r\"\nrequires = \"clue-1\"\n",
        r#"reward "r": requires: expected an array, found string"#,
    );
    toml_error(
        "requires_integer_item",
        "[[rewards]]\nid = \"r\"\nrequires = [\"c\", 2]\n",
        r#"reward "r": requires[1]: expected a string, found integer"#,
    );
    toml_error(
        "sensor_string",
        "[[rewards]]\nid = \"r\"\nsensor = \"beacon-1\"\n",
        r#"reward "r": sensor: expected a table, found string"#,
    );
    toml_error(
        "zone_id_integer",
        "[[zones]]\nid = 3\ncircle = { lat = 48.0, lon = 2.0, radius_m = 10.0 }\n",
        "zones[0]: id: expected a string, found integer",
    );
    toml_error(
        "window_float",
        "[[rewards]]\nid = \"r\"\nrequires = [\"c\"]\nactive = { from = 1.5 }\n",
        r#"reward "r": active.from: expected a non-negative integer, found float"#,
    );
    toml_error(
        "radius_string",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0, radius_m = \"10\" }\n",
        r#"zone "z": circle.radius_m: expected a number, found string"#,
    );
}

// ---- zones ----

#[test]
fn zone_shape_neither_or_both() {
    toml_error(
        "zone_without_shape",
        "[[zones]]\nid = \"z\"\npriority = 1\n",
        r#"zone "z": needs a circle or a polygon"#,
    );
    toml_error(
        "zone_with_both_shapes",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0, radius_m = 10.0 }\npolygon = [[2.0, 48.0], [2.1, 48.0], [2.0, 48.1]]\n",
        r#"zone "z": has both circle and polygon (give exactly one)"#,
    );
    toml_error(
        "circle_with_holes",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0, radius_m = 10.0 }\nholes = []\n",
        r#"zone "z": holes is only allowed with a polygon"#,
    );
}

#[test]
fn zone_without_id() {
    toml_error(
        "zone_without_id",
        &format!(
            "{ZONE}{ZONE}\n[[zones]]\ncircle = {{ lat = 48.0, lon = 2.0, radius_m = 10.0 }}\n"
        )
        .replacen("\"fountain\"", "\"a\"", 1),
        "zones[2]: missing id",
    );
    toml_error(
        "zone_empty_id",
        "[[zones]]\nid = \"\"\ncircle = { lat = 48.0, lon = 2.0, radius_m = 10.0 }\n",
        "zones[0]: id must not be empty",
    );
}

// ---- top-level settings ----

#[test]
fn ttl_below_one() {
    toml_error(
        "position_ttl_zero",
        "position_ttl_ms = 0\n",
        "position_ttl_ms: must be >= 1, found 0",
    );
    toml_error(
        "sensor_ttl_zero",
        "sensor_ttl_ms = 0\n",
        "sensor_ttl_ms: must be >= 1, found 0",
    );
    toml_error(
        "sensor_ttl_negative",
        "sensor_ttl_ms = -5\n",
        "sensor_ttl_ms: must be >= 0, found -5",
    );
}

#[test]
fn negative_max_lateness() {
    toml_error(
        "negative_max_lateness",
        "max_lateness_ms = -1\n",
        "max_lateness_ms: must be >= 0, found -1",
    );
}

#[test]
fn negative_max_accuracy() {
    toml_error(
        "negative_max_accuracy",
        "max_accuracy_m = -0.5\n",
        "max_accuracy_m: must be >= 0, found -0.5",
    );
}
