#!/usr/bin/env bash
# Builds posefast._C in place for the machine it runs on (the GPU machine's own Python and
# nvcc), logging to $OUT/build.log; exits non-zero with the log's tail if the build fails.
# Used by benchmarks/device_check.sh and scripts/device_coco.sh. Knobs: PYTHON (python3),
# DEVICE (cuda: FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST default 9.0, CUDA_HOME from nvcc),
# MAX_JOBS (16), BUILD_TIMEOUT (seconds, 480).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if [ "${DEVICE:-cuda}" = "cuda" ]; then
  if [ -z "${CUDA_HOME:-}" ]; then
    if command -v nvcc >/dev/null; then CUDA_HOME="$(dirname "$(dirname "$(command -v nvcc)")")"; else CUDA_HOME=/usr/local/cuda; fi
  fi
  export CUDA_HOME FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
fi
export MAX_JOBS="${MAX_JOBS:-16}"
echo "build (CUDA_HOME=${CUDA_HOME:-none} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-none} MAX_JOBS=$MAX_JOBS)"
# a copied tree may carry another Python's build; build in place for this one
rm -f posefast/_C.*.so
if ! timeout "${BUILD_TIMEOUT:-480}" "$PY" setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
  echo "BUILD FAILED (tail of build.log):"
  tail -60 "$OUT/build.log"
  exit 1
fi
tail -3 "$OUT/build.log"
