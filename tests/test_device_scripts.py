"""The GPU-session helpers (benchmarks/device_pack.sh): $OUT must stay within what the
device tool brings back (at most 8 files, two folders deep) while still holding every
result, also when the script is cut short by its time limit."""
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_bash(script, tmp_path, timeout=60, **env):
    return subprocess.run(["bash", "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OUT": str(tmp_path / "out"), **env})


def tar_names(path):
    with tarfile.open(path) as tar:
        return sorted(n.lstrip("./") for n in tar.getnames() if n not in (".", "./"))


def test_pack_keeps_results_in_one_tarball(tmp_path):
    work = tmp_path / "work"
    proc = run_bash(f"""
        source benchmarks/device_pack.sh
        mkdir -p "$OUT"
        start_packing {work} "$OUT/results.tar.gz"
        mkdir -p {work}/runs/a/eval
        echo 1 > {work}/runs/a/eval/eval.json
        echo 2 > {work}/bench.json
        echo x > {work}/runs/a/best.pt
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["results.tar.gz"]
    names = tar_names(tmp_path / "out" / "results.tar.gz")
    assert "runs/a/eval/eval.json" in names and "bench.json" in names
    assert not any(n.endswith(".pt") for n in names)  # checkpoints stay out


def test_pack_survives_a_kill(tmp_path):
    """Terminated mid-stage (as the device tool does at its limit): the results so far are packed."""
    work = tmp_path / "work"
    script = f"""
        source benchmarks/device_pack.sh
        mkdir -p "$OUT"
        start_packing {work} "$OUT/results.tar.gz"
        echo early > {work}/stage1.json
        sleep 60
        """
    proc = subprocess.Popen(["bash", "-c", textwrap.dedent(script)], cwd=REPO, start_new_session=True,
                            env={**os.environ, "OUT": str(tmp_path / "out"), "PACK_EVERY": "30"})
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not (work / "stage1.json").exists():
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group, before the first periodic pack
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert sorted(os.listdir(tmp_path / "out")) == ["results.tar.gz"]
    assert "stage1.json" in tar_names(tmp_path / "out" / "results.tar.gz")


def test_stage_limit_shrinks_with_the_time_left(tmp_path):
    proc = run_bash("""
        source benchmarks/device_pack.sh
        echo "$(stage_limit 1000) $(stage_limit 5) $(DEADLINE_S=10 stage_limit 100)"
        """, tmp_path, DEADLINE_S="100")
    assert proc.returncode == 0, proc.stderr
    big, small, none_left = map(int, proc.stdout.split())
    assert 80 <= big <= 85 and small == 5 and none_left == 1


@pytest.mark.slow
def test_device_coco_dry_run_on_the_cpu(coco_dir, tmp_path):
    """scripts/device_coco.sh as device_check.sh's coco stage calls it, on the CPU with a tiny
    schedule: the training gets a time limit, is evaluated, and $OUT keeps two files whose
    tarball holds the run's metrics and eval.json (no checkpoints)."""
    extra = (f"--input_size 64,32 --train_subset 12 --val_subset 6 --epochs 2 --batch_size 8 --device cpu "
             f"--pretrained none --cache_dir {tmp_path / 'cache'}")
    proc = run_bash("bash scripts/device_coco.sh", tmp_path, timeout=900, DEVICE="cpu", SKIP_BUILD="1", RUNS="best",
                    DATA_DIR=coco_dir, EXTRA=extra, DEADLINE_S="800", WHEELS=str(tmp_path / "no_wheels"),
                    PYTHON=sys.executable)
    log = (tmp_path / "out" / "device_coco.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "--time_limit_min" in log
    assert sorted(os.listdir(tmp_path / "out")) == ["coco_runs.tar.gz", "device_coco.log"]
    names = tar_names(tmp_path / "out" / "coco_runs.tar.gz")
    assert {"runs/coco_best/metrics.jsonl", "runs/coco_best/eval/eval.json", "runs/tables.md"} <= set(names), names
    assert not any(n.endswith(".pt") for n in names)



def test_install_wheels_without_wheels_changes_nothing(tmp_path):
    proc = run_bash(f"""
        source benchmarks/device_pack.sh
        PYTHONPATH=before
        install_wheels {tmp_path / "empty"} && echo "ok $PYTHONPATH"
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok before"


FAKE_PYTHON = """#!/usr/bin/env bash
# a stand-in for python on the GPU machine: pytest passes only with one block per map, or
# only with the fallback kernels, or never ({mode}); the build does nothing
if [ "$1" = "setup.py" ]; then echo "fake build in $PWD"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "pytest" ]; then
  if [ -f csrc/FALLBACK_OK ]; then echo "fallback pytest: $*"; echo "9 passed"; exit 0; fi
  if [ "{mode}" = "chunks_broken" ] && [ "${{POSEFAST_CUDA_CHUNK_VECS:-}}" = "0" ]; then echo "9 passed"; exit 0; fi
  if [ "{mode}" = "tiny_chunks_broken" ] && [ "${{POSEFAST_CUDA_CHUNK_VECS:-}}" != "3" ]; then echo "9 passed"; exit 0; fi
  echo "FAILED tests/test_ops_soft_argmax.py::test_large_maps_split_into_chunks"; exit 1
fi
if [ "$1" = "-c" ]; then exit 0; fi  # the import check
if [ "$1" = "benchmarks/run.py" ]; then echo "run.py chunk limit: ${{POSEFAST_CUDA_CHUNK_VECS:-default}} in $PWD"; exit 0; fi
exec {python} "$@"
"""


@pytest.mark.parametrize("mode", ["chunks_broken", "all_broken", "tiny_chunks_broken"])
def test_device_check_when_split_kernels_fail_their_tests(tmp_path, mode):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(mode=mode, python=sys.executable))
    fake.chmod(0o755)
    proc = run_bash("bash benchmarks/device_check.sh", tmp_path, timeout=120, PYTHON=str(fake), DEVICE="cuda",
                    SKIP_BUILD="1", STAGES="tests bench split", WHEELS=str(tmp_path / "no_wheels"),
                    STOP_ON_TEST_FAIL="1", POSEFAST_CUDA_CHUNK_VECS="", FALLBACK_CSRC=str(tmp_path / "none"))
    log = (tmp_path / "out" / "device_check.log").read_text()
    assert proc.returncode == 1, log[-2000:]
    if mode == "tiny_chunks_broken":  # reported; every later stage runs with the default chunks
        assert "TINY CHUNKS FAIL" in log and "again with one block per map" not in log
        assert "run.py chunk limit: default" in log and "done (status 1)" in log
        return
    assert "again with one block per map" in log and "tiny chunks" not in log
    if mode == "chunks_broken":  # benchmarks go on, all with one block per map; no split A/B
        assert "every later stage runs with POSEFAST_CUDA_CHUNK_VECS=0" in log
        assert "run.py chunk limit: 0" in log and "run.py chunk limit: default" not in log
        assert "split A/B" not in log and "done (status 1)" in log
    else:
        assert "stopping: the CUDA tests failed" in log and "run.py chunk limit" not in log


@pytest.mark.parametrize("fallback_passes", [True, False])
def test_device_check_falls_back_to_the_kernels_that_passed(tmp_path, fallback_passes):
    """Kernels that fail their tests (with or without chunks): the script builds the carried
    fallback kernels in a copy of the tree and tests them; the later stages measure those,
    saying so, or, when they fail too, nothing runs. The tree itself is left as it is."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(mode="all_broken", python=sys.executable))
    fake.chmod(0o755)
    fallback = tmp_path / "fallback_csrc"
    (fallback / "csrc").mkdir(parents=True)
    if fallback_passes:
        (fallback / "csrc" / "FALLBACK_OK").write_text("")
    (fallback / "COMMIT").write_text("abc1234\n")
    tree = tmp_path / "tree"
    proc = run_bash("bash benchmarks/device_check.sh", tmp_path, timeout=180, PYTHON=str(fake), DEVICE="cuda",
                    SKIP_BUILD="1", STAGES="tests bench", WHEELS=str(tmp_path / "no_wheels"), STOP_ON_TEST_FAIL="1",
                    POSEFAST_CUDA_CHUNK_VECS="", FALLBACK_CSRC=str(fallback), FALLBACK_TREE=str(tree))
    log = (tmp_path / "out" / "device_check.log").read_text()
    assert proc.returncode == 1, log[-2000:]  # the tree's own kernels failed: status 1
    assert "again with one block per map" in log and f"fake build in {tree}" in log
    assert "every later stage measures the kernels of commit abc1234" in log
    assert (tree / "benchmarks" / "run.py").is_file() and not (REPO / "csrc" / "FALLBACK_OK").exists()
    names = tar_names(tmp_path / "out" / "device_check_results.tar.gz")
    assert {"FALLBACK_KERNELS.txt", "pytest_cuda_fallback.log", "pytest_cuda.log", "env.txt"} <= set(names), names
    if fallback_passes:
        assert f"run.py chunk limit: default in {tree}" in log and "done (status 1)" in log
        assert "pytest (kernels of abc1234) exit code: 0" in log
        assert "-m cuda and not current_kernels" in log  # the tests of later fixes are left out
    else:  # nothing is measured
        assert "pytest (kernels of abc1234) exit code: 1" in log and "stopping: the CUDA tests failed" in log
        assert "run.py chunk limit" not in log


def test_device_check_measures_its_own_kernels_when_told_to_go_on(tmp_path):
    """STOP_ON_TEST_FAIL=0: the later stages run on this tree's kernels, no fallback."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(mode="all_broken", python=sys.executable))
    fake.chmod(0o755)
    fallback = tmp_path / "fallback_csrc"
    (fallback / "csrc").mkdir(parents=True)
    (fallback / "csrc" / "FALLBACK_OK").write_text("")
    proc = run_bash("bash benchmarks/device_check.sh", tmp_path, timeout=180, PYTHON=str(fake), DEVICE="cuda",
                    SKIP_BUILD="1", STAGES="tests bench", WHEELS=str(tmp_path / "no_wheels"), STOP_ON_TEST_FAIL="0",
                    POSEFAST_CUDA_CHUNK_VECS="", FALLBACK_CSRC=str(fallback), FALLBACK_TREE=str(tmp_path / "tree"))
    log = (tmp_path / "out" / "device_check.log").read_text()
    assert proc.returncode == 1, log[-2000:]
    assert "FALLBACK" not in log and f"run.py chunk limit: default in {REPO}" in log
