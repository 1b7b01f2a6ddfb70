#!/usr/bin/env bash
# The COCO accuracy runs (docs/RESULTS_COCO.md) on the GPU machine, in one call:
#   bash scripts/device_coco.sh          # from the repository root, on the GPU machine
# Needs, carried into the repository (both ignored by git):
#   .carry/coco_kpts_small/   cp -r ../shared/data/coco_kpts_small .carry/   (49 MB)
#   .whl/                     a pycocotools wheel for the machine's Python (COCO AP), e.g.
#     pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl pycocotools
# It builds the extension in place unless SKIP_BUILD=1 (benchmarks/device_check.sh may have),
# trains + evaluates the STAGES (default: "topdown image best ablations") with EXTRA appended to
# every training command (default: the GPU schedule below; the configs are CPU-sized), and
# leaves in $OUT: device_coco.log, tables.md and coco_runs.tar.gz (each run's metrics.jsonl,
# eval.json, train/eval logs and pictures; no checkpoints).
# DEVICE=cpu runs the same steps on a CPU (a dry run: pass a tiny EXTRA).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
DATA="${DATA_DIR:-.carry/coco_kpts_small}"
STAGES="${STAGES:-topdown image best ablations}"
export EXTRA="${EXTRA:---input_size 256,192 --batch_size 128 --lr 4e-3 --epochs 40 --device $DEVICE}"
exec > >(tee -a "$OUT/device_coco.log") 2>&1
T0=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - T0 ))s] $*"; }

if ls .whl/*.whl >/dev/null 2>&1; then
  stage "install carried wheels"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c "import pycocotools" 2>/dev/null || echo "WARNING: no pycocotools: evaluation fails (carry a wheel in .whl/)"
[ -f "$DATA/train.json" ] || { echo "no dataset at $DATA (copy coco_kpts_small into .carry/)"; exit 1; }

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  stage "build"
  OUT="$OUT" PYTHON="$PY" DEVICE="$DEVICE" bash benchmarks/device_build.sh || exit 1
fi

stage "runs: $STAGES (EXTRA=$EXTRA, data $DATA)"
# shellcheck disable=SC2086
DATA_DIR="$DATA" PYTHON="$PY" bash scripts/coco_runs.sh "$OUT/runs" $STAGES
status=$?
cp "$OUT/runs/tables.md" "$OUT/tables.md" 2>/dev/null
tar -czf "$OUT/coco_runs.tar.gz" -C "$OUT" --exclude='*.pt' --exclude='predictions.json' runs && rm -rf "$OUT/runs"
stage "done (status $status)"
exit $status
