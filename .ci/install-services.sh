#!/usr/bin/env bash
# Installs what the postgres-, browser- and labelstudio-marked tests need, and nothing when it is
# already there: Debian's PostgreSQL server (initdb, pg_ctl) and chromium, the Python playwright
# package in the project's venv (it drives /usr/bin/chromium; no browser download, never
# `playwright install`), and the Label Studio server from PyPI in a venv of its own
# ($LABEL_STUDIO_VENV, default .venv-labelstudio: its pins conflict with the project's).
# Idempotent; needs root (or sudo) only when a Debian package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
LABEL_STUDIO_VENV="${LABEL_STUDIO_VENV:-.venv-labelstudio}"

# Label Studio first: it needs no root, so a machine without sudo still gets it. A failed install
# never fails the script (the labelstudio tests then skip, saying why).
if [ ! -x "$LABEL_STUDIO_VENV/bin/label-studio" ]; then
  spec="label-studio${LABEL_STUDIO_VERSION:+==$LABEL_STUDIO_VERSION}"
  echo "install-services: installing $spec (PyPI) into $LABEL_STUDIO_VENV"
  if ! { [ -x "$LABEL_STUDIO_VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$LABEL_STUDIO_VENV"; }; then
    echo "install-services: cannot create $LABEL_STUDIO_VENV with ${PYTHON:-python3} -m venv" \
         "(python3-venv missing?); the labelstudio tests will skip" >&2
  elif ! "$LABEL_STUDIO_VENV/bin/python" -m pip install --quiet --upgrade pip "$spec"; then
    echo "install-services: pip could not install $spec into $LABEL_STUDIO_VENV" \
         "(offline, or no wheel for this Python?); the labelstudio tests will skip" >&2
  fi
fi

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
     "$(chromium --version 2>/dev/null || echo 'no chromium')," \
     "$([ -x "$LABEL_STUDIO_VENV/bin/label-studio" ] && echo "label-studio in $LABEL_STUDIO_VENV" || echo 'no label-studio')"
