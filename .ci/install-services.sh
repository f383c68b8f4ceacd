#!/usr/bin/env bash
# Installs what the postgres- and browser-marked tests need, and nothing when it is already there:
# Debian's PostgreSQL server (initdb, pg_ctl) and chromium, and the Python playwright package in
# the project's venv (it drives /usr/bin/chromium; no browser download, never `playwright install`).
# Idempotent; needs root (or sudo) only when a Debian package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "install-services: not root and no sudo; missing ${missing[*]} (their tests will skip)" >&2
      exit 0
    fi
  fi
  echo "install-services: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -x "$VENV/bin/python" ]; then
  if ! "$VENV/bin/python" -c "import playwright" >/dev/null 2>&1; then
    echo "install-services: installing playwright (Python) into $VENV"
    "$VENV/bin/python" -m pip install --quiet playwright
  fi
else
  echo "install-services: no $VENV yet; playwright comes with the project's test extras" >&2
fi
echo "install-services: postgresql $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -1 | cut -d/ -f5)," \
     "$(chromium --version 2>/dev/null || echo 'no chromium')"
