#!/usr/bin/env python3
"""The presence part of huntflow's output (enter, exit, occupancy; docs/spec.md §5, §6)
from clean position events and circle zones, as a Pathway program in static mode.

usage: pathway_presence.py EVENTS_DIR ZONES_CSV POSITION_TTL_MS OUT_CSV
(threads: PATHWAY_THREADS)
"""

import csv
import math
import sys

import pathway as pw

RAD = math.pi / 180.0
DIAMETER = 2.0 * 6_371_008.8
CELL = 100  # grid cells of 0.01 degree


class Event(pw.Schema):
    # Read as `id`, renamed at once: `pw.this["id"]` would be Pathway's own row id.
    event_id: str = pw.column_definition(name="id")
    type: str
    player: str
    ts: int
    ttl_ms: int | None = pw.column_definition(default_value=None)
    lat: float | None = pw.column_definition(default_value=None)
    lon: float | None = pw.column_definition(default_value=None)


def load_zones(path):
    """Zones and a grid from cell to the zones whose (widened) box touches it."""
    zones, grid = [], {}
    with open(path) as f:
        for row in csv.DictReader(f):
            lat, lon, r = float(row["lat"]), float(row["lon"]), float(row["radius_m"])
            zones.append((row["zone"], lat, lon, r))
            dlat = math.degrees(r / 6_371_008.8) * 1.01 + 1e-6
            dlon = dlat / math.cos(math.radians(abs(lat) + 1))
            for ci in range(math.floor((lat - dlat) * CELL), math.floor((lat + dlat) * CELL) + 1):
                for cj in range(math.floor((lon - dlon) * CELL),
                                math.floor((lon + dlon) * CELL) + 1):
                    grid.setdefault((ci, cj), []).append(len(zones) - 1)
    return zones, grid


def main():
    events_dir, zones_csv, ttl, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    zones, grid = load_zones(zones_csv)

    def zones_at(lat: float, lon: float) -> list[str]:
        # The haversine test huntflow makes, operation for operation.
        found = []
        for i in grid.get((math.floor(lat * CELL), math.floor(lon * CELL)), ()):
            zid, zlat, zlon, r = zones[i]
            h1 = math.sin((lat * RAD - zlat * RAD) / 2.0)
            h2 = math.sin((lon - zlon) * RAD / 2.0)
            a = h1 * h1 + math.cos(zlat * RAD) * math.cos(lat * RAD) * (h2 * h2)
            if DIAMETER * math.asin(math.sqrt(min(max(a, 0.0), 1.0))) <= r:
                found.append(zid)
        return found

    events = pw.io.jsonlines.read(events_dir, schema=Event, mode="static")
    events = events.rename_columns(event_id="id")
    pos = events.filter(pw.this.type == "position").select(
        pw.this.player, pw.this.ts, pw.this.event_id,
        lat=pw.unwrap(pw.this.lat), lon=pw.unwrap(pw.this.lon),
        expires=pw.this.ts + pw.coalesce(pw.this.ttl_ms, ttl))
    # The greatest id at equal ts.
    best = pos.groupby(pw.this.player, pw.this.ts).reduce(
        pw.this.player, pw.this.ts, event_id=pw.reducers.max(pw.this.event_id))
    cur = best.join(pos, best.player == pos.player, best.ts == pos.ts,
                    best.event_id == pos.event_id).select(
        pos.player, pos.ts, pos.lat, pos.lon, pos.expires)
    # Held until the next ts or its expiry, whichever comes first.
    order = cur.sort(key=pw.this.ts, instance=pw.this.player)
    cur = cur.with_columns(next_ts=cur.ix(order.next, optional=True).ts)
    spans = cur.select(
        pw.this.player, from_t=pw.this.ts,
        until_t=pw.if_else(pw.coalesce(pw.this.next_ts, pw.this.expires) < pw.this.expires,
                           pw.coalesce(pw.this.next_ts, pw.this.expires), pw.this.expires),
        zone=pw.apply(zones_at, pw.this.lat, pw.this.lon))
    presence = spans.flatten(pw.this.zone)
    presence = presence.with_columns(run=pw.this.player + "\x00" + pw.this.zone)
    # Runs of adjacent spans in the same zone.
    runs = presence.sort(key=pw.this.from_t, instance=pw.this.run)
    presence = presence.with_columns(
        prev_until=presence.ix(runs.prev, optional=True).until_t,
        next_from=presence.ix(runs.next, optional=True).from_t)
    enters = presence.filter(pw.coalesce(pw.this.prev_until, -1) != pw.this.from_t).select(
        time=pw.this.from_t, kind="enter", player=pw.this.player, zone=pw.this.zone, delta=1)
    exits = presence.filter(pw.coalesce(pw.this.next_from, -1) != pw.this.until_t).select(
        time=pw.this.until_t, kind="exit", player=pw.this.player, zone=pw.this.zone, delta=-1)
    changes = enters.concat_reindex(exits)
    deltas = changes.groupby(pw.this.zone, pw.this.time).reduce(
        pw.this.zone, pw.this.time, delta=pw.reducers.sum(pw.this.delta))

    def counts(items: tuple) -> list[tuple]:
        # Running count of a zone over its times; a record where it changed.
        out, count = [], 0
        for time, delta in items:
            count += delta
            if delta != 0:
                out.append((time, count))
        return out

    per_zone = deltas.groupby(pw.this.zone).reduce(
        pw.this.zone, items=pw.reducers.sorted_tuple(pw.make_tuple(pw.this.time, pw.this.delta)))
    occ = per_zone.select(pw.this.zone, item=pw.apply(counts, pw.this.items)).flatten(pw.this.item)
    occ = occ.select(time=pw.this.item[0], kind="occupancy", player="", zone=pw.this.zone,
                     count=pw.this.item[1])
    result = changes.select(pw.this.time, pw.this.kind, pw.this.player, pw.this.zone,
                            count=-1).concat_reindex(occ)
    pw.io.csv.write(result, out)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    main()
