#!/usr/bin/env bash
# A short GPU lease in one command: what only a GPU can measure first, then evidence runs until
# a deadline. In order:
#   1. the inference benchmark (benchmarks/cost.py --what inference,generator at 800 px), G's pass
#      eager, eager with G's output constant (--g-output constant), under torch.compile
#      (inductor, reduce-overhead), then its profiler
#      tables (--what profile); nothing else runs meanwhile except the datasets being generated;
#   2. tools/gpu_check.sh (training with AMP off and on, then eval-only) and, side by side,
#      tools/run_evidence.py with the given flags (--device cuda added), stopped at the deadline;
#   3. the harness's report of what finished, and every run's small result files packed into
#      OUT/runs.tar.gz (checkpoints stay behind).
# Usage (after tools/setup_env.sh, or with PYTHON pointing at an interpreter that has detectron2):
#   bash tools/gpu_session.sh OUT SECONDS [run_evidence.py flags]
# SECONDS bounds the whole script. OUT gets few files (a lease brings back at most 8):
# bench_eager.log, bench_compile.log, bench_profile.log, gpu_check.log, evidence.log, RESULTS.md,
# runs.tar.gz.
# BENCH_ARGS replaces the benchmark's size and image counts (e.g. for a smoke test on the CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT SECONDS [run_evidence.py flags]}
SECONDS_TOTAL=${2:?usage: $0 OUT SECONDS [run_evidence.py flags]}
shift 2
PY=${PYTHON:-.venv/bin/python}
export PYTHON=$PY
WORK=${GPU_SESSION_WORK:-output/gpu_session}
export SRRCNN_DATASETS=${SRRCNN_DATASETS:-datasets}
BENCH=(${BENCH_ARGS:---size 800 --images 30 --warmup 3})
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
log() { echo "[gpu_session $(date +%T) +${SECONDS}s] $*"; }
left() { echo $((SECONDS_TOTAL - SECONDS)); }

log "start; $("$PY" -c 'import torch; print("torch", torch.__version__, "| cuda", torch.cuda.is_available())')"
"$PY" -c 'import detectron2, srrcnn' || { log "detectron2 or srrcnn does not import"; exit 1; }

# the datasets the runs read, generated in the background (one process per split)
gen_pids=()
for name in srrcnn_shapes_tiny_train srrcnn_shapes_tiny_val srrcnn_shapes_train srrcnn_shapes_val; do
  "$PY" -c "from srrcnn.data import ensure_generated, register_default_datasets as r; r(); ensure_generated('$name')" \
    >"$WORK/generate_$name.log" 2>&1 &
  gen_pids+=($!)
done

# 1. inference benchmark, G eager; eager with G's output constant (the setting of the
#    measurements before 2026-12-04: its NMS gets more boxes); compiled (the warm-up images compile)
for kind in eager constant compile; do
  what=inference,generator; opts=()
  [ $kind = constant ] && what=inference && opts=(--g-output constant)
  [ $kind = compile ] && opts=(MODEL.SRRCNN.TEST_COMPILE.BACKEND inductor MODEL.SRRCNN.TEST_COMPILE.MODE reduce-overhead)
  limit=$(( $(left) / 4 )); [ $limit -gt 240 ] && limit=240
  log "benchmark ($kind), at most ${limit}s"
  timeout "$limit" "$PY" benchmarks/cost.py --what $what --device "$DEVICE" \
    --dataset srrcnn_shapes_tiny_train "${BENCH[@]}" ${opts[@]+"${opts[@]}"} >"$OUT/bench_$kind.log" 2>&1
  log "benchmark ($kind) rc=$?: $(tail -1 "$OUT/bench_$kind.log")"
done
# where the time at test goes: profiler tables per model and test mode (G eager)
limit=$(( $(left) / 4 )); [ $limit -gt 120 ] && limit=120
log "profile, at most ${limit}s"
timeout "$limit" "$PY" benchmarks/cost.py --what profile --device "$DEVICE" --dataset srrcnn_shapes_tiny_train \
  "${BENCH[@]}" --images 10 >"$OUT/bench_profile.log" 2>&1
log "profile rc=$?"

for p in "${gen_pids[@]}"; do wait "$p" || log "dataset generation failed: see $WORK/generate_*.log"; done

# 2. gpu_check and the evidence runs side by side, until 30 s before the deadline
bash tools/gpu_check.sh "$WORK/gpu_check" >"$OUT/gpu_check.log" 2>&1 &
check_pid=$!
status=0
if [ $# -gt 0 ]; then
  log "evidence runs: $*"
  setsid "$PY" tools/run_evidence.py --device "$DEVICE" --out "$WORK/runs" --docs-dir "$WORK/report" "$@" \
    >"$OUT/evidence.log" 2>&1 &
  ev_pid=$!
  while kill -0 $ev_pid 2>/dev/null && [ "$(left)" -gt 30 ]; do sleep 5; done
  if kill -0 $ev_pid 2>/dev/null; then
    log "deadline: stopping the evidence runs"; kill -TERM -- "-$ev_pid" 2>/dev/null; status=1
  fi
  wait $ev_pid || status=1
  "$PY" tools/run_evidence.py --report-only --device "$DEVICE" --out "$WORK/runs" --docs-dir "$WORK/report" "$@" >/dev/null 2>&1
  cp "$WORK/report/RESULTS.md" "$OUT/" 2>/dev/null
  (cd "$WORK" && find runs -name run.json -o -name metrics.json -o -name times.json \
     -o -name eval_results.json -o -name device.txt | tar czf - -T -) >"$OUT/runs.tar.gz"
fi
while kill -0 $check_pid 2>/dev/null && [ "$(left)" -gt 10 ]; do sleep 2; done
kill $check_pid 2>/dev/null
wait $check_pid || status=1
for f in "$WORK"/gpu_check/*.log; do [ -f "$f" ] && { echo "== tail of $f"; tail -15 "$f"; } >>"$OUT/gpu_check.log"; done
log "gpu_check: $(grep -h 'AMP=\|eval-only' "$OUT/gpu_check.log" | tr '\n' ' ')"
log "done, status $status"
exit $status
