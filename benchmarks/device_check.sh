#!/usr/bin/env bash
# One-shot GPU check for posefast: build the CUDA extension, run the CUDA op tests, benchmark.
#
#   bash benchmarks/device_check.sh            # from the repository root, on the GPU machine
#
# Sized for one device call (the tool's limit is 600 s): every stage's time limit is cut to
# what is left before DEADLINE_S (default 570 s after the start), most important first.
# $OUT (default ./device_out) holds two files at every moment (benchmarks/device_pack.sh):
# device_check.log (this script's whole output, with the time of each stage) and
# device_check_results.tar.gz, rewritten every 20 s and at exit, so a run cut short still
# brings back what it measured. In the tarball:
#   env.txt                   nvidia-smi, python/torch/nvcc versions
#   build.log                 the extension build (TORCH_CUDA_ARCH_LIST=9.0, FORCE_CUDA=1)
#   pytest_cuda.log/.xml      the ops tests with the cuda param (pytest -m cuda)
#   bench_cuda_nocompile.*    every op/size/dtype: eager reference vs posefast, and the fused
#                             pose loss vs the unfused ops vs eager (B=128; ~1-2 min)
#   bench_data_train.*        PoseLoader samples/s (256x192, from the crop cache) and training
#                             images/s, end to end vs model-only (benchmarks/run.py --data --train)
#   bench_cuda.*              float32 op rows with the torch.compile reference too (last: the
#                             compiles are slow; the JSON is written after every row)
#
# Knobs: PYTHON (default python3), MAX_JOBS (16), SKIP_BUILD=1 (reuse an in-place build),
# DEADLINE_S (570), DEVICE=cpu (dry run of the same logic on a machine without a GPU: CPU
# build, quick CPU benchmark; the cuda tests are then all skipped).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
exec > >(tee -a "$OUT/device_check.log") 2>&1
# shellcheck source=benchmarks/device_pack.sh
source benchmarks/device_pack.sh
WORK=$(mktemp -d)
start_packing "$WORK" "$OUT/device_check_results.tar.gz"

status=0

stage "environment"
{
  date -Is
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
  command -v nvcc >/dev/null && nvcc --version | tail -2
  lscpu 2>/dev/null | grep -E "Model name|^CPU\(s\)"
  git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null | head -20
} > "$WORK/env.txt" 2>&1
cat "$WORK/env.txt"

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  stage "build"
  OUT="$WORK" BUILD_TIMEOUT="$(stage_limit 300)" PYTHON="$PY" DEVICE="$DEVICE" bash benchmarks/device_build.sh || exit 1
fi

stage "import check"
if ! "$PY" - <<EOF
import torch, posefast.ops  # noqa: F401
names = ("render_heatmaps", "soft_argmax_forward", "soft_argmax_backward", "pck_counts")
print("torch.ops.posefast has:", [n for n in names if hasattr(torch.ops.posefast, n)])
if "$DEVICE" == "cuda":
    assert torch.cuda.is_available(), "no visible CUDA device"
    x = torch.randn(2, 17, 64, 48, device="cuda")
    print("soft_argmax on cuda:", posefast.ops.soft_argmax(x).shape)
EOF
then
  echo "IMPORT CHECK FAILED"
  exit 1
fi

stage "CUDA op tests (pytest -m cuda tests/test_ops_*.py)"
timeout "$(stage_limit 180)" "$PY" -m pytest -q -m cuda tests/test_ops_*.py --junitxml="$WORK/pytest_cuda.xml" \
  -p no:cacheprovider > "$WORK/pytest_cuda.log" 2>&1
rc=$?
tail -25 "$WORK/pytest_cuda.log"
echo "pytest exit code: $rc"
[ $rc -ne 0 ] && status=1

if [ "$DEVICE" = "cuda" ]; then
  NOCOMPILE_ARGS=(--device cuda --no-compile --budget 0.4)
  COMPILE_ARGS=(--device cuda --dtypes float32 --budget 0.4
                --ops render,soft_argmax,soft_argmax_bwd,soft_argmax_fwd_bwd,pck_counts)
  DATA_ARGS=(--device cuda --data-only --train --data-images 512 --data-batch 256 --data-batches 16)
else
  NOCOMPILE_ARGS=(--device cpu --quick)
  COMPILE_ARGS=(--device cpu --quick --ops pck_counts)
  DATA_ARGS=(--device cpu --data-only --data-images 32 --data-batch 8 --data-batches 2)
fi

stage "benchmark, eager vs posefast: benchmarks/run.py ${NOCOMPILE_ARGS[*]}"
timeout "$(stage_limit 150)" "$PY" benchmarks/run.py "${NOCOMPILE_ARGS[@]}" --json "$WORK/bench_cuda_nocompile.json" \
  2>&1 | tee "$WORK/bench_cuda_nocompile.txt"
rc=$?
echo "benchmark exit code: $rc"
[ $rc -ne 0 ] && status=1

stage "data loader and training throughput: benchmarks/run.py ${DATA_ARGS[*]}"
timeout "$(stage_limit 120)" "$PY" benchmarks/run.py "${DATA_ARGS[@]}" --json "$WORK/bench_data_train.json" 2>&1 | tee "$WORK/bench_data_train.txt"
rc=$?
echo "data/train benchmark exit code: $rc"
[ $rc -ne 0 ] && status=1

stage "benchmark with torch.compile: benchmarks/run.py ${COMPILE_ARGS[*]}"
timeout "$(stage_limit 330)" "$PY" benchmarks/run.py "${COMPILE_ARGS[@]}" --json "$WORK/bench_cuda.json" 2>&1 | tee "$WORK/bench_cuda.txt"
rc=$?
echo "benchmark exit code: $rc (124 = hit its time limit; rows so far are in bench_cuda.json)"
[ $rc -ne 0 ] && status=1

stage "done (status $status); results in $OUT/device_check_results.tar.gz (packed at exit)"
exit $status
