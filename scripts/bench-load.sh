#!/usr/bin/env bash
# Load benchmark of the running service (issue 4), durable audit on:
#   order-sign - POST /cds-services/vcf-order-sign with a 20-order CDS Hooks request
#                (fixtures/cds-hooks/order-sign-20-orders.json, sent compact, with prefetch),
#                every answer released only after its audit record committed in PostgreSQL
#   healthz    - GET /healthz on the same server: the HTTP ceiling of this stack on this box
# Both runs use wrk (installed from Debian if missing) against `orderguard serve
# --insecure-no-auth` on a loopback port and a fresh database. Reports decisions/s, p50/p99/p99.9,
# server peak RSS (VmHWM), rows in `decisions` against the 2xx answers, and the machine's load.
# Usage: scripts/bench-load.sh [SECONDS_PER_RUN] [CONNECTIONS] [WRK_THREADS]
# Env: DATABASE_URL (a superuser URL without query string; default the local test server),
#      CARGO_TARGET_DIR, BODY (another request file to send instead of the 20-order one),
#      PERF_DATA (a file: sample the server with `perf record` during the order-sign run),
#      AUTH=es384|rs384 (client authentication on: the server trusts the CDS Hooks spec's example
#      issuer (ES384) or the test RSA issuer, and every order-sign request carries its own
#      pre-signed JWT, aud = the called URL, unique jti; TOKENS = how many to sign, default 40000).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
RUN_SECONDS=${1:-15}
CONNECTIONS=${2:-32}
THREADS=${3:-2}
SERVER=${BASE_URL%/*}
TARGET=${CARGO_TARGET_DIR:-target}
REQUEST=${BODY:-fixtures/cds-hooks/order-sign-20-orders.json}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin orderguard ${AUTH:+--example http_load}
BIN="$TARGET/release/orderguard"
SHARED=${ORDERGUARD_SHARED:-/work/shared}

WORK=$(mktemp -d)
DB="orderguard_load_$$"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true; fi
    psql -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
psql -q "$BASE_URL" -c "CREATE DATABASE $DB" >/dev/null
DB_URL="$SERVER/$DB"

# Compact JSON, as EHRs send it; the pretty fixture is the same request with whitespace.
python3 -c 'import json,sys; sys.stdout.write(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' \
    "$REQUEST" >"$WORK/body.json"
ORDERS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["context"]["draftOrders"]["entry"]))' "$REQUEST")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
AUTH_ARGS=(--insecure-no-auth)
if [ -n "${AUTH:-}" ]; then
    case "$AUTH" in
        es384) ISS="https://fhir-ehr.example.com/"; JWKS="$SHARED/conformance/cds-hooks/spec-2.0/jwks-public.json" ;;
        rs384) ISS="https://rsa-ehr.example.com"; JWKS="$PWD/fixtures/jwt/rs384-TEST-ONLY.jwks.json" ;;
        *) echo "AUTH must be es384 or rs384" >&2; exit 2 ;;
    esac
    cat >"$WORK/config.json" <<JSON
{"auth": {"audience_base_url": "$URL", "trusted_clients": [{"issuer": "$ISS", "jwks_file": "$JWKS"}]}}
JSON
    AUTH_ARGS=(--config "$WORK/config.json")
    # Signed before the run, so the client's signing is not measured; one per request.
    ORDERGUARD_SHARED=$SHARED "$TARGET/release/examples/http_load" tokens "$AUTH" "${TOKENS:-40000}" \
        "$URL/cds-services/vcf-order-sign" >"$WORK/tokens.txt"
    head -1 "$WORK/tokens.txt" >"$WORK/first-token.txt"
    tail -n +2 "$WORK/tokens.txt" >"$WORK/run-tokens.txt"
fi
# Log lines go to a file, as they would to journald; RUST_LOG as a deployment would set it.
RUST_LOG=${RUST_LOG:-info} "$BIN" serve "${AUTH_ARGS[@]}" --listen "127.0.0.1:$PORT" \
    --database-url "$DB_URL" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done
FIRST_AUTH=()
[ -n "${AUTH:-}" ] && FIRST_AUTH=(-H "Authorization: Bearer $(cat "$WORK/first-token.txt")")
status=$(curl -s -o "$WORK/first.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    "${FIRST_AUTH[@]}" --data-binary @"$WORK/body.json" "$URL/cds-services/vcf-order-sign")
if [ "$status" != 200 ]; then
    echo "the order-sign request is answered $status:" >&2; cat "$WORK/first.json" >&2; exit 1
fi
CARDS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["cards"]))' "$WORK/first.json")

cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rows() { psql -Atq "$DB_URL" -c 'SELECT count(*) FROM decisions'; }
# CPU ticks of the PostgreSQL backends serving this database (the server's pool), as
# "pid:ticks" lines; WAL writer and checkpointer are shared with the machine and not counted.
pg_ticks() {
    local pid
    for pid in $(psql -Atq "$DB_URL" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()"); do
        [ -r "/proc/$pid/stat" ] && echo "$pid:$(proc_ticks "$pid")"
    done
}
pg_delta() { # before-list after-list -> ticks spent in between (new backends count whole)
    awk -F: 'NR == FNR {b[$1] = $2; next} {d += $2 - ($1 in b ? b[$1] : 0)} END {print d + 0}' \
        <(echo "$1") <(echo "$2")
}
answered_2xx() {
    curl -fsS "$URL/metrics" | awk -v r="$1" 'index($0, "orderguard_http_requests_total{") == 1 &&
        index($0, "route=\"" r "\"") && $0 ~ /status="2[0-9][0-9]"/ {n += $NF} END {print n+0}'
}

# One wrk run; prints "<RESULT fields> machine_busy=% server_cpu=% wrk_cpu=% load1=".
run() {
    local label=$1 path=$2 body=$3 b0 t0 s0 b1 t1 s1 out p0 p1
    read -r b0 t0 <<<"$(cpu_busy)"
    s0=$(proc_ticks "$SERVER_PID")
    p0=$(pg_ticks)
    if [ -n "${PERF_DATA:-}" ] && [ -n "$body" ]; then
        perf record -q -e cpu-clock -F 499 -g -p "$SERVER_PID" -o "$PERF_DATA" -- sleep "$RUN_SECONDS" \
            >/dev/null 2>&1 &
    fi
    local tokens=
    [ -n "${AUTH:-}" ] && [ -n "$body" ] && tokens="$WORK/run-tokens.txt"
    out=$(BODY_FILE=$body TOKENS_FILE=$tokens WRK_THREADS=$THREADS \
        /usr/bin/time -f 'WRKCPU %U %S' wrk -t"$THREADS" -c"$CONNECTIONS" \
        -d"${RUN_SECONDS}s" --timeout 10s -s scripts/load/report.lua "$URL$path" 2>&1)
    read -r b1 t1 <<<"$(cpu_busy)"
    s1=$(proc_ticks "$SERVER_PID")
    p1=$(pg_ticks)
    echo "$out" >"$WORK/wrk-$label.txt"
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v s="$((s1 - s0))" -v d="$RUN_SECONDS" \
        -v pg="$(pg_delta "$p0" "$p1")" -v hz="$(getconf CLK_TCK)" \
        -v loadnow="$(cut -d' ' -f1 /proc/loadavg)" -v cores="$(nproc)" '
        /^RESULT/ {sub(/^RESULT /, ""); r = $0; split(r, kv, /[ =]/); ok = kv[4]}
        /^WRKCPU/ {w = ($2 + $3) * 100 / d}
        END {printf "%s machine_busy=%.0f server_cpu=%.0f wrk_cpu=%.0f load1=%s server_us=%.0f pg_us=%.0f\n",
             r, 100 * b / t * cores, s * 100 / hz / d, w, loadnow,
             ok > 0 ? s * 1e6 / hz / ok : 0, ok > 0 ? pg * 1e6 / hz / ok : 0}' <<<"$out"
}
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

echo "== load benchmark: ${RUN_SECONDS}s per run, $CONNECTIONS connections, $THREADS wrk threads, $(nproc) cores," \
    "$(psql -Atc 'show server_version' "$BASE_URL" | cut -d' ' -f1) synchronous_commit=$(psql -Atc 'show synchronous_commit' "$BASE_URL")"
echo "   request: $REQUEST, $ORDERS draft orders, $(wc -c <"$WORK/body.json") bytes compact; answer: $CARDS cards"
echo "   client authentication: ${AUTH:-off (--insecure-no-auth)}"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

noop=$(run healthz /healthz "")
hwm_noop=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status")
rows0=$(rows)
ok0=$(answered_2xx /cds-services/{id})
sign=$(run order-sign /cds-services/vcf-order-sign "$WORK/body.json")
sleep 1 # requests in flight when wrk stopped still finish; count after they have
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status")
rss=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
landed=$(( $(rows) - rows0 ))
served=$(( $(answered_2xx /cds-services/{id}) - ok0 ))

report() {
    local label=$1 r=$2 secs
    secs=$(awk -v us="$(field "$r" duration_us)" 'BEGIN{print us / 1e6}')
    awk -v l="$label" -v ok="$(field "$r" ok)" -v s="$secs" -v p50="$(field "$r" p50_us)" \
        -v p99="$(field "$r" p99_us)" -v p999="$(field "$r" p999_us)" -v mx="$(field "$r" max_us)" \
        -v bad="$(( $(field "$r" non2xx) + $(field "$r" socket_errors) + $(field "$r" timeouts) ))" \
        -v mb="$(field "$r" machine_busy)" -v sc="$(field "$r" server_cpu)" -v wc="$(field "$r" wrk_cpu)" \
        -v l1="$(field "$r" load1)" -v su="$(field "$r" server_us)" -v pu="$(field "$r" pg_us)" \
        'BEGIN{printf "%-30s %10.0f %8.2f %8.2f %8.2f %8.1f %6d   %4s%% %4s%% %4s%%  %5s %7s %6s\n",
               l, ok / s, p50 / 1000, p99 / 1000, p999 / 1000, mx / 1000, bad, mb, sc, wc, l1, su, pu}'
}
printf '%-30s %10s %8s %8s %8s %8s %6s   %5s %5s %5s  %5s %7s %6s\n' "run" "2xx/s" "p50 ms" "p99 ms" \
    "p99.9 ms" "max ms" "errors" "busy" "server" "wrk" "load1" "srv us" "pg us"
report "order-sign, $ORDERS orders" "$sign"
report "GET /healthz (HTTP ceiling)" "$noop"
echo "(busy: whole machine, % of one core; server / wrk: their CPU time over the run; load1 at the end;"
echo " srv us / pg us: CPU time of the server / of its PostgreSQL backends per 2xx answer, in microseconds)"
echo "server RSS: peak (VmHWM) $((hwm / 1024)) MiB after the order-sign run ($((hwm_noop / 1024)) MiB after healthz), now $((rss / 1024)) MiB"
echo "audit: $landed rows landed in decisions; the server answered $served order-sign requests 2xx" \
    "(wrk saw $(field "$sign" ok) complete before it stopped)"
# Every 2xx answer must have its row (the answer waits for the commit). When wrk stops it hangs
# up on up to CONNECTIONS requests in flight: those are decided and recorded, but never answered,
# so rows may exceed the 2xx answers by at most that many.
if [ "$landed" -lt "$served" ] || [ "$((landed - served))" -gt "$CONNECTIONS" ]; then
    echo "MISMATCH: rows in decisions do not match the 2xx answers" >&2
    exit 1
fi
echo "audit check: every 2xx answer has its row; $((landed - served)) rows are requests wrk hung up on when it stopped"
