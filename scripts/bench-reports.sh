#!/usr/bin/env bash
# Reports benchmark: seed N decisions (the real engine, through the real audit writer) spread
# over the last 365 days into a fresh database, optionally multiply them COPIES times by SQL
# (scripts/bench-reports-replicate.sql: new ids and references, times spread over the year,
# feedback received seconds after its decision), then time every report over the last
# WINDOW_DAYS days for each WINDOW_DAYS given. Query time only (`orderguard report --timing`:
# the SQL round trip and row decoding, not the process start), best of RUNS.
#
# Usage: scripts/bench-reports.sh [N=100000] [COPIES=0] [WINDOWS="30 365"] [RUNS=3]
#   a window "Dnow" is the last D days up to now (today's part read raw), "D" ends at midnight
#   10 million decisions: scripts/bench-reports.sh 20000 499
# Env: LIMIT (rows per report, default 100000), SORTS (extra timings in each window, as
# space-separated report:sort pairs, e.g. "by-encounter:-decisions by-encounter:override_rate"), RAW=1 times the raw SQL (`report --raw`, no rollups); PROFILE (cargo profile, default release; dev = the debug build, report timings are
# PostgreSQL's), DATABASE_URL (a superuser URL; default the local test server), KEEP=1 keeps the
# database (its name is printed) to re-run the timings with SKIP_SEED=1 DB=<name>; SEED_ONLY=1
# seeds, keeps the database and stops (no rollup refresh, no timings).
# Everything runs under nice 19, the PostgreSQL backends that seed included (renice), and waits
# while /work/wt/QUIET exists (another benchmark is being timed on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
N=${1:-100000}
COPIES=${2:-0}
WINDOWS=${3:-30 365}
RUNS=${4:-3}
DAYS=365
CHUNK=${CHUNK:-50}
SERVER=${BASE_URL%/*}
TARGET=${CARGO_TARGET_DIR:-target}
DB=${DB:-orderguard_bench_reports_$$}
LIMIT=${LIMIT:-100000}
URL="$SERVER/$DB"
DATA=$(mktemp -d)
QUIET_FILE=${QUIET_FILE:-/work/wt/QUIET}

PROFILE=${PROFILE:-release}
nice -n 19 cargo build --profile "$PROFILE" --quiet --bin orderguard
if [ "$PROFILE" = dev ]; then BIN="$TARGET/debug/orderguard"; else BIN="$TARGET/$PROFILE/orderguard"; fi

quiet_wait() { while [ -e "$QUIET_FILE" ]; do sleep 20; done; }
# Every PostgreSQL backend connected to the benchmark database runs at nice 19 as well: a
# background loop renices them as they appear (psql, the seeder's and the CLI's connections).
renicer() {
    while true; do
        for pid in $(psql -Atq "$BASE_URL" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'" 2>/dev/null); do
            renice -n 19 -p "$pid" >/dev/null 2>&1 || true
        done
        sleep 1
    done
}
renicer &
RENICER=$!
npsql() { nice -n 19 psql -X -q -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    kill "$RENICER" 2>/dev/null || true
    rm -rf "$DATA"
    if [ -z "${KEEP:-}" ] && [ -z "${SKIP_SEED:-}" ] && [ -z "${SEED_ONLY:-}" ]; then
        psql -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

echo "load before: $(uptime)"
if [ -z "${SKIP_SEED:-}" ]; then
    quiet_wait
    psql -q "$BASE_URL" -c "CREATE DATABASE $DB" >/dev/null
    DATABASE_URL="$URL" nice -n 19 "$BIN" db migrate --data-dir "$DATA" >/dev/null
    # A deployed service creates each month's partitions ahead of time; a fresh database has
    # only last month onwards, so make the past year's months before writing into them.
    npsql "$URL" -c "SELECT audit_create_month_partitions((now() - interval '13 months')::date, now()::date)" >/dev/null
    start=$(date +%s.%N)
    DATABASE_URL="$URL" nice -n 19 "$BIN" demo seed --decisions "$N" --days "$DAYS" --data-dir "$DATA"
    end=$(date +%s.%N)
    echo "seeded $N decisions through the writer in $(echo "$end - $start" | bc) s; load: $(uptime)"
    if [ "$COPIES" -gt 0 ]; then
        start=$(date +%s.%N)
        anchor=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        npsql "$URL" -c "CREATE UNLOGGED TABLE bench_base_decisions AS SELECT * FROM decisions;
            CREATE UNLOGGED TABLE bench_base_findings AS SELECT * FROM findings;
            CREATE UNLOGGED TABLE bench_base_feedback AS
              SELECT fb.*, d.evaluated_at FROM feedback fb JOIN decisions d USING (decision_id);"
        # A bulk load builds the secondary indexes once at the end rather than row by row; the
        # same definitions are recreated, so the schema is the migrations'. KFROM resumes.
        npsql "$URL" -c "CREATE TABLE bench_indexes AS
              SELECT pg_get_indexdef(i.indexrelid) AS def, i.indexrelid::regclass::text AS name
                FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
               WHERE c.relname IN ('decisions', 'findings', 'feedback') AND NOT i.indisprimary;
            DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT name FROM bench_indexes LOOP EXECUTE 'DROP INDEX ' || r.name; END LOOP;
            END \$\$;"
        k=${KFROM:-1}
        while [ "$k" -le "$COPIES" ]; do
            quiet_wait
            kto=$((k + CHUNK - 1)); [ "$kto" -gt "$COPIES" ] && kto=$COPIES
            npsql "$URL" -v kfrom="$k" -v kto="$kto" -v anchor="$anchor" -f scripts/bench-reports-replicate.sql
            echo "copies $k..$kto of $COPIES done at $(date -u +%H:%M:%S)"
            k=$((kto + 1))
        done
        quiet_wait
        npsql "$URL" -c "DO \$\$ DECLARE r record; BEGIN
              -- pg_get_indexdef gives a partitioned index as ON ONLY (no partitions): drop it.
              FOR r IN SELECT replace(def, ' ON ONLY ', ' ON ') AS def FROM bench_indexes LOOP
                EXECUTE r.def;
              END LOOP;
            END \$\$; DROP TABLE bench_indexes;"
        echo "indexes rebuilt at $(date -u +%H:%M:%S)"
        npsql "$URL" -c "DROP TABLE bench_base_decisions, bench_base_findings, bench_base_feedback"
        end=$(date +%s.%N)
        echo "replicated $COPIES copies in $(echo "$end - $start" | bc) s; load: $(uptime)"
    fi
    quiet_wait
    npsql "$URL" -c "VACUUM ANALYZE" >/dev/null
fi
if [ -n "${SEED_ONLY:-}" ]; then
    echo "seeded; rollups not refreshed (SEED_ONLY); kept database $DB"
    exit 0
fi
if [ -z "${SKIP_SEED:-}" ] || [ -n "${REFRESH:-}" ]; then
    # The rollups a deployed timer keeps current (`db refresh-rollups`, src/reports/rollup.rs).
    start=$(date +%s.%N)
    DATABASE_URL="$URL" nice -n 19 "$BIN" db refresh-rollups --data-dir "$DATA"
    end=$(date +%s.%N)
    echo "rollup refreshed in $(echo "$end - $start" | bc) s"
    npsql "$URL" -c "VACUUM ANALYZE" >/dev/null
fi
psql -Atq "$URL" -c "SELECT 'rows: decisions ' || (SELECT count(*) FROM decisions) || ', findings ' || (SELECT count(*) FROM findings) || ', feedback ' || (SELECT count(*) FROM feedback) || '; database ' || pg_size_pretty(pg_database_size(current_database()))"

for window in $WINDOWS; do
    quiet_wait
    if [ "${window%now}" != "$window" ]; then
        # "30now": the last 30 days up to this second (the web page's default window): the
        # folded days from the rollup, today's part read raw.
        window=${window%now}
        to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        from=$(date -u -d "$(date -u +%Y-%m-%d) - $window days" +%Y-%m-%d)
    else
        to=$(date -u +%Y-%m-%d)
        from=$(date -u -d "$to - $window days" +%Y-%m-%d)
    fi
    echo "window: $from .. $to (the last $window days, of $DAYS seeded)"
    printf '%-24s %8s %10s\n' report rows best_ms
    for item in alert-burden override-by-rule override-by-reason suggestion-acceptance \
                  by-prescriber by-encounter vcf-adherence augmentation mme missing-inputs \
                  ${SORTS:-}; do
        report=${item%%:*}
        sort=""
        [ "$item" != "$report" ] && sort=${item#*:}
        best=""
        rows=0
        for _ in $(seq "$RUNS"); do
            out=$(DATABASE_URL="$URL" "$BIN" report "$report" --from "$from" --to "$to" \
                  --format csv --limit "$LIMIT" ${sort:+"--sort=$sort"} --timing ${RAW:+--raw} \
                  --data-dir "$DATA" 2>&1 >/dev/null)
            ms=$(echo "$out" | sed -n 's/^query: \([0-9.]*\) ms, \([0-9]*\) rows$/\1/p')
            rows=$(echo "$out" | sed -n 's/^query: \([0-9.]*\) ms, \([0-9]*\) rows$/\2/p')
            if [ -z "$ms" ]; then echo "$out" >&2; exit 1; fi
            if [ -z "$best" ] || [ "$(echo "$ms < $best" | bc)" = 1 ]; then best=$ms; fi
        done
        printf '%-24s %8s %10s\n' "$item" "$rows" "$best"
    done
done
echo "load after: $(uptime)"
[ -n "${KEEP:-}" ] && echo "kept database $DB"
exit 0
