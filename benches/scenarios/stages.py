#!/usr/bin/env python3
"""Where a backfill's CPU time goes, by stage, from `perf script` output.

Reads `perf script -F comm,sym` of a `perf record --call-graph dwarf` run on
standard input. Each sample is charged to the stage of the innermost frame
that names one (so malloc, memcpy and the like count for the stage that
called them); samples with no such frame are charged by their innermost
frame's library. Prints the stages and the top self-time symbols.

usage: perf script -F comm,sym | stages.py [TOP_N]
"""

import collections
import re
import sys

# (stage, pattern on a demangled symbol), innermost match wins.
STAGES = [
    ("read (line reader, file source)", r"huntflow::input::(reader|files)::"),
    ("decode + validate (model::event)", r"huntflow::model::event::|serde_json::"),
    ("admission (lateness, duplicate ids)", r"huntflow::input::admission::"),
    ("facts: zone lookup", r"huntflow::model::zones::|huntflow::model::hunt::.*zones_at|geo::|rstar::"),
    ("facts: per-player state", r"huntflow::dataflow::(facts|player_state|player_store)::"),
    ("eligibility (huntflow closures)", r"huntflow::dataflow::eligibility::"),
    ("occupancy (huntflow closures)", r"huntflow::dataflow::occupancy::"),
    ("sink: order, format, write", r"huntflow::output::"),
    ("differential (arrange, join, reduce, consolidate)", r"differential_dataflow::"),
    ("exchange (channels, serialization)", r"timely_communication::|timely::dataflow::channels::|bincode::"),
    ("timely (progress, scheduling, operators)", r"timely::|timely_"),
    ("other huntflow", r"huntflow::"),
]
COMPILED = [(name, re.compile(p)) for name, p in STAGES]


def samples(lines):
    """(comm, [frames innermost first]) per sample."""
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if comm is None and not line.startswith((" ", "\t")):
            comm = line.split()[0]
        else:
            frames.append(line.strip())
    if comm is not None:
        yield comm, frames


def symbol(frame):
    # "addr sym+off (dso)" -> sym, dso
    m = re.match(r"[0-9a-f]+ (.*?)(\+0x[0-9a-f]+)? \((.*)\)$", frame)
    return (m.group(1), m.group(3)) if m else (frame, "")


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    stages, leaves, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        total += 1
        threads[comm] += 1
        syms = [symbol(f) for f in frames]
        if syms:
            leaves[syms[0][0]] += 1
        for sym, _ in syms:
            stage = next((name for name, p in COMPILED if p.search(sym)), None)
            if stage:
                stages[stage] += 1
                break
        else:
            dso = syms[0][1].rsplit("/", 1)[-1] if syms else "?"
            stages[f"outside any stage ({dso})"] += 1
    print(f"{total} samples; by thread: " +
          ", ".join(f"{c} {n * 100 / total:.1f}%" for c, n in threads.most_common()))
    print("\nstage (innermost frame naming one)          share")
    for name, n in stages.most_common():
        print(f"  {name:<52} {n * 100 / total:5.1f}%")
    print(f"\ntop {top} symbols by self time")
    for sym, n in leaves.most_common(top):
        print(f"  {n * 100 / total:5.1f}%  {sym[:110]}")


if __name__ == "__main__":
    main()
