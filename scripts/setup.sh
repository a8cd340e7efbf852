#!/usr/bin/env bash
# Shared set-up for scripts/demo and scripts/test: idempotent, safe to run again.
#   setup.sh [--dev]   create .venv, install mailbot (and the test tools with --dev),
#                      and with --dev the Debian packages the tests need.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAILBOT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_install() {
  # Install only the Debian packages that are missing; one apt-get update per run at most.
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

dev=0
[ "${1:-}" = "--dev" ] && dev=1

if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  log "Python 3.11 or newer is needed (found: $("$PY" --version 2>&1))"; exit 2
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last install (a stamp inside the venv).
stamp="$VENV/.mailbot-installed-$dev"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  log "installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  if [ $dev = 1 ]; then
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  else
    "$VENV/bin/python" -m pip install -q -e "$ROOT"
  fi
  touch "$stamp"
fi

if [ $dev = 1 ]; then
  # Real servers for the tests: dovecot (IMAP) and PostgreSQL 15's server binaries; Debian's
  # chromium for the web page's browser tests (Playwright drives it; no browser download).
  pkgs=(dovecot-imapd chromium)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || pkgs+=(postgresql-15)
  command -v setpriv >/dev/null 2>&1 || pkgs+=(util-linux)
  apt_install "${pkgs[@]}"
fi
