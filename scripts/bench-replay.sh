#!/usr/bin/env bash
# Replay throughput: decisions re-evaluated per second by `orderguard replay` over N stored
# decisions (default 1,000,000) in a fresh database.
#
# Seeding (examples/seed_decisions.rs): the real engine decides copies of fixtures/cases (every
# case, and the morphine case at ten doses) spread over Nov-Dec 2026, and the real AuditWriter
# records them with 512 in flight (its group-commit batch path: up to 512 rows per transaction,
# durable, hash-chained). Then, timed, on WORKERS threads (default 2 = the machine's cores):
#   what-if   `orderguard replay --pathway DRAFT --format json` (DOSE-MME-50 raised to 90)
#   determinism `orderguard replay --verify-determinism --format json`
# Usage: scripts/bench-replay.sh [N=1000000] [WORKERS=2]
# Env: DATABASE_URL (a superuser URL without query string; default the local test server);
#      KEEP_DB=1 keeps the seeded database (its URL is printed) for re-runs with SEEDED_URL=...
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
N=${1:-1000000}
WORKERS=${2:-2}
SERVER=${BASE_URL%/*}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$(mktemp -d)

cargo build --release --quiet --bin orderguard --example seed_decisions
BIN="$TARGET/release/orderguard"

if [ -n "${SEEDED_URL:-}" ]; then
    URL=$SEEDED_URL
    "$TARGET/release/examples/seed_decisions" 0 "$OUT/draft.json"
else
    DB="orderguard_bench_replay_$$"
    psql -q "$BASE_URL" -c "CREATE DATABASE $DB" >/dev/null
    URL="$SERVER/$DB"
    if [ "${KEEP_DB:-0}" != 1 ]; then
        trap 'psql -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT
    else
        echo "keeping the seeded database: SEEDED_URL=$URL"
    fi
    echo "== seeding $N decisions, load $(cut -d' ' -f1-3 /proc/loadavg)"
    DATABASE_URL=$URL /usr/bin/time -f "seed: %e s wall, %U s user, %S s sys, max RSS %M kB" \
        "$TARGET/release/examples/seed_decisions" "$N" "$OUT/draft.json"
fi
psql -Atq "$URL" -c "SELECT 'stored: ' || count(*) || ' decisions, ' || pg_size_pretty(pg_total_relation_size('decisions_2026_11') + pg_total_relation_size('decisions_2026_12') + pg_total_relation_size('decisions_default')) FROM decisions"

run() { # $1 = label, rest = replay arguments
    local label=$1; shift
    echo "== $label: $WORKERS workers, load before $(cut -d' ' -f1-3 /proc/loadavg)"
    DATABASE_URL=$URL /usr/bin/time -f "$label: %e s wall, %U s user, %S s sys (orderguard; PostgreSQL not included), max RSS %M kB" \
        "$BIN" replay "$@" --jobs "$WORKERS" --format json --data-dir "$OUT/data" --actor bench > "$OUT/$label.json"
    python3 - "$OUT/$label.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
run = r["run"]
print(f'{sys.argv[2]}: {run["decisions"]} decisions in {run["elapsed"]:.1f} s = {run["decisions"] / run["elapsed"]:.0f} decisions/s on {run["workers"]} workers')
if "rules" in r:
    for rule in r["rules"]:
        if rule["appears"] or rule["disappears"] or rule["severity_changes"]:
            print(f'  {rule["rule_id"]}: {rule["appears"]} appear, {rule["disappears"]} disappear, {rule["severity_changes"]} change severity; per 100 order-sign {rule["old_per_100_order_sign"]} -> {rule["new_per_100_order_sign"]}')
else:
    print(f'  replayed {r["replayed"]}, reproduced {r["reproduced"]}, differing {r["differing"]}, skipped {r["skipped_decisions"]}')
PY
    echo "   load after $(cut -d' ' -f1-3 /proc/loadavg)"
}
run what-if --pathway "$OUT/draft.json"
run determinism --verify-determinism
