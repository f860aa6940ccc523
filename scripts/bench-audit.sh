#!/usr/bin/env bash
# Audit writer benchmark, side by side in one run on fresh databases:
#   writer  - decisions through AuditWriter (group commit, hash chain, durable commit)
#   pgbench - the same rows inserted by pgbench, 100 decisions (+ findings) per transaction
#   single  - one autocommitted INSERT per decision (the naive design), two ways:
#             (b) CLIENTS concurrent requests sharing a pool (PostgreSQL's WAL group commit merges
#                 their fsyncs), and (b1) pgbench, the same harness and client counts as (a), one
#                 decision (+ finding) per transaction
# Usage: scripts/bench-audit.sh [SECONDS_PER_RUN=10] [CLIENTS=256] [ROUNDS=2]
# CLIENTS = concurrent requests, the same number for the writer and for (b). Both get a pool of
# min(CLIENTS, 16) + 2 connections (B_POOL overrides it for (b) only). The writer batches the
# requests onto its lanes; in (b) every request runs its own autocommitted statement (its decision
# row + its one finding, in one CTE; no hash chain), so PostgreSQL's WAL group commit across the
# pool's connections is its only batching. See examples/bench_audit.rs.
# Env: DATABASE_URL (a superuser URL without query string; default the local test server).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
RUN_SECONDS=${1:-10}
CLIENTS=${2:-256}
ROUNDS=${3:-2}
SERVER=${BASE_URL%/*}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet --example bench_audit
BIN="$TARGET/release/examples/bench_audit"

# fresh_db runs in a command substitution (a subshell), so the databases are found by their
# name prefix at exit rather than remembered in a variable.
PREFIX="orderguard_bench_$$_"
cleanup() {
    psql -Atq "$BASE_URL" -c "SELECT datname FROM pg_database WHERE starts_with(datname, '$PREFIX')" 2>/dev/null |
        while read -r db; do psql -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
fresh_db() {
    local db="$PREFIX$1"
    psql -q "$BASE_URL" -c "CREATE DATABASE $db" >/dev/null
    echo "$SERVER/$db"
}

PGBENCH_SCRIPT=$(mktemp)
PGBENCH_ONE=$(mktemp)
trap 'cleanup; rm -f "$PGBENCH_SCRIPT" "$PGBENCH_ONE"' EXIT
# Same row shape as the writer's: ~0.8 kB input, 0.3 kB response, their hashes, one finding.
cat > "$PGBENCH_SCRIPT" <<'SQL'
WITH d AS (
  INSERT INTO decisions (decision_id, evaluated_at, recorded_at, channel, hook, patient_ref,
      user_ref, pathway_id, pathway_version, pathway_hash, canonical_input, input_sha256,
      response, response_sha256, finding_count, chain_id, batch_seq, batch_pos)
  SELECT gen_random_uuid(), now(), now(), 'cds-hooks', 'order-sign', 'Patient/p1',
      'Practitioner/dr1', 'vcf', '1.0.0', repeat('ab', 32), i.b, sha256(i.b), r.b, sha256(r.b), 1,
      'pgbench', :client_id, g
  FROM generate_series(1, 100) g,
       LATERAL (SELECT convert_to('{"orders":"' || repeat('x', 780) || g || '"}', 'UTF8') AS b) i,
       LATERAL (SELECT convert_to(repeat('r', 300), 'UTF8') AS b) r
  RETURNING decision_id, evaluated_at)
INSERT INTO findings (decision_id, evaluated_at, finding_index, rule_id, severity, order_ref,
    card_uuid, numbers)
SELECT decision_id, evaluated_at, 0, 'DOSE-MME-90', 'warning', 'MedicationRequest/m1',
    gen_random_uuid(), '{"mme_per_day": 120.5}' FROM d;
SQL
# (b1): the same statement, one decision per transaction.
sed 's/generate_series(1, 100)/generate_series(1, 1)/' "$PGBENCH_SCRIPT" > "$PGBENCH_ONE"

echo "== audit writer benchmark: ${RUN_SECONDS}s per run, $ROUNDS round(s), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "PostgreSQL $(psql -Atc 'show server_version' "$BASE_URL"), synchronous_commit=$(psql -Atc 'show synchronous_commit' "$BASE_URL")"

# pgbench_run CLIENTS ROUND [SCRIPT ROWS_PER_TXN]: decisions/s and average latency.
pgbench_run() {
    local url clients out tps lat script rows
    clients=$1
    script=${3:-$PGBENCH_SCRIPT}
    rows=${4:-100}
    url=$(fresh_db "pgbench${clients}_${rows}_$2")
    "$BIN" writer "$url" 0 1 >/dev/null   # the same schema, migrated
    out=$(pgbench -n -f "$script" -c "$clients" -j "$clients" -T "$RUN_SECONDS" "$url" 2>&1)
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
    echo "$(awk -v t="$tps" -v r="$rows" 'BEGIN{printf "%.0f", t*r}') $lat"
}

# The machine's disk and CPU share drift over minutes: each round measures all four back to
# back, and ratios are taken within a round.
B_POOL_SHOWN=${B_POOL:-$(( CLIENTS < 16 ? CLIENTS + 2 : 18 ))}
for round in $(seq 1 "$ROUNDS"); do
    writer=$("$BIN" writer "$(fresh_db "writer_$round")" "$RUN_SECONDS" "$CLIENTS")
    read -r pg1 pg1lat <<<"$(pgbench_run 1 "$round")"
    read -r pg2 pg2lat <<<"$(pgbench_run 2 "$round")"
    single=$(BENCH_POOL=${B_POOL:-} "$BIN" single "$(fresh_db "single_$round")" "$RUN_SECONDS" "$CLIENTS")
    read -r one1 one1lat <<<"$(pgbench_run 1 "$round" "$PGBENCH_ONE" 1)"
    read -r one2 one2lat <<<"$(pgbench_run 2 "$round" "$PGBENCH_ONE" 1)"
    read -r _ w_rate w_p50 w_p99 _ <<<"$writer"
    read -r _ s_rate s_p50 s_p99 _ <<<"$single"
    echo "-- round $round"
    printf '%-46s %12s %12s %10s\n' "how" "decisions/s" "p50 ms" "p99 ms"
    printf '%-46s %12s %12s %10s\n' "AuditWriter, $CLIENTS clients (durable, chained)" "$w_rate" "$w_p50" "$w_p99"
    printf '%-46s %12s %12s %10s\n' "(a) pgbench 100/txn, 1 client" "$pg1" "avg $pg1lat" "-"
    printf '%-46s %12s %12s %10s\n' "(a) pgbench 100/txn, 2 clients" "$pg2" "avg $pg2lat" "-"
    printf '%-46s %12s %12s %10s\n' "(b) 1 INSERT/decision, $CLIENTS clients, pool $B_POOL_SHOWN" "$s_rate" "$s_p50" "$s_p99"
    printf '%-46s %12s %12s %10s\n' "(b1) pgbench 1/txn, 1 client" "$one1" "avg $one1lat" "-"
    printf '%-46s %12s %12s %10s\n' "(b1) pgbench 1/txn, 2 clients" "$one2" "avg $one2lat" "-"
    awk -v w="$w_rate" -v a1="$pg1" -v a2="$pg2" -v b="$s_rate" -v o1="$one1" -v o2="$one2" 'BEGIN{
      printf "writer/(a 1 client) = %.2f  writer/(a 2 clients) = %.2f  (target >= 0.5)\n", w/a1, w/a2
      printf "writer/(b) = %.1f  writer/(b1 1 client) = %.1f  writer/(b1 2 clients) = %.1f  (target >= 5)\n", w/b, w/o1, w/o2 }'
done
