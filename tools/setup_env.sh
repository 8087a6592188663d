#!/usr/bin/env bash
# One-command setup for SR-RCNN (README, "Setup").
#
#   bash tools/setup_env.sh            # creates/updates .venv/ at the repo root
#   bash tools/setup_env.sh --active   # installs into the active virtualenv ($VIRTUAL_ENV)
#
# Steps: (1) python environment, (2) pinned dependencies from requirements/,
# (3) detectron2, only if `import detectron2` fails (PyPI's sal-detectron2 wheel,
# repacked to a pure-Python wheel; an existing detectron2 is left alone),
# (4) this project, editable. A second run finds everything in place and changes nothing.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
D2_WHEEL_SPEC="sal-detectron2==0.7.2"
CACHE="$ROOT/.cache/setup"

step() { echo "[setup] $*"; }
fail() { echo "[setup] FAILED at step '$1': $2" >&2; exit 1; }
# the last non-blank line of a log (pip ends some errors, e.g. OSError, with a blank line)
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }
# run a command quietly, keep its log; on failure print where the log is
quiet() {
  local name=$1; shift
  local log="$CACHE/${name// /_}.log"
  "$@" >"$log" 2>&1 || fail "$name" "see $log (last line: $(last_line "$log"))"
}
# the same for a step that downloads: one more try after 15 s (a registry's hiccup)
quiet_retry() {
  local name=$1; shift
  local log="$CACHE/${name// /_}.log"
  "$@" >"$log" 2>&1 && return 0
  step "$name failed ($(last_line "$log")); trying once more in 15 s"
  sleep 15
  quiet "$name" "$@"
}
# the install needs ~6 GB (torch and its CUDA libraries) under the checkout and pip's temp dir
need_disk() {
  local dir free_gb
  for dir in "$ROOT" "${TMPDIR:-/tmp}"; do
    free_gb=$(df -Pk "$dir" | awk 'NR==2 {print int($4 / 1048576)}')
    [[ "$free_gb" -ge 7 ]] || fail "$1" "only ${free_gb} GB free under $dir; the install needs ~7 GB"
  done
}
mkdir -p "$CACHE"

# 1. python environment ------------------------------------------------------------------
if [[ "${1:-}" == "--active" ]]; then
  [[ -n "${VIRTUAL_ENV:-}" ]] || fail "environment" "--active given but no virtualenv is active; activate one or drop --active"
  PY="$VIRTUAL_ENV/bin/python"
  step "using the active virtualenv $VIRTUAL_ENV"
elif [[ -n "${1:-}" ]]; then
  fail "arguments" "unknown argument '$1' (only --active is accepted)"
else
  PY="$ROOT/.venv/bin/python"
  if [[ ! -x "$PY" ]]; then
    step "creating .venv/"
    quiet "create venv" python3 -m venv "$ROOT/.venv"
  fi
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null \
  || fail "environment" "$PY is not Python >= 3.9"

PIP=("$PY" -m pip install --disable-pip-version-check -c "$ROOT/requirements/constraints.txt")

# 2+3. dependencies, and detectron2 only where it is missing --------------------------------
if "$PY" -c 'import detectron2' 2>/dev/null; then
  step "detectron2 already importable: leaving it alone"
  if "$PY" -m pip install --dry-run --no-index --disable-pip-version-check -q \
       -c requirements/constraints.txt -r requirements/requirements.txt >/dev/null 2>&1; then
    step "pinned dependencies already satisfied"
  else
    step "installing pinned dependencies"
    need_disk "dependencies"
    quiet_retry "dependencies" "${PIP[@]}" -r requirements/requirements.txt
  fi
else
  step "detectron2 missing: fetching $D2_WHEEL_SPEC and repacking it"
  rm -rf "$CACHE/d2"
  need_disk "detectron2 download"
  quiet_retry "detectron2 download" "$PY" -m pip download --disable-pip-version-check --no-deps \
    --python-version 3.10 --only-binary=:all: "$D2_WHEEL_SPEC" -d "$CACHE/d2/in"
  WHEEL=$("$PY" tools/repack_detectron2_wheel.py "$CACHE"/d2/in/*.whl "$CACHE/d2/out" 2>"$CACHE/repack.log") \
    || fail "detectron2 repack" "see $CACHE/repack.log"
  step "installing detectron2 with the pinned dependencies (one pip install, ~1-2 min)"
  quiet_retry "dependencies" "${PIP[@]}" "$WHEEL" -r requirements/requirements.txt
fi

# 4. this project, editable ----------------------------------------------------------------
if "$PY" - "$ROOT" <<'PYEOF' 2>/dev/null; then
import os, sys, srrcnn
sys.exit(0 if os.path.realpath(srrcnn.__file__).startswith(os.path.realpath(sys.argv[1])) else 1)
PYEOF
  step "srrcnn already installed editable from this checkout"
else
  step "installing srrcnn (editable)"
  quiet "project install" "$PY" -m pip install --disable-pip-version-check --no-deps \
    --no-build-isolation -e "$ROOT"
fi
quiet "import check" "$PY" -c 'import detectron2, srrcnn, torch, torchvision'
step "done: $("$PY" -c 'import torch, detectron2; print("torch", torch.__version__, "| detectron2", detectron2.__version__)')"
