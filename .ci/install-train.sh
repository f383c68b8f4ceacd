#!/usr/bin/env bash
# Installs the project's `train` extra (torch, transformers, trl, ...) into the venv, for the DPO
# policy candidate and its slow tests; does nothing when `import trl, torch` already works.
# torch is pinned in pyproject.toml to a release with a CPU build on the project's machines, so
# this does not pull a multi-GB CUDA build. Usage: VENV=.venv bash .ci/install-train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "install-train: no venv at $VENV (run 'make venv' first)" >&2
  exit 1
fi
if "$VENV/bin/python" -c "import trl, torch" >/dev/null 2>&1; then
  echo "install-train: the train extra is already installed in $VENV"
  exit 0
fi
echo "install-train: installing the train extra into $VENV"
started=$SECONDS
"$VENV/bin/python" -m pip install --quiet -e '.[train]'
"$VENV/bin/python" -c "import trl, torch; print('install-train: trl', trl.__version__, 'torch', torch.__version__)"
echo "install-train: done in $((SECONDS - started))s"
