#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests, and prints the DATABASE_URL to use.
#
# Order of preference: an explicit DATABASE_URL that answers; the machine's server on
# 127.0.0.1:5432 (started with pg_ctlcluster when installed but stopped); a private cluster in
# target/pg-test (initdb once, as the postgres user when run as root); and, when no PostgreSQL
# binaries exist at all, Debian's `postgresql` package installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "ensure-postgres: $*" >&2; }

answers() { # $1 = host-or-socket-dir, $2 = port
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$1" -p "$2" -t 3
}

if [ -n "${DATABASE_URL:-}" ]; then
  echo "$DATABASE_URL"
  exit 0
fi

find_bin_dir() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if ! command -v pg_isready >/dev/null 2>&1 && [ -z "$(find_bin_dir)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no PostgreSQL binaries: installing Debian's postgresql package"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    log "PostgreSQL is not installed: install the 'postgresql' package or set DATABASE_URL"
    exit 1
  fi
fi
export PATH="$(find_bin_dir):$PATH"

if answers 127.0.0.1 5432; then
  echo "postgres://postgres@127.0.0.1:5432/postgres"
  exit 0
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting the machine's cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 30); do answers 127.0.0.1 5432 && break; sleep 1; done
  if answers 127.0.0.1 5432; then
    echo "postgres://postgres@127.0.0.1:5432/postgres"
    exit 0
  fi
fi

# A private cluster for the tests, trust auth on a Unix socket and 127.0.0.1:55432.
data="$PWD/target/pg-test/data"
sock="$PWD/target/pg-test"
port=55432
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
mkdir -p "$sock"
[ "$(id -u)" = 0 ] && chown postgres "$sock"
if [ ! -f "$data/PG_VERSION" ]; then
  log "initdb a private test cluster in $data"
  "${as_pg[@]}" initdb -D "$data" -U postgres --auth=trust -E UTF8 >&2
fi
if ! answers "$sock" "$port"; then
  "${as_pg[@]}" pg_ctl -D "$data" -l "$sock/log" -w \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"
