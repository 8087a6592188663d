#!/usr/bin/env bash
# Issue 12's runs in one resumable command (docs/SMALL_OBJECTS.md). On each embedded variant
# (checker: fine detail erased at 0.5x; soft: degraded but partly kept), every seed of
#   double: Mask R-CNN, its 2x-input ceiling, SR-RCNN full_to_double (add-on, its control without
#           adversarial terms, add-on with the head also on real 2x features, head only, shared,
#           imitation, G as a task-only reader of small RoIs, the same with their pixels), in
#           test modes hr, size_aware and size_aware_x2 (the oracle for G), and
#           tools/x2_oracle.py on Mask R-CNN's weights
#   causes: Mask R-CNN, the thesis pair and its one-key cause variants (configs/evidence/)
#   finetune: Mask R-CNN and three SR-RCNN configs, every run fine-tuned from one Mask R-CNN per
#           seed pretrained for 600 iterations on the separate _pretrain split
#   long:   the same four from scratch for 2 400 iterations (the budget sweep's long end)
# through tools/run_evidence.py, the two variants side by side. Reports:
# OUT/<variant>/<group>/RESULTS.md (finetune and long: their runs there too, being another
# protocol). Finished runs are skipped on a rerun.
#
#   bash tools/small_object_evidence.sh OUT [--groups double,causes,finetune,long] [--minutes M] [--tiny]
#       [harness flags]
#   e.g. on a GPU machine: ... OUT --device cuda --jobs 4 --num-workers 2
#
# --minutes M stops starting new work after M minutes (the runs in flight are killed), writes
# the reports from what finished and deletes checkpoints of evaluated runs (what a short lease
# on a machine can bring back). --tiny: the tiny datasets (a smoke test). Harness flags
# (--seeds, --budget, --jobs, --device, ...) pass on; KEY VALUE overrides go last.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: $0 OUT [--groups double,causes] [--minutes M] [run_evidence.py flags]}
shift
PY=${PYTHON:-.venv/bin/python}
GROUPS_WANTED=double,causes
MINUTES=0
SPLITS=(train val pretrain)
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --groups) GROUPS_WANTED=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --tiny) SPLITS=(tiny_train tiny_val tiny_pretrain); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
declare -A VARIANTS=(
  [double]=mask_rcnn,mask_rcnn_x2_input,sr_rcnn_double_addon,sr_rcnn_double_addon_x2head,sr_rcnn_double_addon_no_adv,sr_rcnn_double_head,sr_rcnn_double,sr_rcnn_double_imitate,sr_rcnn_double_reader,sr_rcnn_double_texture
  [causes]=mask_rcnn,sr_rcnn_thesis_cfg,sr_rcnn_thesis_g_gn,sr_rcnn_thesis_g_no_norm,sr_rcnn_thesis_full_box_level,sr_rcnn_thesis_sum_per_roi,sr_rcnn_thesis_d_sr_0,sr_rcnn_thesis_d_sr_half
  [finetune]=mask_rcnn,sr_rcnn_double_addon,sr_rcnn_double_head,sr_rcnn_thesis_cfg
  [long]=mask_rcnn,sr_rcnn_double_addon,sr_rcnn_double_head,sr_rcnn_thesis_cfg
)
declare -A DATA=([checker]=srrcnn_shapes [soft]=srrcnn_shapes_soft)
deadline=$((SECONDS + MINUTES * 60))

harness() {  # data group [extra flags]: one harness command
  local data=$1 group=$2 runs=$OUT/$1 protocol=()
  shift 2
  case $group in
    finetune) runs=$OUT/$data/$group
              protocol=(--pretrain-budget 600 --pretrain-dataset "${DATA[$data]}_${SPLITS[2]}") ;;
    long) runs=$OUT/$data/$group; protocol=(--budget 2400) ;;
    double) protocol=(--modes hr,size_aware,size_aware_x2) ;;  # "sr" collapses (measured)
  esac
  "$PY" tools/run_evidence.py --variants "${VARIANTS[$group]}" --out "$runs" ${protocol[@]+"${protocol[@]}"} \
    --docs-dir "$OUT/$data/$group" --train-dataset "${DATA[$data]}_${SPLITS[0]}" \
    --test-dataset "${DATA[$data]}_${SPLITS[1]}" "$@" ${ARGS[@]+"${ARGS[@]}"}
}

status=0
for group in ${GROUPS_WANTED//,/ }; do
  [ -n "${VARIANTS[$group]:-}" ] || { echo "unknown group $group (double, causes, finetune, long)" >&2; exit 2; }
  pids=()
  for data in checker soft; do
    mkdir -p "$OUT/$data"
    # own process group, so that the harness and its training processes stop together
    setsid bash -c "$(declare -f harness); $(declare -p VARIANTS DATA SPLITS ARGS); OUT='$OUT' PY='$PY'
      harness $data $group && if [ $group = double ]; then  # the oracle on Mask R-CNN's weights
        '$PY' tools/x2_oracle.py --out '$OUT/$data' --variants mask_rcnn --write '$OUT/$data/double/x2_oracle.md'
      fi" >"$OUT/$data/$group.log" 2>&1 &
    pids+=($!)
  done
  if [ "$MINUTES" -gt 0 ]; then
    while [ $SECONDS -lt $deadline ] && kill -0 "${pids[@]}" 2>/dev/null; do sleep 5; done
    # out of time: stop the harnesses and their training processes
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  fi
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  [ "$MINUTES" -gt 0 ] && [ $SECONDS -ge $deadline ] && break
done
for data in checker soft; do
  for group in ${GROUPS_WANTED//,/ }; do
    [ -d "$OUT/$data" ] && harness $data $group --report-only >/dev/null 2>&1 || true
  done
done
if [ "$MINUTES" -gt 0 ]; then  # evaluated runs need no checkpoint
  find "$OUT" -name eval_results.json -path '*/eval/*' | while read -r f; do
    run=$(dirname "$(dirname "$f")")
    rm -f "$run"/*.pth "$run"/last_checkpoint
  done
fi
exit $status
