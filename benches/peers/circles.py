#!/usr/bin/env python3
"""Rewrites a generated hunt with every zone as a circle.

`huntflow generate` draws circles, polygons and multipolygons; the peers'
comparison case wants circles only. Each zone keeps its id and priority and
becomes the circle around the mean of its (first) outer ring's vertices,
with the mean haversine distance to them as radius; a circle stays as it is.
With RADIUS_SCALE, every radius is multiplied by it: the generator sizes
zones by the box, so that at 1,000 zones a point lies in about 11 of them;
0.3 brings that to about one, as in a city. Writes DST/hunt.toml (settings,
inline circle zones, the same rewards) and DST/zones.csv (zone, priority,
lat, lon, radius_m) for the peers' programs.

usage: circles.py SRC_HUNT_DIR DST_DIR [RADIUS_SCALE]
"""

import csv
import json
import math
import sys
import tomllib
from pathlib import Path

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(
        math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def circle_of_ring(ring):
    """(lat, lon, radius_m) of a [lon, lat] ring (closed or not)."""
    if ring[0] == ring[-1]:
        ring = ring[:-1]
    lon = sum(p[0] for p in ring) / len(ring)
    lat = sum(p[1] for p in ring) / len(ring)
    radius = sum(haversine_m(lat, lon, p[1], p[0]) for p in ring) / len(ring)
    return round(lat, 7), round(lon, 7), round(radius, 1)


def zones(src):
    hunt = tomllib.loads((src / "hunt.toml").read_text())
    for z in hunt.get("zones", []):
        if "circle" in z:
            c = z["circle"]
            yield z["id"], z.get("priority", 0), c["lat"], c["lon"], c["radius_m"]
        else:
            yield (z["id"], z.get("priority", 0), *circle_of_ring(z["polygon"]))
    if "zones_geojson" in hunt:
        features = json.loads((src / hunt["zones_geojson"]).read_text())["features"]
        for f in features:
            p, g = f["properties"], f["geometry"]
            prio = p.get("priority") or 0
            if g["type"] == "Point":
                lon, lat = g["coordinates"][:2]
                yield p["id"], prio, lat, lon, p["radius_m"]
            elif g["type"] == "Polygon":
                yield (p["id"], prio, *circle_of_ring(g["coordinates"][0]))
            else:
                yield (p["id"], prio, *circle_of_ring(g["coordinates"][0][0]))


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def main():
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    dst.mkdir(parents=True, exist_ok=True)
    hunt = tomllib.loads((src / "hunt.toml").read_text())
    found = sorted((z, p, lat, lon, round(r * scale, 1)) for z, p, lat, lon, r in zones(src))
    lines = ["# Every zone of the generated hunt as a circle (benches/peers/circles.py)."]
    for k, v in hunt.items():
        if k not in ("zones", "rewards", "zones_geojson"):
            lines.append(f"{k} = {toml_value(v)}")
    for zid, prio, lat, lon, radius in found:
        lines += ["", "[[zones]]", f"id = {json.dumps(zid)}", f"priority = {prio}",
                  f"circle = {{ lat = {lat!r}, lon = {lon!r}, radius_m = {radius!r} }}"]
    for r in hunt.get("rewards", []):
        lines += ["", "[[rewards]]"] + [f"{k} = {toml_value(v)}" for k, v in r.items()]
    (dst / "hunt.toml").write_text("\n".join(lines) + "\n")
    with open(dst / "zones.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["zone", "priority", "lat", "lon", "radius_m"])
        w.writerows(found)
    print(f"{len(found)} circle zones", file=sys.stderr)


if __name__ == "__main__":
    main()
