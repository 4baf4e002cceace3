//! Load errors about items: duplicate ids, reward conditions, rings, coordinates, radii
//! and GeoJSON geometries and features.

use super::*;

// ---- duplicate ids ----

#[test]
fn duplicate_zone_in_toml() {
    toml_error(
        "duplicate_zone_in_toml",
        &format!("{ZONE}{ZONE}"),
        r#"zone "fountain": duplicate id (zones[0] and zones[1])"#,
    );
}

#[test]
fn duplicate_zone_across_toml_and_geojson() {
    let path = dir("duplicate_zone_across_toml_and_geojson").join("hunt.toml");
    geojson_error(
        "duplicate_zone_across_toml_and_geojson",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "fountain"}"#, SQUARE)]),
        &format!(
            r#"feature 0 ("fountain"): duplicate zone id, already defined by zones[0] in {}"#,
            path.display()
        ),
    );
}

#[test]
fn duplicate_zone_in_geojson() {
    let f = feature(r#"{"id": "lake"}"#, SQUARE);
    geojson_error(
        "duplicate_zone_in_geojson",
        WITH_GEOJSON,
        &fc(&[&f, &f]),
        r#"feature 1 ("lake"): duplicate zone id, already defined by feature 0"#,
    );
}

#[test]
fn duplicate_reward() {
    toml_error(
        "duplicate_reward",
        &format!("{ZONE}{REWARD}{REWARD}"),
        r#"reward "golden-key": duplicate id (rewards[0] and rewards[1])"#,
    );
}

// ---- rewards ----

#[test]
fn reward_unknown_zone() {
    toml_error(
        "reward_unknown_zone",
        &format!("{ZONE}\n[[rewards]]\nid = \"golden-key\"\nzone = \"fountian\"\n"),
        r#"reward "golden-key": unknown zone "fountian""#,
    );
}

#[test]
fn reward_without_condition() {
    let expected =
        r#"reward "r": sets no condition (needs at least one of zone, requires, sensor)"#;
    toml_error(
        "reward_without_condition",
        "[[rewards]]\nid = \"r\"\npriority = 3\nactive = { from = 0 }\n",
        expected,
    );
    toml_error(
        "reward_with_empty_requires",
        "[[rewards]]\nid = \"r\"\nrequires = []\n",
        expected,
    );
}

#[test]
fn sensor_min_above_max() {
    toml_error(
        "sensor_min_above_max",
        "[[rewards]]\nid = \"r\"\nsensor = { id = \"b\", min = -40.0, max = -70.0 }\n",
        r#"reward "r": sensor: min (-40) is greater than max (-70)"#,
    );
}

#[test]
fn window_from_not_below_until() {
    toml_error(
        "window_from_not_below_until",
        "[[rewards]]\nid = \"r\"\nrequires = [\"c\"]\nactive = { from = 5000, until = 5000 }\n",
        r#"reward "r": active: from (5000) must be less than until (5000)"#,
    );
}

#[test]
fn reward_without_id() {
    toml_error(
        "reward_without_id",
        &format!("{REWARD}\n[[rewards]]\nrequires = [\"c\"]\n{ZONE}"),
        "rewards[1]: missing id",
    );
}

#[test]
fn sensor_without_id() {
    toml_error(
        "sensor_without_id",
        "[[rewards]]\nid = \"r\"\nsensor = { min = 1.0 }\n",
        r#"reward "r": missing sensor.id"#,
    );
}

// ---- rings and coordinates ----

#[test]
fn ring_with_too_few_points() {
    toml_error(
        "ring_with_too_few_points",
        "[[zones]]\nid = \"z\"\npolygon = [[2.0, 48.0], [2.1, 48.0], [2.0, 48.0]]\n",
        r#"zone "z": polygon: ring has 2 distinct points, needs at least 3"#,
    );
    toml_error(
        "hole_with_too_few_points",
        "[[zones]]\nid = \"z\"\npolygon = [[2.0, 48.0], [2.1, 48.0], [2.0, 48.1]]\nholes = [[[2.01, 48.01]]]\n",
        r#"zone "z": holes[0]: ring has 1 distinct point, needs at least 3"#,
    );
    geojson_error(
        "geojson_ring_with_too_few_points",
        WITH_GEOJSON,
        &fc(&[&feature(
            r#"{"id": "lake"}"#,
            r#"{"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.1, 48.0], [2.0, 48.0], [2.1, 48.0]]]}"#,
        )]),
        r#"feature 0 ("lake"): geometry.coordinates[0]: ring has 2 distinct points, needs at least 3"#,
    );
}

#[test]
fn coordinates_out_of_range() {
    toml_error(
        "circle_lat_out_of_range",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 91.0, lon = 2.0, radius_m = 10.0 }\n",
        r#"zone "z": circle: coordinates (lon 2, lat 91) out of range (lon in [-180, 180], lat in [-90, 90])"#,
    );
    toml_error(
        "polygon_lon_out_of_range",
        "[[zones]]\nid = \"z\"\npolygon = [[2.0, 48.0], [181.0, 48.0], [2.0, 48.1]]\n",
        r#"zone "z": polygon[1]: coordinates (lon 181, lat 48) out of range (lon in [-180, 180], lat in [-90, 90])"#,
    );
    toml_error(
        "circle_not_finite",
        "[[zones]]\nid = \"z\"\ncircle = { lat = nan, lon = 2.0, radius_m = 10.0 }\n",
        r#"zone "z": circle.lat: must be a finite number, found NaN"#,
    );
    geojson_error(
        "geojson_out_of_range",
        WITH_GEOJSON,
        &fc(&[&feature(
            r#"{"id": "lake"}"#,
            r#"{"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.1, -95.0], [2.0, 48.1]]]}"#,
        )]),
        r#"feature 0 ("lake"): geometry.coordinates[0][1]: coordinates (lon 2.1, lat -95) out of range (lon in [-180, 180], lat in [-90, 90])"#,
    );
    geojson_error(
        "geojson_point_out_of_range",
        WITH_GEOJSON,
        &fc(&[&feature(
            r#"{"id": "well", "radius_m": 5}"#,
            r#"{"type": "Point", "coordinates": [-180.5, 0.0]}"#,
        )]),
        r#"feature 0 ("well"): geometry.coordinates: coordinates (lon -180.5, lat 0) out of range (lon in [-180, 180], lat in [-90, 90])"#,
    );
}

#[test]
fn polygon_point_not_a_pair() {
    toml_error(
        "polygon_point_not_a_pair",
        "[[zones]]\nid = \"z\"\npolygon = [[2.0, 48.0], [2.1], [2.0, 48.1]]\n",
        r#"zone "z": polygon[1]: expected a [lon, lat] pair of numbers"#,
    );
}

// ---- radius ----

#[test]
fn circle_radius_not_positive() {
    toml_error(
        "circle_radius_zero",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0, radius_m = 0.0 }\n",
        r#"zone "z": circle.radius_m: must be > 0, found 0"#,
    );
    toml_error(
        "circle_radius_missing",
        "[[zones]]\nid = \"z\"\ncircle = { lat = 48.0, lon = 2.0 }\n",
        r#"zone "z": missing circle.radius_m"#,
    );
}

#[test]
fn geojson_point_radius() {
    let point = r#"{"type": "Point", "coordinates": [2.0, 48.0]}"#;
    geojson_error(
        "geojson_point_radius_missing",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "well"}"#, point)]),
        r#"feature 0 ("well"): a Point zone needs properties.radius_m (a number > 0)"#,
    );
    geojson_error(
        "geojson_point_radius_negative",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "well", "radius_m": -3.5}"#, point)]),
        r#"feature 0 ("well"): properties.radius_m: must be > 0, found -3.5"#,
    );
    geojson_error(
        "geojson_point_radius_zero",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "well", "radius_m": 0}"#, point)]),
        r#"feature 0 ("well"): properties.radius_m: must be > 0, found 0"#,
    );
    geojson_error(
        "geojson_radius_on_polygon",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "lake", "radius_m": 10}"#, SQUARE)]),
        r#"feature 0 ("lake"): properties.radius_m is only allowed on a Point, not a Polygon"#,
    );
}

// ---- GeoJSON geometry and features ----

#[test]
fn geometry_type_not_supported() {
    let line = r#"{"type": "LineString", "coordinates": [[2.0, 48.0], [2.1, 48.1]]}"#;
    let f0 = feature(r#"{"id": "a"}"#, SQUARE);
    let f1 = feature(r#"{"id": "b"}"#, SQUARE);
    let f2 = feature(r#"{"id": "c"}"#, SQUARE);
    let lake = feature(r#"{"id": "lake"}"#, line);
    geojson_error(
        "geometry_type_not_supported",
        WITH_GEOJSON,
        &fc(&[&f0, &f1, &f2, &lake]),
        r#"feature 3 ("lake"): geometry type LineString is not supported (Polygon, MultiPolygon or Point)"#,
    );
}

#[test]
fn geometry_type_unknown_to_geojson() {
    geojson_error(
        "geometry_type_unknown_to_geojson",
        WITH_GEOJSON,
        &fc(&[&feature(
            r#"{"id": "pond"}"#,
            r#"{"type": "Circle", "coordinates": [2.0, 48.0]}"#,
        )]),
        r#"feature 0 ("pond"): geometry type Circle is not supported (Polygon, MultiPolygon or Point)"#,
    );
}

#[test]
fn feature_without_id_or_geometry() {
    geojson_error(
        "feature_without_id",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"name": "x"}"#, SQUARE)]),
        "feature 0: missing properties.id",
    );
    geojson_error(
        "feature_id_not_string",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": 7}"#, SQUARE)]),
        "feature 0: properties.id: expected a string, found number",
    );
    geojson_error(
        "feature_without_geometry",
        WITH_GEOJSON,
        &fc(&[&feature(r#"{"id": "lake"}"#, "null")]),
        r#"feature 0 ("lake"): has no geometry"#,
    );
}

#[test]
fn geojson_not_a_feature_collection() {
    geojson_error(
        "geojson_not_a_feature_collection",
        WITH_GEOJSON,
        &feature(r#"{"id": "lake"}"#, SQUARE),
        "expected a GeoJSON FeatureCollection",
    );
}
