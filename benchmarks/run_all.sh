#!/usr/bin/env bash
# The cost benchmarks of docs/COST.md, in one command: SR-RCNN R50-FPN against Mask
# R-CNN R50-FPN with the default config (all four measurements and the breakdown), then the
# thesis-exact config (G on every sampled RoI in training; its test mode "sr" is the
# default run's infer_with_G_ratio).
#   bash benchmarks/run_all.sh [OUT_DIR]          (default: output/benchmarks)
# On the CPU: 512 px images, 2 per iteration; on a CUDA GPU: 800 px (COCO's test size), 2 per
# iteration, more iterations. Each log ends with the name=value ratio line. The committed logs
# (copies of these, named by machine) are in docs/results/benchmarks/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-output/benchmarks}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
if "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  ARGS=(--size 800 --batch 2 --iters 10 --warmup 3 --images 30)
else
  ARGS=(--size 512 --batch 2 --iters 5 --warmup 2 --images 10)
fi
for name in default thesis; do
  cfg=configs/sr_rcnn_R_50_FPN_3x.yaml what=train,memory,inference,breakdown
  # the thesis config's inference ("sr" mode) is measured with the default config's
  [ $name = thesis ] && cfg=configs/sr_rcnn_R_50_FPN_3x_thesis.yaml what=train,memory,breakdown
  start=$SECONDS
  "$PY" benchmarks/cost.py --config-file $cfg --what $what "${ARGS[@]}" 2>"$OUT/cost_$name.err" \
    | tee "$OUT/cost_$name.log"
  echo "($name: $((SECONDS - start)) s; log $OUT/cost_$name.log)"
done
