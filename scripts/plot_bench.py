#!/usr/bin/env python3
"""Draws docs/bench.png from target/bench-results.jsonl (written by
`cargo bench --bench backfill` and `--bench cost`): throughput and peak RSS
per scenario and worker count, the latest result of each. Needs matplotlib."""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = Path(__file__).resolve().parent.parent
results = root / "target" / "bench-results.jsonl"
latest = {}
baseline = {}
for line in results.read_text().splitlines():
    r = json.loads(line)
    if r.get("bench") == "backfill":
        latest[(r["scenario"], r["workers"])] = r
    elif r.get("bench") == "cost" and r.get("program") == "baseline":
        baseline[r["scenario"]] = r
if not latest:
    sys.exit("no backfill results in " + str(results))

scenarios = []
for scenario, _ in latest:
    if scenario not in scenarios:
        scenarios.append(scenario)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
width = 0.38
for i, workers in enumerate([1, 2]):
    xs, eps, rss = [], [], []
    for j, s in enumerate(scenarios):
        r = latest.get((s, workers))
        if r:
            xs.append(j + (i - 0.5) * width)
            eps.append(r["events_per_s"] / 1e3)
            rss.append(r["peak_rss_bytes"] / 2**20)
    ax1.bar(xs, eps, width, label=f"-w {workers}")
    ax2.bar(xs, rss, width, label=f"-w {workers}")
for j, s in enumerate(scenarios):
    b = baseline.get(s)
    if b:
        ax1.hlines(b["events_per_s"] / 1e3, j - 0.45, j + 0.45, colors="k", linestyles="dashed",
                   label="COST baseline" if j == 0 else None)
for ax, title, unit in [(ax1, "Backfill throughput", "thousand events/s"),
                        (ax2, "Peak RSS", "MiB (log)")]:
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios, rotation=15)
    ax.set_title(title)
    ax.set_ylabel(unit)
    ax.legend()
ax2.set_yscale("log")
fig.suptitle("huntflow backfill, 2 vCPU (cargo bench --bench backfill / cost)")
fig.tight_layout()
out = root / "docs" / "bench.png"
fig.savefig(out, dpi=90)
print("wrote", out)
