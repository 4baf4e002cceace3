#!/usr/bin/env python3
"""Times `huntflow backfill` on the two scale scenarios (see benches/README.md).

Generates each dataset once into the cache directory, then runs the backfill
at each worker count and output place RUNS times, and prints (and appends to a
JSON Lines file) the median wall time, events/s, peak RSS, cores busy (user +
system CPU time over wall time) and events per CPU-second of each, with the
load average before the runs (the machine may be shared). Standard library
only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name -> (description, `huntflow generate` arguments besides the directories)
SCENARIOS = {
    "realistic": (
        "4M events, 100k players, 1,000 mixed zones, default disorder and bad records",
        ["--events", "4000000", "--players", "100000", "--zones", "1000",
         "--partitions", "2", "--rate", "50000", "--extent-m", "9500", "--seed", "7"],
    ),
    "million": (
        "6M events, 1M players each moving every 5 s for 30 s, 1,000 zones, clean",
        ["--events", "6000000", "--players", "1000000", "--zones", "1000",
         "--partitions", "2", "--rate", "200000", "--extent-m", "10000", "--clean",
         "--seed", "3"],
    ),
}


def generate(binary, cache, name):
    """The scenario's hunt and partition files, generated on first use."""
    _, args = SCENARIOS[name]
    root = cache / name
    done = root / "generated.json"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        print(f"generating {name} into {root} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        subprocess.run(
            [binary, "generate", "--hunt-dir", str(root / "hunt"),
             "--events-dir", str(root / "events"), *args],
            check=True, stdout=subprocess.DEVNULL)
        done.write_text(json.dumps({"args": args, "seconds": time.monotonic() - started}))
    parts = sorted((root / "events").glob("part-*.jsonl"))
    return root / "hunt" / "hunt.toml", parts


def run_once(binary, hunt, parts, workers, out_dir):
    """One backfill: wall seconds, CPU seconds, peak RSS bytes, its summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / "notifications.jsonl"
    summary = out_dir / "summary.json"
    cmd = [binary, "backfill", "--hunt", str(hunt), "-w", str(workers),
           "--output", str(output), "--summary", str(summary), *map(str, parts)]
    started = time.monotonic()
    child = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        sys.exit(f"backfill failed ({status}): {' '.join(cmd)}")
    result = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "summary": json.loads(summary.read_text()),
        "output_bytes": output.stat().st_size,
    }
    shutil.rmtree(out_dir)
    return result


def main():
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--binary", default=str(target / "release" / "huntflow"))
    p.add_argument("--cache", default=os.environ.get(
        "HUNTFLOW_SCENARIO_DATA", str(target / "bench-data" / "scenarios")))
    p.add_argument("--runs", type=int, default=int(os.environ.get("HUNTFLOW_SCENARIO_RUNS", "3")))
    p.add_argument("--workers", default=os.environ.get("HUNTFLOW_SCENARIO_WORKERS", "1,2"))
    p.add_argument("--outputs", default=os.environ.get("HUNTFLOW_SCENARIO_OUTPUTS", "file,tmpfs"),
                   help="file (under the target directory) and/or tmpfs (/dev/shm)")
    p.add_argument("--results", default=str(target / "scenario-results.jsonl"))
    p.add_argument("--generate-only", action="store_true", help="generate the datasets, run nothing")
    args = p.parse_args()
    for name in args.scenarios:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}: {', '.join(SCENARIOS)}")

    places = {"file": target / "scenario-out", "tmpfs": Path("/dev/shm/huntflow-scenario-out")}
    rows = []
    for name in args.scenarios or list(SCENARIOS):
        hunt, parts = generate(args.binary, Path(args.cache), name)
        if args.generate_only:
            continue
        for place in args.outputs.split(","):
            for workers in map(int, args.workers.split(",")):
                load = os.getloadavg()[0]
                runs = [run_once(args.binary, hunt, parts, workers, places[place])
                        for _ in range(args.runs)]
                read = runs[0]["summary"]["read"]
                walls = sorted(r["wall_s"] for r in runs)
                wall = statistics.median(walls)
                row = {
                    "scenario": name,
                    "output": place,
                    "workers": workers,
                    "runs": len(runs),
                    "events": read,
                    "wall_s": round(wall, 3),
                    "wall_range_s": [round(walls[0], 3), round(walls[-1], 3)],
                    "events_per_s": round(read / wall),
                    "peak_rss_mib": round(statistics.median(
                        r["peak_rss_bytes"] for r in runs) / 2**20, 1),
                    "cores_busy": round(statistics.median(
                        r["cpu_s"] / r["wall_s"] for r in runs), 2),
                    "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
                    "events_per_cpu_s": round(read / statistics.median(
                        r["cpu_s"] for r in runs)),
                    "load_before": load,
                    "output_mib": round(runs[0]["output_bytes"] / 2**20, 1),
                    "accepted": runs[0]["summary"]["accepted"],
                    "unix_time": int(time.time()),
                }
                rows.append(row)
                with open(args.results, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)

    print("| scenario | output | workers | wall, median (range) | events/s | peak RSS "
          "| cores busy | events per CPU-second | load before |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["wall_range_s"]
        print(f"| {r['scenario']} | {r['output']} | {r['workers']} | {r['wall_s']:.2f} s "
              f"({lo:.2f}–{hi:.2f}) | {r['events_per_s']:,} | {r['peak_rss_mib']:,} MiB "
              f"| {r['cores_busy']} | {r['events_per_cpu_s']:,} | {r['load_before']:.1f} |")


if __name__ == "__main__":
    main()
