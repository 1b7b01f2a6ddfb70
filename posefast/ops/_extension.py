"""Loads the compiled operator library ``posefast._C`` (registers ``torch.ops.posefast``)."""
import importlib

import torch  # noqa: F401  (loads libtorch, libc10, ... that posefast._C links against)

BUILD_HINT = (
    "posefast's compiled extension posefast._C is missing or failed to load. Build it from the "
    "repository root with:\n"
    "    pip install -e . --no-build-isolation --use-pep517\n"
    "(set CUDA_HOME=/usr/local/cuda, and FORCE_CUDA=1 to compile the CUDA kernels without a GPU), "
    "or simply run `make test`, which sets everything up."
)


def load_extension():
    """Import ``posefast._C`` or raise an ImportError that says how to build it."""
    try:
        return importlib.import_module("posefast._C")
    except ImportError as exc:
        raise ImportError(f"{BUILD_HINT}\nOriginal error: {exc}") from exc


def cpu_simd_level() -> str:
    """The vector width posefast's CPU kernels run at: ``"avx512"`` (16 floats), ``"avx2"``
    (8, with FMA) or ``"baseline"`` (4). The widest this CPU has, capped by the environment
    variable ``POSEFAST_CPU_SIMD`` (read once per process, at the first CPU op); ``vec16``
    there, for tests, runs the 16-float kernels compiled for any x86-64 (slowly)."""
    return torch.ops.posefast.cpu_simd_level()
