"""Build posefast's CUDA kernels as CPU code that runs them under cuda_emu.h.

``load_emulated_ops(build_dir)`` translates every ``csrc/cuda/*.cu`` (and the headers under
``csrc/include/``) into C++, compiles it with the host compiler as a torch extension and
registers the ops as ``torch.ops.posefast_emu.*`` for CPU tensors, with the same schemas as
``torch.ops.posefast.*``. The kernel code itself is not changed, only the CUDA-only syntax
around it (see cuda_emu.h for what the emulation checks and what it leaves out).

Run as a script to build and print where the library went:
    python tests/cuda_emu/build.py [BUILD_DIR]
"""
from __future__ import annotations

import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# the sources to emulate: this tree's csrc/, or another's (say an older commit's) when set
CSRC = os.environ.get("POSEFAST_CUDA_EMU_CSRC") or os.path.join(ROOT, "csrc")
SELFTEST = os.path.join(HERE, "selftest_kernels.cu")

# kernel<<<grid, block[, smem[, stream]]>>>(args) -> cuda_emu::Launch(grid, ...).run("kernel", kernel, args)
LAUNCH = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(")
EXTERN_SHARED = re.compile(r"extern __shared__ (?:__align__\(\d+\) )?unsigned char (\w+)\[\];")
# one variable per declaration, on one line (anything else is left for UNHANDLED to refuse)
STATIC_SHARED = re.compile(r"__shared__ ([^;,\n]+?)\s+(\w+)((?:\[[^\]\n]*\])?);")
# the PTX approximations cuda_emu.h models: asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
ASM_APPROX = re.compile(r'asm\("(ex2|rcp)\.approx\.ftz\.f32 %0, %1;" : "=f"\((\w+)\) : "f"\((\w+)\)\);')
# __global__ void __launch_bounds__(256[, min blocks]) name(...) {: the body gets a check first
LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\(([^(),]+)(?:,[^()]*)?\)")
REINTERPRET = re.compile(r"\breinterpret_cast\s*<")
# CUDA spellings that must all have been rewritten; any left means translate() needs a rule
UNHANDLED = ["<<<", "__shared__", "__launch_bounds__", "c10::cuda", "cuda_runtime", "cudaStream", "__ldg", "__CUDA_ARCH__",
             "TORCH_LIBRARY_IMPL(posefast, CUDA", "at::zeros_like", "at::empty_strided", "new_empty", "new_zeros",
             "torch::empty", "torch::zeros"]
INLINE_ASM = re.compile(r"\b(asm|__asm__|__asm)\b")


def _rewrite_common(text: str) -> str:
    """What every posefast source gets: device-only branches compiled, the PTX approximations
    modelled, the launchers' allocations guarded."""
    # only the tests for device code are rewritten: #if __CUDA_ARCH__ >= 800 would need a value
    text = re.sub(r"defined\(__CUDA_ARCH__\)", "defined(CUDA_EMU_DEVICE_CODE)", text)
    text = re.sub(r"#(ifn?def)\s+__CUDA_ARCH__\b", r"#\1 CUDA_EMU_DEVICE_CODE", text)
    text = ASM_APPROX.sub(r"\2 = ::cuda_emu::\1_approx_ftz(\3);", text)
    text = re.sub(r"\bat::empty_like\(", "::cuda_emu::guarded_empty_like(", text)
    text = re.sub(r"\bat::empty\(", "::cuda_emu::guarded_empty(", text)
    return re.sub(r"\bat::zeros\(", "::cuda_emu::guarded_zeros(", text)


def _check_launch_bounds(text: str) -> str:
    """Each kernel declared with __launch_bounds__(N) starts by checking that its block has at
    most N threads (a GPU refuses the launch otherwise); the rest of the line is kept."""
    parts, pos = [], 0
    for m in LAUNCH_BOUNDS.finditer(text):
        if "//" in text[text.rfind("\n", 0, m.start()) + 1:m.start()]:
            continue  # in a comment
        body = text.find("{", m.end())
        if body < 0 or text.find(";", m.end(), body) >= 0:
            continue  # a declaration without a body: left for UNHANDLED to report
        bound = m[1].strip()
        parts += [text[pos:m.start()], "\n" * m[0].count("\n"), text[m.end():body + 1],
                  f' ::cuda_emu::check_launch_bounds({bound}, "{bound}");']
        pos = body + 1
    return "".join(parts) + text[pos:]


def _check_pointer_casts(text: str) -> str:
    """reinterpret_cast<T>(p) -> ::cuda_emu::checked_reinterpret<T>(p), which refuses a pointer
    that is not aligned for what it points to: a GPU faults on a misaligned 16-byte access
    ("misaligned address"), where x86 loads it anyway."""
    parts, pos = [], 0
    while (m := REINTERPRET.search(text, pos)) is not None:
        depth, end = 1, m.end()
        while depth:  # the matching '>' of the template argument, which may nest
            if end == len(text):
                raise ValueError(f"unbalanced reinterpret_cast< at offset {m.start()}")
            depth += {"<": 1, ">": -1}.get(text[end], 0)
            end += 1
        parts += [text[pos:m.start()], f"::cuda_emu::checked_reinterpret<{text[m.end():end - 1]}>"]
        pos = end
    return "".join(parts) + text[pos:]


def translate(text: str, name: str) -> str:
    """C++ for cuda_emu.h from the CUDA source `text` (line numbers kept for compiler messages)."""
    text = re.sub(r"#include <c10/cuda/[^>]+>", "", text)
    text = _check_launch_bounds(text)
    text = _check_pointer_casts(text)
    text = EXTERN_SHARED.sub(r"unsigned char* \1 = ::cuda_emu::dynamic_smem();", text)
    text = STATIC_SHARED.sub(r"static \1 \2\3; ::cuda_emu::poison_static_shared(&\2, sizeof(\2));", text)
    text = LAUNCH.sub(lambda m: f'::cuda_emu::Launch({m[2]}).run("{m[1]}", {m[1]}, ', text)
    text = text.replace("c10::cuda::CUDAGuard", "::cuda_emu::DeviceGuard")
    text = text.replace("c10::cuda::getCurrentCUDAStream()", "::cuda_emu::current_stream()")
    text = text.replace("C10_CUDA_KERNEL_LAUNCH_CHECK()", "::cuda_emu::launch_check()")
    text = re.sub(r"TORCH_LIBRARY_IMPL\(posefast, CUDA, (\w+)\)", r"TORCH_LIBRARY_IMPL(posefast_emu, CPU, \1)", text)
    text = _rewrite_common(text)
    for i, line in enumerate(text.splitlines(), 1):
        code = line.split("//")[0]
        found = [token for token in UNHANDLED if token in code] + INLINE_ASM.findall(code)
        if found:
            raise ValueError(f"{name}:{i}: cuda_emu cannot translate {found[0]!r}: {line.strip()}")
    return f'#include "cuda_emu.h"\n#line 1 "{name}"\n{text}'


def translate_schemas(text: str) -> str:
    """csrc/posefast_ops.cpp's schemas, declared for the posefast_emu library instead."""
    if "TORCH_LIBRARY(posefast, m)" not in text:
        raise ValueError("csrc/posefast_ops.cpp: no TORCH_LIBRARY(posefast, m) block")
    text = text.replace("TORCH_LIBRARY(posefast, m)", "TORCH_LIBRARY(posefast_emu, m)")
    return text.replace("PyInit__C", "PyInit_posefast_emu_unused")


def write_sources(out_dir: str) -> list[str]:
    """Writes the translated tree under out_dir (cuda/*.cpp next to include/) and returns the
    .cpp files to compile."""
    os.makedirs(os.path.join(out_dir, "include"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "cuda"), exist_ok=True)
    for header in sorted(os.listdir(os.path.join(CSRC, "include"))):
        with open(os.path.join(CSRC, "include", header)) as f:
            text = f.read()
        rel = f"csrc/include/{header}"
        text = translate(text, rel)
        _write(os.path.join(out_dir, "include", header), text)
    sources = []
    kernels = sorted(f for f in os.listdir(os.path.join(CSRC, "cuda")) if f.endswith(".cu"))
    for cu in kernels:
        with open(os.path.join(CSRC, "cuda", cu)) as f:
            sources.append(_write(os.path.join(out_dir, "cuda", cu[:-3] + ".cpp"), translate(f.read(), f"csrc/cuda/{cu}")))
    with open(SELFTEST) as f:
        sources.append(_write(os.path.join(out_dir, "cuda", "selftest_kernels.cpp"),
                              translate(f.read(), "tests/cuda_emu/selftest_kernels.cu")))
    with open(os.path.join(CSRC, "posefast_ops.cpp")) as f:
        sources.append(_write(os.path.join(out_dir, "posefast_emu_ops.cpp"), translate_schemas(f.read())))
    return sources


def _write(path: str, text: str) -> str:
    old = None
    if os.path.isfile(path):
        with open(path) as f:
            old = f.read()
    if old != text:  # unchanged files keep their time stamps: ninja rebuilds only what moved
        with open(path, "w") as f:
            f.write(text)
    return path


def load_emulated_ops(build_dir: str, verbose: bool = False) -> None:
    """Builds (or reuses) the emulated kernels in build_dir and loads them: torch.ops.posefast_emu."""
    from torch.utils.cpp_extension import load

    src_dir = os.path.join(build_dir, "src")
    sources = write_sources(src_dir)
    digest = hashlib.sha1()
    for s in sources:
        with open(s, "rb") as f:
            digest.update(f.read())
    # CUDA_EMU_CFLAGS adds compiler flags, e.g. "-mfma -ffp-contract=fast" to fuse a * b + c
    # into multiply-adds as nvcc does by default (on a CPU with FMA)
    extra = os.environ.get("CUDA_EMU_CFLAGS", "").split()
    # CUDA_EMU_LDFLAGS adds linker flags, e.g. "--coverage" with CUDA_EMU_CFLAGS="--coverage"
    # for a line coverage of the kernels under the op tests (gcov on the build's obj/ folder)
    ldflags = os.environ.get("CUDA_EMU_LDFLAGS", "").split()
    digest.update(repr((extra, ldflags)).encode())
    os.makedirs(os.path.join(build_dir, "obj"), exist_ok=True)
    load(name="posefast_emu_" + digest.hexdigest()[:10], sources=sources, build_directory=os.path.join(build_dir, "obj"),
         extra_cflags=["-O1", "-Wno-unknown-pragmas", f"-I{HERE}", *extra], extra_ldflags=ldflags,
         is_python_module=False, verbose=verbose)


OPS = ["render_heatmaps", "soft_argmax_forward", "soft_argmax_backward", "pck_counts", "pose_loss_forward",
       "pose_loss_backward"]
_routing = []  # the torch.library.Library that holds the overrides alive


def route_cpu_ops_to_emulation(build_dir: str) -> None:
    """Makes every torch.ops.posefast op on CPU tensors run the emulated CUDA kernels, so
    that the CPU op tests test the CUDA code (POSEFAST_CUDA_EMU=DIR in tests/conftest.py)."""
    import warnings

    import torch

    import posefast.ops  # noqa: F401  (loads posefast._C: the ops to override)

    load_emulated_ops(build_dir)
    lib = torch.library.Library("posefast", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Oo]verrid.*")
        for op in OPS:
            lib.impl(op, getattr(torch.ops.posefast_emu, op).default, "CPU")
    _routing.append(lib)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cuda_emu")
    load_emulated_ops(target, verbose=True)
    print(f"posefast_emu ops loaded from {target}")
