#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a GPU session: puts into the repository what the
# device call must carry (both folders are git-ignored; name them in the call's `carry`):
#   .carry/coco_kpts_small/   a real copy of the downscaled COCO subset (49 MB; the GPU machine
#                             cannot see ../shared, and a symbolic link would travel as a link)
#   .whl/                     a pycocotools wheel for the GPU machine's Python (3.12), which
#                             lacks it and cannot download
#   .carry/fallback_csrc/     csrc/ as of FALLBACK_COMMIT (default 8989eb8, the last kernels
#                             whose CUDA tests passed on a GPU) and a COMMIT file: what
#                             benchmarks/device_check.sh builds and measures if this tree's
#                             kernels fail their tests
# Then: device tool run, command `bash benchmarks/device_check.sh`, carry [".carry", ".whl"].
# Knobs: SHARED (../shared/data), PY_VERSION (3.12), PYTHON (python3, any Python with pip),
# FALLBACK_COMMIT (8989eb8; move it on when a later commit's kernels pass on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
src="${SHARED:-../shared/data}/coco_kpts_small"
[ -f "$src/train.json" ] || { echo "no $src/train.json"; exit 1; }
rm -rf .carry/coco_kpts_small
mkdir -p .carry
cp -rL "$src" .carry/coco_kpts_small
fallback="${FALLBACK_COMMIT:-8989eb8}"
rm -rf .carry/fallback_csrc
mkdir -p .carry/fallback_csrc
git archive "$fallback" csrc | tar -x -C .carry/fallback_csrc
git rev-parse --short "$fallback" > .carry/fallback_csrc/COMMIT
rm -rf .whl
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl pycocotools
du -sh .carry .whl
ls .whl
