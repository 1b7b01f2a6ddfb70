"""scripts/check_cuda_compiles.py: the nvcc commands CI compiles the CUDA kernels with."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(CUDA_HOME, "bin", "nvcc")),
                                reason=f"no nvcc under {CUDA_HOME}")


def nvcc_commands(arch_list: str) -> list[str]:
    env = dict(os.environ, CUDA_HOME=CUDA_HOME, TORCH_CUDA_ARCH_LIST=arch_list)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check_cuda_compiles.py"), "--print"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(os.path.join(CUDA_HOME, "bin", "nvcc"))]


def test_every_cuda_source_gets_one_compile_only_command():
    commands = nvcc_commands("9.0")
    sources = sorted(f for f in os.listdir(os.path.join(ROOT, "csrc", "cuda")) if f.endswith(".cu"))
    assert sorted(os.path.basename(c.split()[2]) for c in commands) == sources
    for command in commands:
        args = command.split()
        assert args[1] == "-c" and "-gencode=arch=compute_90,code=sm_90" in args
        assert "-DTORCH_EXTENSION_NAME=_C" in args and "--expt-relaxed-constexpr" in args and "-O3" in args
        assert any(a.startswith("-std=c++") for a in args)
        assert any(a.endswith(os.path.join("torch", "include")) for a in args if a.startswith("-I"))


def test_arch_list_is_taken_from_the_environment():
    args = nvcc_commands("8.0;9.0+PTX")[0].split()
    assert "-gencode=arch=compute_80,code=sm_80" in args
    assert "-gencode=arch=compute_90,code=compute_90" in args
