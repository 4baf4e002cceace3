#!/usr/bin/env python3
"""Runs presence.sql in DuckDB.

usage: duckdb_presence.py EVENTS_GLOB ZONES_CSV POSITION_TTL_MS OUT_PARQUET THREADS
"""

import sys
from pathlib import Path

import duckdb


def main():
    events, zones, ttl, out, threads = sys.argv[1:6]
    sql = (Path(__file__).parent / "presence.sql").read_text().format(
        events=events, zones=zones, position_ttl_ms=int(ttl), out=out, threads=int(threads))
    con = duckdb.connect()
    con.execute(sql)


if __name__ == "__main__":
    main()
