#!/usr/bin/env bash
# The GPU session for posefast in one device call: build the CUDA extension, run
# the CUDA op tests, the benchmarks, then (when the COCO copy is carried) the coco_best run
# fitted to the time that is left.
#
#   bash benchmarks/device_check.sh            # from the repository root, on the GPU machine
#
# Sized for one device call (the tool's limit is 600 s): every stage's time limit is cut to
# what is left before DEADLINE_S (default 570 s after the start), most important first.
# $OUT (default ./device_out) holds two files at every moment (benchmarks/device_pack.sh):
# device_check.log (this script's whole output, with the time of each stage) and
# device_check_results.tar.gz, rewritten every 20 s and at exit, so a run cut short still
# brings back what it measured. Stages (STAGES picks some; they run in this order):
#   tests     pytest -m cuda over tests/test_ops_*.py and the loader's CUDA test (a per-test
#             timeout where pytest-timeout is installed); if they fail, the CUDA op tests again
#             under compute-sanitizer memcheck (memcheck.log) to name the faulting kernel, and
#             the script stops there (STOP_ON_TEST_FAIL=0: go on), unless the kernels of the last
#             commit whose CUDA tests passed are carried (.carry/fallback_csrc, from
#             scripts/device_prepare.sh) and 240 s are left: then it builds those in a copy of
#             the tree (FALLBACK_TREE, /tmp/posefast_fallback), tests them, and every later stage
#             measures them (FALLBACK_KERNELS.txt, env.txt and the log say so), so a failed
#             rewrite still leaves the call with numbers; if they fail too, it stops
#   bench     every op/size/dtype: eager reference vs posefast, and the fused pose loss vs the
#             unfused ops vs eager (B=128)                            -> bench_cuda_nocompile.*
#   split     same-run A/B of the per-map kernels that split large maps into chunks (the default)
#             against one block per map (POSEFAST_CUDA_CHUNK_VECS=0), float32, at the sizes the
#             split changes: soft-argmax forward and backward at B64 256x192, the fused loss at
#             B128 256x192                             -> bench_split_{chunked,one_block,chunked_again}.*
#             (If the CUDA tests fail but pass with one block per map, the run says so and goes
#             on with POSEFAST_CUDA_CHUNK_VECS=0 instead of stopping, and skips this stage.
#             When they pass, the split kernels' tests run once more with chunks of 3 vectors.)
#   ncu       Nsight Compute on one launch of each posefast kernel (benchmarks/profile_kernels.py):
#             duration, % of peak throughput, occupancy, waves; diagnostic  -> ncu_kernels.txt
#             (and ncu_kernels_one_block.txt: the same with POSEFAST_CUDA_CHUNK_VECS=0)
#   data      PoseLoader samples/s (256x192, crop cache) against an mmpose-style DataLoader
#             (benchmarks/mmpose_style_loader.py, one worker per core) on the COCO persons of
#             .carry/coco_kpts_small (else the synthetic set), and training images/s, end to end
#             vs model-only (benchmarks/run.py --data --train)      -> bench_data_train.*
#   compile   float32 op rows with the torch.compile reference too (the JSON is written after
#             every row)                                             -> bench_cuda.*
#             The references are compiled into the inductor cache while the tests run (a
#             background run.py whose timings are thrown away), so this stage mostly times.
#   coco      scripts/device_coco.sh with RUNS=best (COCO_RUNS): configs/coco_best.yaml as written
#             (EXTRA, passed through, changes it), needs .carry/coco_kpts_small and a pycocotools
#             wheel in .whl/; last, alone on the machine, with what is left (COCO_S seconds caps
#             it): the training gets --time_limit_min fitted to it, so it ends with its schedule
#             complete and is evaluated                              -> coco/
# env.txt and build.log are in the tarball too.
#
# Knobs: PYTHON (default python3), MAX_JOBS (16), SKIP_BUILD=1 (reuse an in-place build, e.g. a
# second call on the same warm machine: SKIP_BUILD=1 STAGES=compile DEADLINE_S=<left>),
# STAGES, DEADLINE_S (570), COCO_RUNS (best), COCO_S (no cap), STOP_ON_TEST_FAIL (1), DEVICE=cpu (a
# dry run of the same logic on a machine without a GPU: CPU build, quick CPU benchmark; the cuda
# tests are then all skipped).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"  # absolute: the fallback below changes directory
FALLBACK_CSRC="${FALLBACK_CSRC:-.carry/fallback_csrc}"
[ -d "$FALLBACK_CSRC" ] && FALLBACK_CSRC="$(cd "$FALLBACK_CSRC" && pwd)"
FALLBACK_TREE="${FALLBACK_TREE:-/tmp/posefast_fallback}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
STAGES=" ${STAGES:-tests bench split ncu data compile coco} "
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/device_check.log") 2>&1
# shellcheck source=benchmarks/device_pack.sh
source benchmarks/device_pack.sh
export PACK_T0  # a nested script (the coco stage) keeps this script's deadline
WORK=$(mktemp -d)
start_packing "$WORK" "$OUT/device_check_results.tar.gz"
want() { [[ "$STAGES" == *" $1 "* ]]; }

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

install_wheels "${WHEELS:-.whl}"  # pycocotools: the loader's CUDA test and the coco stage

stage "import check"
"$PY" -c "import torch, posefast.ops; print('torch.ops.posefast loaded:', torch.ops.posefast.render_heatmaps)" \
  || { echo "IMPORT FAILED: nothing else can run"; exit 1; }
[ "$DEVICE" = "cuda" ] && { "$PY" -c "import torch; assert torch.cuda.is_available(), 'no visible CUDA device'" || exit 1; }

if [ "$DEVICE" = "cuda" ]; then
  NOCOMPILE_ARGS=(--device cuda --no-compile --budget 0.3)
  COMPILE_ARGS=(--device cuda --dtypes float32 --budget 0.3
                --ops render,soft_argmax,soft_argmax_bwd,soft_argmax_fwd_bwd,pck_counts)
  SPLIT_ARGS=(--device cuda --no-compile --no-eager --budget 0.3 --dtypes float32
              --ops soft_argmax,soft_argmax_bwd,pose_loss --sizes 256x192 --loss-sizes 128:256x192)
  # 2,700 images (~3,800 samples): the loader's 2+12 batches of 256 and the training benchmark's
  # 5+20 steps of 128 each fit in one epoch, so no epoch start is timed
  DATA_ARGS=(--device cuda --data-only --train --data-images 2700 --data-batch 256 --data-batches 12)
  # the loaders on real photos (4,947 persons: 2+12 batches of 256 fit one epoch too)
  [ -f .carry/coco_kpts_small/train.json ] && DATA_ARGS+=(--data-coco .carry/coco_kpts_small)
else
  NOCOMPILE_ARGS=(--device cpu --quick)
  COMPILE_ARGS=(--device cpu --quick --ops pck_counts)
  DATA_ARGS=(--device cpu --data-only --data-images 32 --data-batch 8 --data-batches 2)
fi

warm_pid=""
if want compile; then
  # compile the torch.compile references into the inductor cache while the tests run (CPU
  # work and a few small GPU calls; its timings are thrown away), so the compile stage times
  timeout 150 "$PY" benchmarks/run.py "${COMPILE_ARGS[@]}" --rounds 1 --repeats 3 --max-sets 1 --no-graph \
    --json "$WORK/compile_warmup.json" > "$WORK/compile_warmup.txt" 2>&1 &
  warm_pid=$!
fi
stop_warmup_now() {  # on an early exit: it must not go on using the GPU
  [ -n "$warm_pid" ] && kill "$warm_pid" 2>/dev/null
  warm_pid=""
}
stop_warmup() {  # the benchmarks must not share the machine with it
  [ -n "$warm_pid" ] || return 0
  wait "$warm_pid"
  echo "torch.compile warm-up exit code: $? (124 = stopped at its 150 s limit)"
  warm_pid=""
}

if want tests; then
  stage "CUDA op tests (pytest -m cuda tests/test_ops_*.py)"
  per_test=()
  "$PY" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout 60)
  # the loader's CPU-vs-CUDA test reads the COCO copy (carried as .carry/coco_kpts_small)
  [ -f .carry/coco_kpts_small/train.json ] && export POSEFAST_COCO_DIR="$PWD/.carry/coco_kpts_small"
  # the direct CUDA-vs-CPU file first: its failures say most
  tests=(tests/test_ops_cuda.py tests/test_ops_render.py tests/test_ops_pck.py tests/test_ops_soft_argmax.py
         tests/test_ops_pose_loss.py tests/test_ops_extension.py tests/test_ops_validation.py
         tests/test_data_loader.py tests/test_train.py)
  cuda_tests() {  # cuda_tests MAX_SECONDS LOG [PYTEST ARGS...]: the CUDA tests above, output in $WORK/LOG
    local limit=$1 log=$2
    shift 2
    timeout "$(stage_limit "$limit")" "$PY" -m pytest -q -m cuda "${tests[@]}" "${per_test[@]}" -p no:cacheprovider \
      "$@" > "$WORK/$log" 2>&1
  }
  cuda_tests 180 pytest_cuda.log --junitxml="$WORK/pytest_cuda.xml"
  rc=$?
  tail -25 "$WORK/pytest_cuda.log"
  echo "pytest exit code: $rc"
  if [ $rc -ne 0 ] && [ "$DEVICE" = "cuda" ] && [ -z "${POSEFAST_CUDA_CHUNK_VECS:-}" ]; then
    # the split of large maps into chunks had never run on a GPU when this was written: if the
    # tests pass without it, go on without it (and say so) rather than stop
    stage "the CUDA op tests again with one block per map (POSEFAST_CUDA_CHUNK_VECS=0)"
    POSEFAST_CUDA_CHUNK_VECS=0 cuda_tests 120 pytest_cuda_one_block.log
    rc_one=$?
    tail -5 "$WORK/pytest_cuda_one_block.log"
    echo "pytest (one block per map) exit code: $rc_one"
    if [ $rc_one -eq 0 ]; then
      echo "CHUNKED KERNELS FAIL THEIR TESTS: every later stage runs with POSEFAST_CUDA_CHUNK_VECS=0"
      export POSEFAST_CUDA_CHUNK_VECS=0
      chunks_broken=1
      rc=0
      status=1
    fi
  fi
  if [ $rc -eq 0 ] && [ "$DEVICE" = "cuda" ] && [ -z "${chunks_broken:-}" ]; then
    # chunks of 3 vectors split every map (not only the large ones) into many uneven chunks that
    # start mid-row: the chunk edges, stressed in seconds, against the same references
    stage "the split kernels' tests with tiny chunks (POSEFAST_CUDA_CHUNK_VECS=3)"
    POSEFAST_CUDA_CHUNK_VECS=3 timeout "$(stage_limit 60)" "$PY" -m pytest -q -m cuda tests/test_ops_soft_argmax.py \
      tests/test_ops_pose_loss.py "${per_test[@]}" -p no:cacheprovider > "$WORK/pytest_cuda_tiny_chunks.log" 2>&1
    rc_tiny=$?
    tail -5 "$WORK/pytest_cuda_tiny_chunks.log"
    echo "pytest (tiny chunks) exit code: $rc_tiny (124 = hit its time limit)"
    if [ $rc_tiny -ne 0 ] && [ $rc_tiny -ne 124 ]; then
      echo "TINY CHUNKS FAIL: a chunk-edge bug the default chunk size may hide; later stages go on as they are"
      status=1
    fi
  fi
  if [ $rc -ne 0 ]; then
    status=1
    if [ "$DEVICE" = "cuda" ] && command -v compute-sanitizer >/dev/null; then
      stage "the CUDA-vs-CPU tests under compute-sanitizer memcheck (tests failed)"
      timeout "$(stage_limit 60)" compute-sanitizer --tool memcheck --print-limit 20 "$PY" -m pytest -x -q \
        tests/test_ops_cuda.py -p no:cacheprovider > "$WORK/memcheck.log" 2>&1
      echo "memcheck exit code: $?"
      grep -m 20 -E "=========|FAILED|Error" "$WORK/memcheck.log"
    fi
    if [ "$DEVICE" = "cuda" ] && [ -d "$FALLBACK_CSRC/csrc" ] && [ "${STOP_ON_TEST_FAIL:-1}" = "1" ] \
       && [ "$(time_left)" -ge 240 ]; then
      # the rest of the call measures the last kernels that passed on a GPU (carried by
      # scripts/device_prepare.sh), built in a copy of this tree, so the later stages still
      # bring back numbers; every one of them is then of those kernels, which the log,
      # env.txt and FALLBACK_KERNELS.txt say (STOP_ON_TEST_FAIL=0 measures this tree instead)
      fb_commit=$(cat "$FALLBACK_CSRC/COMMIT" 2>/dev/null || echo unknown)
      stage "the CUDA tests failed: the kernels of commit $fb_commit ($FALLBACK_CSRC), built in $FALLBACK_TREE"
      notice="FALLBACK KERNELS: this tree's kernels failed their CUDA tests; every later stage measures the kernels of commit $fb_commit (tested below; the tiny-chunk pass is not rerun)"
      echo "$notice" | tee "$WORK/FALLBACK_KERNELS.txt"
      echo "$notice" >> "$WORK/env.txt"
      rm -rf "$FALLBACK_TREE" && mkdir -p "$FALLBACK_TREE"
      for entry in *; do  # not the dot folders (.carry is linked below), results or builds
        case "$entry" in csrc|runs|build|docs|device_out) continue ;; esac
        cp -r "$entry" "$FALLBACK_TREE/"
      done
      cp -r "$FALLBACK_CSRC/csrc" "$FALLBACK_TREE/csrc"
      [ -e .carry ] && ln -s "$PWD/.carry" "$FALLBACK_TREE/.carry"
      cd "$FALLBACK_TREE" || { stop_warmup_now; exit 1; }
      OUT="$WORK/fallback" BUILD_TIMEOUT="$(stage_limit 300)" PYTHON="$PY" DEVICE="$DEVICE" \
        bash benchmarks/device_build.sh || { stop_warmup_now; exit 1; }
      stage "the CUDA op tests with the kernels of commit $fb_commit"
      # tests of fixes made after those kernels (marked current_kernels) are left out
      cuda_tests 150 pytest_cuda_fallback.log -m "cuda and not current_kernels"
      rc=$?
      tail -5 "$WORK/pytest_cuda_fallback.log"
      echo "pytest (kernels of $fb_commit) exit code: $rc" | tee -a "$WORK/FALLBACK_KERNELS.txt"
    fi
  fi
  if [ $rc -ne 0 ]; then
    # kernels that fail their tests make every later number moot: keep the device time for a rerun
    if [ "${STOP_ON_TEST_FAIL:-1}" = "1" ]; then
      stage "stopping: the CUDA tests failed (STOP_ON_TEST_FAIL=0 runs the other stages anyway)"
      stop_warmup_now
      exit 1
    fi
  fi
fi

# bench_stage NAME MAX_SECONDS JSON_BASENAME ARGS...: benchmarks/run.py ARGS, its table and JSON in $WORK
bench_stage() {
  local name=$1 limit=$2 base=$3
  shift 3
  stage "$name: benchmarks/run.py $*"
  timeout "$(stage_limit "$limit")" "$PY" benchmarks/run.py "$@" --json "$WORK/$base.json" 2>&1 | tee "$WORK/$base.txt"
  local rc=$?
  echo "$name exit code: $rc (124 = hit its time limit; the rows so far are in $base.json)"
  [ $rc -ne 0 ] && status=1
}

stage "waiting for the torch.compile warm-up (if any) before timing anything"
stop_warmup
want bench && bench_stage "benchmark, eager vs posefast" 120 bench_cuda_nocompile "${NOCOMPILE_ARGS[@]}"
if want split && [ "$DEVICE" = "cuda" ] && [ -z "${chunks_broken:-}" ]; then
  for variant in chunked one_block chunked_again; do
    [ "$variant" = one_block ] && export POSEFAST_CUDA_CHUNK_VECS=0
    bench_stage "split A/B: $variant" 40 "bench_split_$variant" "${SPLIT_ARGS[@]}"
    unset POSEFAST_CUDA_CHUNK_VECS
  done
fi
NCU=$(command -v ncu || ls "${CUDA_HOME:-/usr/local/cuda}/bin/ncu" 2>/dev/null || true)
if want ncu && [ "$DEVICE" = "cuda" ]; then
  # diagnostic only (a failure here does not change the status): duration, throughput,
  # occupancy and waves of one launch of each posefast kernel (benchmarks/profile_kernels.py),
  # at the clocks the benchmarks ran at (--clock-control none)
  stage "Nsight Compute: one launch of each posefast kernel (${NCU:-ncu not found: skipped})"
  if [ -n "$NCU" ]; then
    # the kernels as they run, then (split A/B) with one block per map
    for variant in "" one_block; do
      [ "$variant" = one_block ] && { [ -n "${chunks_broken:-}" ] && continue; export POSEFAST_CUDA_CHUNK_VECS=0; }
      report="$WORK/ncu_kernels${variant:+_$variant}.txt"
      timeout "$(stage_limit 60)" "$NCU" --clock-control none \
        --kernel-name regex:'render_kernel|soft_argmax_|pose_loss_|pck_kernel' \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        "$PY" benchmarks/profile_kernels.py > "$report" 2>&1
      echo "ncu ${variant:-as run} exit code: $?"
      [ "$variant" = one_block ] && unset POSEFAST_CUDA_CHUNK_VECS
      grep -E "_kernel|Duration|Memory Throughput|Achieved Occupancy|Waves Per SM|Registers Per Thread|Block Limit" \
        "$report" | head -80
    done
  fi
fi
want data && bench_stage "data loader and training throughput" 150 bench_data_train "${DATA_ARGS[@]}"

want compile && bench_stage "benchmark with torch.compile" 120 bench_cuda "${COMPILE_ARGS[@]}"

if want coco; then
  if [ -f .carry/coco_kpts_small/train.json ]; then
    # last, alone on the machine (its wall time is a result), with what is left (COCO_S caps it)
    coco_deadline=$(( $(date +%s) - PACK_T0 + ${COCO_S:-${DEADLINE_S:-570}} ))
    [ "$coco_deadline" -gt "${DEADLINE_S:-570}" ] && coco_deadline=${DEADLINE_S:-570}
    stage "COCO: scripts/device_coco.sh, RUNS=${COCO_RUNS:-best}, until ${coco_deadline}s"
    OUT="$WORK/coco" SKIP_BUILD=1 RUNS="${COCO_RUNS:-best}" PYTHON="$PY" DEVICE="$DEVICE" DEADLINE_S="$coco_deadline" \
      bash scripts/device_coco.sh
    rc=$?
    echo "coco exit code: $rc"
    [ $rc -ne 0 ] && status=1
  else
    stage "COCO: skipped (no .carry/coco_kpts_small: see scripts/device_prepare.sh)"
  fi
fi

stage "done (status $status); results in $OUT/device_check_results.tar.gz (packed at exit)"
exit $status
