#!/usr/bin/env bash
# The COCO accuracy runs (docs/RESULTS_COCO.md) on the GPU machine, in one call:
#   bash scripts/device_coco.sh          # from the repository root, on the GPU machine
# Needs, carried into the repository (both ignored by git; scripts/device_prepare.sh makes them):
#   .carry/coco_kpts_small/   cp -r ../shared/data/coco_kpts_small .carry/   (49 MB; a real
#                             copy, not a link)
#   .whl/                     a pycocotools wheel for the machine's Python (COCO AP), e.g.
#     pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl pycocotools
# It builds the extension in place unless SKIP_BUILD=1 (right after benchmarks/device_check.sh
# on the same warm machine the build is still there), then trains + evaluates the RUNS in
# order (default: "best topdown_unet topdown_simple image_unet image_simple ablations"; names
# as scripts/coco_runs.sh takes them) with EXTRA appended to every training command (default:
# just --device; the sixth session's GPU runs used EXTRA="--input_size 256,192 --batch_size 128
# --lr 4e-3 --epochs 60 --device cuda"), while time is left before DEADLINE_S
# (default 570 s after the start: one device call). Each run's training gets
# --time_limit_min = what is left minus EVAL_S (60 s) for its evaluation: it keeps the epochs
# that fit and ends its cosine schedule on the last, so the first run may take all the time.
# A run that would start with under MIN_RUN_S (90) seconds left is skipped.
# benchmarks/device_check.sh runs this as its coco stage (RUNS=best).
# $OUT holds two files at every moment (benchmarks/device_pack.sh): device_coco.log and
# coco_runs.tar.gz (every run's metrics.jsonl, eval.json, train/eval logs, pictures and
# tables.md; no checkpoints), rewritten every 20 s and at exit.
# DEVICE=cpu runs the same steps on a CPU (a dry run: pass a tiny EXTRA).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
DATA="${DATA_DIR:-.carry/coco_kpts_small}"
RUNS="${RUNS:-best topdown_unet topdown_simple image_unet image_simple ablations}"
export EXTRA="${EXTRA:---device $DEVICE}"  # the configs as written (configs/coco_best.yaml: its < 5 min claim)
exec > >(tee -a "$OUT/device_coco.log") 2>&1
# shellcheck source=benchmarks/device_pack.sh
source benchmarks/device_pack.sh
WORK=$(mktemp -d)
start_packing "$WORK" "$OUT/coco_runs.tar.gz"

# benchmarks/device_check.sh has installed them already when it runs this as its coco stage
"$PY" -c "import pycocotools" 2>/dev/null || install_wheels "${WHEELS:-.whl}"
"$PY" -c "import pycocotools" 2>/dev/null \
  || { echo "no pycocotools: the data and evaluation need it (scripts/device_prepare.sh puts a wheel in .whl/)"; exit 1; }
[ -f "$DATA/train.json" ] || { echo "no dataset at $DATA (scripts/device_prepare.sh copies it into .carry/)"; exit 1; }

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  stage "build"
  OUT="$WORK" BUILD_TIMEOUT="$(stage_limit 300)" PYTHON="$PY" DEVICE="$DEVICE" bash benchmarks/device_build.sh || exit 1
fi

status=0
for run in $RUNS; do
  if [ "$(time_left)" -lt "${MIN_RUN_S:-90}" ]; then
    stage "skipped: $run (under ${MIN_RUN_S:-90} s left)"
    continue
  fi
  # the training stops after the epoch that would overrun this budget, its schedule shortened
  # to end there, and leaves EVAL_S for the evaluation and the tables
  budget_min=$(awk -v s="$(( $(time_left) - ${EVAL_S:-60} ))" 'BEGIN { printf "%.2f", (s > 30 ? s : 30) / 60 }')
  stage "run: $run (EXTRA=$EXTRA --time_limit_min $budget_min, data $DATA)"
  # coco_runs.sh trains, evaluates, then rewrites tables.md over every run in $WORK/runs
  EXTRA="$EXTRA --time_limit_min $budget_min" DATA_DIR="$DATA" PYTHON="$PY" timeout "$(stage_limit 100000)" \
    bash scripts/coco_runs.sh "$WORK/runs" "$run" || { echo "run $run: exit code $? (124 = out of time)"; status=1; }
done
stage "done (status $status); results in $OUT/coco_runs.tar.gz (packed at exit)"
exit $status
