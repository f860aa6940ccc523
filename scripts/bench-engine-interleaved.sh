#!/usr/bin/env bash
# Wall clock of saved engine benchmark binaries, run in turn, round after round, so that a
# before/after pair sees the same machine: on a shared 2-core box one binary's figure moves by
# several percent between runs, and between machines by more.
#
# Save a binary first (the release profile is fat LTO, so this takes minutes):
#   cargo bench --locked --bench engine --no-run      # prints target/release/deps/engine-<hash>
#   cp target/release/deps/engine-<hash> /somewhere/engine-before
# Usage: scripts/bench-engine-interleaved.sh ROUNDS BIN...
# Env: MEASURE=seconds per benchmark (8), WARM=warm-up seconds (2),
#      FILTER=criterion filter (engine/evaluate; "decide/json" for JSON bytes -> cards).
# Prints one line per run (binary, benchmark, criterion's median) and, at the end, the median
# of each binary's medians per benchmark.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROUNDS BIN..." >&2; exit 2; }
ROUNDS=$1
shift
MEASURE=${MEASURE:-8}
WARM=${WARM:-2}
FILTER=${FILTER:-engine/evaluate}
HOME_DIR=$(mktemp -d)
trap 'rm -rf "$HOME_DIR"' EXIT
RESULTS="$HOME_DIR/results.tsv"
: >"$RESULTS"

for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }
        rm -rf "$HOME_DIR/criterion"
        CRITERION_HOME="$HOME_DIR/criterion" "$bin" --bench --warm-up-time "$WARM" \
            --measurement-time "$MEASURE" "$FILTER" >/dev/null 2>&1
        # criterion keeps each benchmark's estimates in <home>/<name>/new/estimates.json.
        for estimates in "$HOME_DIR"/criterion/*/new/estimates.json; do
            name=$(basename "$(dirname "$(dirname "$estimates")")")
            median_ns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$estimates")
            printf '%s\t%s\t%s\t%s\n' "$round" "$(basename "$bin")" "$name" "$median_ns" >>"$RESULTS"
            printf 'round %s  %-24s %-55s %10.3f µs\n' "$round" "$(basename "$bin")" "$name" \
                "$(python3 -c "print($median_ns / 1000)")"
        done
    done
done

echo "median of the medians ($ROUNDS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)):"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    _, binary, name, ns = line.rstrip("\n").split("\t")
    runs[(binary, name)].append(float(ns) / 1000)
for (binary, name), us in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"  {binary:24} {name:55} {statistics.median(us):8.3f} µs  "
          f"(runs {', '.join(f'{u:.2f}' for u in us)})")
EOF
