"""Compile every CUDA source of posefast._C with nvcc, without linking: a CUDA check for
machines whose torch has no CUDA (CI installs the CPU build of torch, a 1.4 GB venv with every
requirement instead of 5.9 GB; its wheel still carries the ATen/c10 CUDA headers).

Sources, include paths, macros and nvcc options come from setup.py's ``extension()`` and
torch's own extension builder, so this compiles what ``FORCE_CUDA=1 pip install -e .``
would; only the link against libtorch_cuda is left out. Architectures follow
``TORCH_CUDA_ARCH_LIST`` (default as in setup.py).

    CUDA_HOME=/usr/local/cuda python scripts/check_cuda_compiles.py [--jobs 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import inspect
import os
import runpy
import subprocess
import sys
import sysconfig
import tempfile
import time

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Headers that torch's build generates only when it builds with CUDA; a CPU wheel lacks
# them. Their content in every CUDA wheel: c10_cuda is a shared library.
GENERATED_CUDA_HEADERS = {
    "c10/cuda/impl/cuda_cmake_macros.h": "#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n",
}


def shim_missing_headers(include_dirs: list[str], out_dir: str) -> list[str]:
    """Write the generated CUDA headers torch's include folders lack; their folder, if any."""
    shim = os.path.join(out_dir, "generated_include")
    written = []
    for header, text in GENERATED_CUDA_HEADERS.items():
        if not any(os.path.isfile(os.path.join(d, header)) for d in include_dirs):
            os.makedirs(os.path.dirname(os.path.join(shim, header)), exist_ok=True)
            with open(os.path.join(shim, header), "w") as f:
                f.write(text)
            written.append(header)
    if written:
        print(f"check_cuda_compiles: torch lacks {', '.join(written)} (a CPU build); using a stand-in")
        return [shim]
    return []


def torch_cxx_standard() -> str:
    """The C++ standard torch's extension builder passes to nvcc (c++20 since torch 2.10)."""
    return "c++20" if "'c++20'" in inspect.getsource(cpp_extension) else "c++17"


def nvcc_commands(out_dir: str) -> list[tuple[str, list[str]]]:
    """(source, nvcc command) for each CUDA source of the extension."""
    # a CPU build of torch never looks for a toolkit (its CUDA_HOME is None): take the caller's
    cuda_home = cpp_extension.CUDA_HOME or os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not cuda_home or not os.path.isfile(os.path.join(cuda_home, "bin", "nvcc")):
        raise RuntimeError(f"no nvcc under CUDA_HOME={cuda_home!r}: set CUDA_HOME (e.g. /usr/local/cuda)")
    cpp_extension.CUDA_HOME = cuda_home
    setup_py = runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="posefast_setup")
    ext = setup_py["extension"](force_cuda=True)
    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    include_dirs = [*ext.include_dirs, sysconfig.get_paths()["include"]]
    include_dirs += shim_missing_headers(include_dirs, out_dir)
    common = [f"-I{d}" for d in include_dirs]
    common += [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in ext.define_macros]
    common += cpp_extension.COMMON_NVCC_FLAGS + cpp_extension._get_cuda_arch_flags()
    common += [f"-std={torch_cxx_standard()}", "-Xcompiler", "-fPIC", "-DTORCH_API_INCLUDE_EXTENSION_H",
               "-DTORCH_EXTENSION_NAME=_C", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    common += ext.extra_compile_args.get("nvcc", [])
    commands = []
    for source in ext.sources:
        if source.endswith(".cu"):
            obj = os.path.join(out_dir, os.path.basename(source) + ".o")
            commands.append((source, [nvcc, "-c", os.path.join(ROOT, source), "-o", obj, *common]))
    if not commands:
        raise RuntimeError("setup.py's extension(force_cuda=True) lists no .cu sources")
    return commands


def compile_one(source: str, command: list[str]) -> tuple[str, int, float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return source, done.returncode, time.perf_counter() - start, done.stdout + done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MAX_JOBS", "2")))
    parser.add_argument("--keep", help="write the object files here (default: a temporary folder)")
    parser.add_argument("--print", action="store_true", help="print the nvcc commands and exit")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or tmp
        os.makedirs(out_dir, exist_ok=True)
        commands = nvcc_commands(out_dir)
        if args.print:
            for _, command in commands:
                print(" ".join(command))
            return 0
        print(f"check_cuda_compiles: {len(commands)} sources, torch {torch.__version__}, "
              f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')}", flush=True)
        failed = 0
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for source, rc, seconds, log in pool.map(lambda sc: compile_one(*sc), commands):
                print(f"  {'ok  ' if rc == 0 else 'FAIL'} {source} ({seconds:.0f} s)", flush=True)
                if rc != 0 or "warning" in log.lower():
                    print(log, flush=True)
                failed += rc != 0
    if failed:
        print(f"check_cuda_compiles: {failed} of {len(commands)} CUDA sources failed to compile", file=sys.stderr)
        return 1
    print("check_cuda_compiles: every CUDA source compiles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
