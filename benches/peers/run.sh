#!/usr/bin/env bash
# huntflow beside DuckDB and Pathway on the clean comparison case: 2M events from
# 100k players over 1,000 circle zones (see benches/README.md, "peers").
#
# Installs DuckDB and Pathway from PyPI into a venv in the tool cache
# (${HUNTFLOW_TOOLS:-~/.cache/huntflow/tools}/peers-venv), builds huntflow, generates
# the case once (under target/bench-data/peers/), runs huntflow backfill at -w 2 and
# -w 1 and the peers' presence programs (enter, exit, occupancy only: less work than
# huntflow's) on the same files, checks that the peers' records are huntflow's, and
# prints wall time, peak RSS and the ratio to huntflow -w 2 for each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
tools="${HUNTFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/huntflow/tools}"
venv="$tools/peers-venv"
target="${CARGO_TARGET_DIR:-$root/target}"
data="$target/bench-data/peers"
out="$target/peers-out"
threads="${HUNTFLOW_PEERS_THREADS:-2}"
limit="${HUNTFLOW_PEERS_TIMEOUT:-900}"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb, pathway' 2>/dev/null; then
    echo "installing DuckDB and Pathway into $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q duckdb==2.0.0 pathway==0.33.0
fi
py="$venv/bin/python"

cargo build --release --locked -q
bin="$target/release/huntflow"

if [ ! -f "$data/done" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    # The generator draws circles, polygons and multipolygons: take its hunt of 1,000
    # zones in a 9.5 km box, make every zone a circle with 0.3 of its size (a point then
    # lies in about one zone, as in a city), and generate events for that hunt.
    "$bin" generate --hunt-dir "$data/mixed" --events-dir "$data/unused" --events 1000 \
        --players 100 --zones 1000 --extent-m 9500 --clean --seed 7 >/dev/null
    "$py" "$here/circles.py" "$data/mixed" "$data/hunt" 0.3
    "$bin" generate --for-hunt "$data/hunt/hunt.toml" --events-dir "$data/events" \
        --events 2000000 --players 100000 --partitions 2 --rate 50000 --clean --seed 7 >/dev/null
    rm -rf "$data/unused"
    touch "$data/done"
fi
hunt="$data/hunt/hunt.toml"
parts=("$data"/events/part-*.jsonl)
ttl=$("$py" -c "import tomllib,sys; print(tomllib.load(open(sys.argv[1],'rb')).get('position_ttl_ms', 60000))" "$hunt")

rm -rf "$out"
mkdir -p "$out"
results="$out/results.tsv"
# Runs a command once, for at most $limit seconds; appends "name wall_s peak_rss_kib"
# to the results (a peer stopped at the limit is left out of the comparison).
peers=()
timed() {
    local name=$1 status=0
    shift
    /usr/bin/time -f "%e %M" -o "$out/$name.time" timeout "$limit" "$@" \
        >"$out/$name.log" 2>&1 || status=$?
    if [ "$status" = 124 ]; then
        echo "$name stopped after ${limit} s" >&2
        echo "$name $limit 0 stopped" >>"$results"
        return
    elif [ "$status" != 0 ]; then
        echo "$name failed ($status):" >&2
        tail -20 "$out/$name.log" >&2
        exit 1
    fi
    echo "$name $(tail -1 "$out/$name.time")" >>"$results"
}

echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
timed huntflow-w2 "$bin" backfill --hunt "$hunt" -w 2 --output "$out/huntflow-w2.jsonl" "${parts[@]}"
timed huntflow-w1 "$bin" backfill --hunt "$hunt" -w 1 --output "$out/huntflow-w1.jsonl" "${parts[@]}"
timed duckdb "$py" "$here/duckdb_presence.py" "$data/events/part-*.jsonl" "$data/hunt/zones.csv" \
    "$ttl" "$out/duckdb.parquet" "$threads"
timed pathway env PATHWAY_THREADS="$threads" "$py" "$here/pathway_presence.py" "$data/events" \
    "$data/hunt/zones.csv" "$ttl" "$out/pathway.csv"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

cmp -s "$out/huntflow-w1.jsonl" "$out/huntflow-w2.jsonl" ||
    { echo "huntflow -w 1 and -w 2 wrote different outputs" >&2; exit 1; }
grep -q "^duckdb .* stopped" "$results" || peers+=(duckdb="$out/duckdb.parquet")
grep -q "^pathway .* stopped" "$results" || peers+=(pathway="$out/pathway.csv")
"$py" "$here/compare.py" "$out/huntflow-w2.jsonl" "${peers[@]}"
echo "$(wc -l <"$out/huntflow-w2.jsonl") notifications from huntflow" >&2

awk 'NR == 1 { base = $2 }
     BEGIN { print "| program | wall | peak RSS | wall / huntflow -w 2 |"; print "|---|---|---|---|" }
     $4 == "stopped" { printf "| %s | stopped at %d s | | > %.0f× |\n", $1, $2, $2 / base; next }
     { printf "| %s | %.2f s | %.0f MiB | %.1f× |\n", $1, $2, $3 / 1024, $2 / base }' "$results"
