"""The pose_math.h pieces that only the CUDA kernels call, checked on the host.

tests/cpp/pose_math_host_check.cpp includes csrc/include/pose_math.h (standard C++ only) and
checks PixelCursor against division, SoftArgmaxState::push_run against push (with NaN and
+-inf), log2 against natural units, and merge_states of many chunks against one double state.
It is built with the same host compiler as the extension.
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


def test_gpu_only_math_on_the_host(tmp_path):
    cxx = host_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (the extension could not be built either)")
    exe = tmp_path / "pose_math_host_check"
    build = subprocess.run(
        [cxx, "-std=c++17", "-O2", "-Wall", "-Werror", "-I", os.path.join(ROOT, "csrc", "include"),
         os.path.join(ROOT, "tests", "cpp", "pose_math_host_check.cpp"), "-o", str(exe)],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    checks = run.stdout.strip().splitlines()[-1]
    assert checks.startswith("checks: ") and checks.endswith(" failed: 0"), run.stdout
    assert int(checks.split()[1]) > 1000  # every group of checks ran
