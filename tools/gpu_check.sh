#!/usr/bin/env bash
# GPU check (issue: training that survives): a few SR-RCNN iterations on a CUDA machine with
# AMP off and on, through train_net.py --num-gpus 1, then an eval-only pass of the result.
# Usage (after tools/setup_env.sh): bash tools/gpu_check.sh [OUT_DIR]
# Prints one line per run: mode, exit code, seconds, and the last iteration's losses.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-output/gpu_check}
PY=${PYTHON:-.venv/bin/python}
export SRRCNN_DATASETS=${SRRCNN_DATASETS:-$OUT/datasets}
mkdir -p "$OUT"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)' || exit 1
CFG=configs/quick_schedules/sr_rcnn_R_18_FPN_shapes_cpu.yaml
COMMON=(MODEL.DEVICE cuda DATASETS.TRAIN '("srrcnn_shapes_tiny_train",)' DATASETS.TEST '("srrcnn_shapes_tiny_val",)'
        SOLVER.MAX_ITER 20 SOLVER.STEPS '(15,)' SOLVER.WARMUP_ITERS 5 SOLVER.CHECKPOINT_PERIOD 10)
status=0
for amp in False True; do
  start=$(date +%s)
  "$PY" train_net.py --config-file "$CFG" --num-gpus 1 "${COMMON[@]}" SOLVER.AMP.ENABLED $amp \
    OUTPUT_DIR "$OUT/amp_$amp" > "$OUT/amp_$amp.log" 2>&1
  rc=$?; [ $rc -eq 0 ] || status=1
  last=$(grep -o '"loss_G_content": [0-9.e+-]*\|"loss_cls_hr": [0-9.e+-]*\|"total_loss": [0-9.e+-]*' "$OUT/amp_$amp/metrics.json" 2>/dev/null | tail -3 | tr '\n' ' ')
  echo "AMP=$amp rc=$rc seconds=$(( $(date +%s) - start )) last: $last"
done
WEIGHTS="$OUT/amp_True/model_final.pth"; [ -f "$WEIGHTS" ] || WEIGHTS="$OUT/amp_False/model_final.pth"
"$PY" train_net.py --config-file "$CFG" --eval-only "${COMMON[@]}" MODEL.WEIGHTS "$WEIGHTS" \
  OUTPUT_DIR "$OUT/eval" > "$OUT/eval.log" 2>&1
rc=$?; [ $rc -eq 0 ] || status=1
echo "eval-only rc=$rc $(grep -A2 'copypaste: Task: bbox' "$OUT/eval.log" | tail -1)"
exit $status
