-- The presence part of huntflow's output (enter, exit, occupancy; docs/spec.md §5, §6)
-- from clean position events and circle zones, in DuckDB SQL. Placeholders in braces are
-- filled in by duckdb_presence.py.
SET threads = {threads};
SET preserve_insertion_order = false;

CREATE TEMP TABLE zones AS
SELECT * FROM read_csv('{zones}', header = true,
    columns = {{'zone': 'VARCHAR', 'priority': 'INTEGER', 'lat': 'DOUBLE', 'lon': 'DOUBLE',
                'radius_m': 'DOUBLE'}});

-- Grid cells of 0.01 degree each zone's box touches (the box widened, never narrowed).
CREATE TEMP TABLE zone_cells AS
WITH b AS (
    SELECT zone, lat, lon, degrees(radius_m / 6371008.8) * 1.01 + 1e-6 AS dlat,
           (degrees(radius_m / 6371008.8) * 1.01 + 1e-6) / cos(radians(abs(lat) + 1)) AS dlon
    FROM zones),
rows AS (
    SELECT zone, lon, dlon,
           unnest(range(CAST(floor((lat - dlat) * 100) AS BIGINT),
                        CAST(floor((lat + dlat) * 100) AS BIGINT) + 1)) AS ci
    FROM b)
SELECT zone, ci,
       unnest(range(CAST(floor((lon - dlon) * 100) AS BIGINT),
                    CAST(floor((lon + dlon) * 100) AS BIGINT) + 1)) AS cj
FROM rows;

-- The current position of a player from each ts on: the greatest id at equal ts, held
-- until the next ts or its expiry, whichever comes first.
CREATE TEMP TABLE spans AS
WITH pos AS (
    SELECT player, ts, lat, lon, ts + coalesce(ttl_ms, {position_ttl_ms}) AS expires
    FROM read_json('{events}', format = 'newline_delimited',
        columns = {{'id': 'VARCHAR', 'type': 'VARCHAR', 'player': 'VARCHAR', 'ts': 'BIGINT',
                    'ttl_ms': 'BIGINT', 'lat': 'DOUBLE', 'lon': 'DOUBLE'}})
    WHERE type = 'position'
    QUALIFY row_number() OVER (PARTITION BY player, ts ORDER BY id DESC) = 1)
SELECT player, ts AS from_t,
       least(expires, coalesce(lead(ts) OVER (PARTITION BY player ORDER BY ts), expires)) AS until_t,
       lat, lon,
       CAST(floor(lat * 100) AS BIGINT) AS ci, CAST(floor(lon * 100) AS BIGINT) AS cj
FROM pos;

-- Presence spans: the haversine test huntflow makes, operation for operation.
CREATE TEMP TABLE presence AS
WITH k AS (SELECT pi() / 180.0 AS rad, CAST('12742017.6' AS DOUBLE) AS diameter)
SELECT s.player, z.zone, s.from_t, s.until_t
FROM spans s
JOIN zone_cells c ON s.ci = c.ci AND s.cj = c.cj
JOIN zones z ON z.zone = c.zone, k
WHERE k.diameter * asin(sqrt(least(greatest(
        sin((s.lat * k.rad - z.lat * k.rad) / 2.0) * sin((s.lat * k.rad - z.lat * k.rad) / 2.0)
        + cos(z.lat * k.rad) * cos(s.lat * k.rad)
          * (sin((s.lon - z.lon) * k.rad / 2.0) * sin((s.lon - z.lon) * k.rad / 2.0)),
        0.0), 1.0))) <= z.radius_m;

-- Runs of adjacent spans in the same zone: an enter where a run starts, an exit where it ends.
CREATE TEMP TABLE changes AS
WITH marked AS (
    SELECT player, zone, from_t, until_t,
           lag(until_t) OVER w IS DISTINCT FROM from_t AS starts,
           lead(from_t) OVER w IS DISTINCT FROM until_t AS ends
    FROM presence
    WINDOW w AS (PARTITION BY player, zone ORDER BY from_t))
SELECT from_t AS time, 'enter' AS kind, player, zone FROM marked WHERE starts
UNION ALL
SELECT until_t, 'exit', player, zone FROM marked WHERE ends;

CREATE TEMP TABLE occupancy AS
WITH d AS (
    SELECT zone, time, sum(CASE kind WHEN 'enter' THEN 1 ELSE -1 END) AS delta
    FROM changes GROUP BY zone, time)
SELECT time, zone, delta,
       sum(delta) OVER (PARTITION BY zone ORDER BY time ROWS UNBOUNDED PRECEDING) AS count
FROM d;

COPY (
    SELECT time, kind, player, zone, CAST(NULL AS BIGINT) AS count FROM changes
    UNION ALL
    SELECT time, 'occupancy', NULL, zone, CAST(count AS BIGINT) FROM occupancy WHERE delta <> 0
) TO '{out}' (FORMAT parquet);
