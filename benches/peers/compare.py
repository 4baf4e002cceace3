#!/usr/bin/env python3
"""Checks that the peers' enter/exit/occupancy records are huntflow's.

usage: compare.py HUNTFLOW_JSONL [duckdb=PARQUET] [pathway=CSV] ...
Prints, for each peer, the records it has that huntflow has not and the other
way round (as multisets); exits 1 when any differ.
"""

import sys

import duckdb

KEY = "time, kind, coalesce(player, '') AS player, zone, coalesce(count, -1) AS count"


def main():
    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE huntflow AS SELECT {KEY} FROM read_json('{sys.argv[1]}',
            format = 'newline_delimited',
            columns = {{'time': 'BIGINT', 'kind': 'VARCHAR', 'player': 'VARCHAR',
                        'zone': 'VARCHAR', 'count': 'BIGINT'}})
        WHERE kind IN ('enter', 'exit', 'occupancy')""")
    (total,) = con.execute("SELECT count(*) FROM huntflow").fetchone()
    failed = False
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        if path.endswith(".parquet"):
            source = f"SELECT {KEY} FROM '{path}'"
        else:
            # Pathway's CSV: every update with its diff; the final rows are those whose
            # diffs add up to more than zero.
            source = f"""
                SELECT {KEY} FROM (
                    SELECT time, kind, nullif(player, '') AS player, zone,
                           nullif(count, -1) AS count, CAST(sum(diff) AS BIGINT) AS n
                    FROM read_csv('{path}', header = true, names = ['time', 'kind', 'player',
                        'zone', 'count', 'at', 'diff'],
                        types = {{'time': 'BIGINT', 'kind': 'VARCHAR', 'player': 'VARCHAR',
                                 'zone': 'VARCHAR', 'count': 'BIGINT', 'at': 'BIGINT',
                                 'diff': 'BIGINT'}})
                    GROUP BY ALL HAVING sum(diff) > 0), range(n)"""
        con.execute(f"CREATE TABLE peer AS {source}")
        (extra,) = con.execute(
            "SELECT count(*) FROM (FROM peer EXCEPT ALL FROM huntflow)").fetchone()
        (missing,) = con.execute(
            "SELECT count(*) FROM (FROM huntflow EXCEPT ALL FROM peer)").fetchone()
        verdict = "same" if extra == 0 and missing == 0 else "DIFFERENT"
        print(f"{name}: {verdict}: {total} presence records in huntflow's output; "
              f"{extra} only in {name}'s, {missing} only in huntflow's")
        if verdict != "same":
            failed = True
            print(con.execute(
                "(FROM peer EXCEPT ALL FROM huntflow) UNION ALL "
                "(SELECT NULL, '-- only in huntflow', NULL, NULL, NULL) UNION ALL "
                "(FROM huntflow EXCEPT ALL FROM peer) LIMIT 12").fetchall())
        con.execute("DROP TABLE peer")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
