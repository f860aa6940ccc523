#!/usr/bin/env bash
# Makes sure a headless Chromium is installed for the real-browser test (tests/browser.rs), and
# prints the path of its binary. CI runs on a clean checkout: as root with apt-get, Debian's
# `chromium` package is installed when missing; otherwise set ORDERGUARD_CHROMIUM to a binary.
set -euo pipefail

log() { echo "ensure-chromium: $*" >&2; }

if [ -n "${ORDERGUARD_CHROMIUM:-}" ] && [ -x "$ORDERGUARD_CHROMIUM" ]; then
  echo "$ORDERGUARD_CHROMIUM"
  exit 0
fi

find_chromium() {
  for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no Chromium: installing Debian's chromium package"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >&2
  else
    log "Chromium is not installed: install the 'chromium' package or set ORDERGUARD_CHROMIUM"
    exit 1
  fi
fi
find_chromium
