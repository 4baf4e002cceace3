#!/usr/bin/env python3
"""Where a backfill's CPU time goes, by stage, from `perf script` output.

Reads `perf script -F comm,ip,sym,dso` of a `perf record --call-graph dwarf`
run on standard input. Each sample is charged to the stage of the innermost frame
that names one (so malloc, memcpy and the like count for the stage that
called them): a function's path, or for an inlined frame its bare name when
only one stage's source files define it; samples with no such frame are
charged by their innermost frame's library. Prints the stages and the top self-time symbols.

usage: perf script -F comm,ip,sym,dso | stages.py [TOP_N]
"""

import collections
import re
import sys
from pathlib import Path

# (stage, pattern on a demangled symbol), innermost match wins.
STAGES = [
    ("read (line reader, file source)", r"huntflow::input::(reader|files)::"),
    ("decode + validate (model::event)", r"huntflow::model::event::|serde_json::"),
    ("admission (lateness, duplicate ids)", r"huntflow::input::admission::"),
    ("facts: zone lookup", r"huntflow::model::(zones|zone_test)::|huntflow::model::hunt::Hunt::zones_at|geo::|geo_types::|rstar::"),
    ("facts: per-player state", r"huntflow::dataflow::(facts|player_state|player_store)::"),
    ("eligibility (huntflow closures)", r"huntflow::dataflow::eligibility::"),
    ("occupancy (huntflow closures)", r"huntflow::dataflow::occupancy::"),
    ("sink: order, format, write", r"huntflow::output::"),
    ("differential (arrange, join, reduce, consolidate)", r"differential_dataflow::"),
    ("exchange (channels, serialization)", r"timely_communication::|timely::dataflow::channels::|bincode::"),
    ("timely (progress, scheduling, operators)", r"timely::|timely_"),
    ("job (worker loop, assembly)", r"huntflow::job::"),
    ("other huntflow", r"huntflow::"),
]
# Inlined frames carry a bare function name (`process_until`, no path): such a frame
# counts for a stage when its name is that of a function defined in the stage's source
# files only (names defined in several places, or too common, are left out).
SOURCES = [
    ("read (line reader, file source)", ["src/input/reader.rs", "src/input/files.rs"]),
    ("decode + validate (model::event)", ["src/model/event.rs"]),
    ("admission (lateness, duplicate ids)", ["src/input/admission.rs"]),
    ("facts: zone lookup", ["src/model/zones.rs", "src/model/zone_test.rs"]),
    ("facts: per-player state", ["src/dataflow/facts.rs", "src/dataflow/player_state.rs",
                                 "src/dataflow/player_store.rs"]),
    ("eligibility (huntflow closures)", ["src/dataflow/eligibility.rs"]),
    ("occupancy (huntflow closures)", ["src/dataflow/occupancy.rs"]),
    ("sink: order, format, write", ["src/output/sink.rs", "src/output/order.rs",
                                    "src/output/format.rs", "src/output/chain.rs",
                                    "src/output/line.rs", "src/output/file.rs",
                                    "src/output/runs.rs"]),
]
COMMON = {"new", "build", "from", "default", "fmt", "clone", "next", "push", "get", "len",
          "drop", "write", "flush", "run", "apply", "insert", "remove", "is_empty", "contains",
          "eq", "cmp", "partial_cmp", "hash", "deserialize", "serialize", "index", "finish",
          "take", "extend", "iter", "open", "read", "parse", "into_iter", "as_str", "query"}


def inlined_names(root):
    """Bare function name -> stage, for names defined in one stage's files only."""
    seen = collections.defaultdict(set)
    for stage, files in SOURCES:
        for f in files:
            path = root / f
            if path.exists():
                for name in re.findall(r"\bfn\s+([a-z_][a-z0-9_]*)", path.read_text()):
                    seen[name].add(stage)
    return {n: next(iter(st)) for n, st in seen.items() if len(st) == 1 and n not in COMMON}


# Anchored at the start of the symbol (after the `<` of a trait impl), so that a type
# among the generic arguments (`Vec<huntflow::model::event::Event>`) does not count.
COMPILED = [(name, re.compile(rf"^<?(?:{p})")) for name, p in STAGES]


def samples(lines):
    """(comm, [frames innermost first]) per sample."""
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
            continue
        if line.startswith("\t"):
            frames.append(line.strip())
        else:
            comm = line.split()[0]
    if comm is not None:
        yield comm, frames


def symbol(frame):
    """(symbol, dso) of "addr symbol (dso)"; inlined frames have "(inlined)"."""
    m = re.match(r"[0-9a-f]+ (.*) \((.*)\)$", frame)
    return (m.group(1), m.group(2)) if m else (frame, "")


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    stages, leaves, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    by_name = inlined_names(Path(__file__).resolve().parents[2])
    for comm, frames in samples(sys.stdin):
        total += 1
        threads[comm] += 1
        syms = [symbol(f) for f in frames]
        # The innermost frame that is a function of its own (not inlined).
        leaf = next((s for s, dso in syms if dso != "inlined"), "?")
        leaves[leaf] += 1
        for sym, dso in syms:
            if dso == "inlined":
                stage = by_name.get(re.split(r"[<{ ]", sym, maxsplit=1)[0])
            else:
                stage = next((name for name, p in COMPILED if p.search(sym)), None)
            if stage:
                stages[stage] += 1
                break
        else:
            dso = next((d for _, d in syms if d != "inlined"), "?").rsplit("/", 1)[-1]
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
