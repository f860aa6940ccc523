#!/usr/bin/env bash
# Instructions per engine evaluation, counted by valgrind callgrind: repeatable on a shared,
# loaded machine where wall-clock figures are not. Counts only the measured loop of
# `examples/engine_callgrind.rs` (toggle-collect), divided by the number of iterations.
#   evaluate - engine::evaluate on the parsed benches/engine.rs input (fresh copy per call)
#   cards    - JSON bytes -> cards for fixtures/cds-hooks/order-sign-20-orders.json
# Usage: scripts/bench-engine-callgrind.sh [evaluate|cards|both=both] [N=200]
# Env: KEEP=dir keeps the callgrind.out files there (for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-both}
N=${2:-200}
TARGET=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet --example engine_callgrind
BIN="$TARGET/release/examples/engine_callgrind"
OUT=${KEEP:-$(mktemp -d)}
mkdir -p "$OUT"

count() {
    local mode=$1 fn=$2 file="$OUT/callgrind.out.$1"
    valgrind --tool=callgrind --callgrind-out-file="$file" --toggle-collect="$fn" \
        "$BIN" "$mode" "$N" >/dev/null 2>"$OUT/valgrind.$mode.log"
    local total
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$file")
    echo "$mode: $((total / N)) instructions per call ($total over $N calls)"
}

case $MODE in
    evaluate) count evaluate '*measured_evaluate*' ;;
    cards) count cards '*measured_cards*' ;;
    both)
        count evaluate '*measured_evaluate*'
        count cards '*measured_cards*'
        ;;
    *) echo "usage: $0 [evaluate|cards|both] [N]" >&2; exit 2 ;;
esac
[ -n "${KEEP:-}" ] || rm -rf "$OUT"
