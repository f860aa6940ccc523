#!/usr/bin/env bash
# Reports benchmark: seed N decisions (the real engine, through the real audit writer) spread
# over DAYS days into a fresh database, then time every report over the last WINDOW_DAYS days.
# Query time only (`orderguard report --timing`: the SQL round trip and row decoding, not the
# process start), best of RUNS.
# Usage: scripts/bench-reports.sh [N=100000] [DAYS=365] [WINDOW_DAYS=30] [RUNS=3]
# Env: PROFILE (cargo profile, default release), DATABASE_URL (a superuser URL; default the local test server), KEEP=1 keeps the database
# (its name is printed) to re-run the timings with SKIP_SEED=1 DB=<name>.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
N=${1:-100000}
DAYS=${2:-365}
WINDOW_DAYS=${3:-30}
RUNS=${4:-3}
SERVER=${BASE_URL%/*}
TARGET=${CARGO_TARGET_DIR:-target}
DB=${DB:-orderguard_bench_reports_$$}
URL="$SERVER/$DB"
DATA=$(mktemp -d)

# PROFILE=dev uses the debug build (report timings are PostgreSQL's; seeding is slower).
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --quiet
if [ "$PROFILE" = dev ]; then BIN="$TARGET/debug/orderguard"; else BIN="$TARGET/$PROFILE/orderguard"; fi

cleanup() {
    rm -rf "$DATA"
    if [ -z "${KEEP:-}" ] && [ -z "${SKIP_SEED:-}" ]; then
        psql -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "load before: $(uptime)"
if [ -z "${SKIP_SEED:-}" ]; then
    psql -q "$BASE_URL" -c "CREATE DATABASE $DB" >/dev/null
    start=$(date +%s.%N)
    DATABASE_URL="$URL" "$BIN" demo seed --decisions "$N" --days "$DAYS" --data-dir "$DATA"
    end=$(date +%s.%N)
    echo "seeded $N decisions in $(echo "$end - $start" | bc) s; load: $(uptime)"
    psql -q "$URL" -c "VACUUM ANALYZE" >/dev/null
fi
psql -Atq "$URL" -c "SELECT 'rows: decisions ' || (SELECT count(*) FROM decisions) || ', findings ' || (SELECT count(*) FROM findings) || ', feedback ' || (SELECT count(*) FROM feedback)"

to=$(date -u +%Y-%m-%d)
from=$(date -u -d "$to - $WINDOW_DAYS days" +%Y-%m-%d)
echo "window: $from .. $to (the last $WINDOW_DAYS days, of $DAYS seeded)"
printf '%-24s %8s %10s\n' report rows best_ms
for report in alert-burden override-by-rule override-by-reason suggestion-acceptance \
              by-prescriber by-encounter vcf-adherence augmentation mme missing-inputs; do
    best=""
    rows=0
    for _ in $(seq "$RUNS"); do
        out=$(DATABASE_URL="$URL" "$BIN" report "$report" --from "$from" --to "$to" \
              --format csv --limit 100000 --timing --data-dir "$DATA" 2>&1 >/dev/null)
        ms=$(echo "$out" | sed -n 's/^query: \([0-9.]*\) ms, \([0-9]*\) rows$/\1/p')
        rows=$(echo "$out" | sed -n 's/^query: \([0-9.]*\) ms, \([0-9]*\) rows$/\2/p')
        if [ -z "$best" ] || [ "$(echo "$ms < $best" | bc)" = 1 ]; then best=$ms; fi
    done
    printf '%-24s %8s %10s\n' "$report" "$rows" "$best"
done
echo "load after: $(uptime)"
[ -n "${KEEP:-}" ] && echo "kept database $DB"
exit 0
