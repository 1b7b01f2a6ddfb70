"""Builds posefast and its operator extension ``posefast._C``.

CPU sources are always compiled. CUDA sources are compiled when a CUDA toolkit is found
(``CUDA_HOME``) and either a GPU is visible or ``FORCE_CUDA=1`` (so the kernels compile on
a GPU-less machine). ``TORCH_CUDA_ARCH_LIST`` picks the GPU architectures; without it and
without a visible GPU we build for Ampere (8.0) and Hopper (9.0, plus PTX).

    pip install -e . --no-build-isolation

``extension(force_cuda=True)`` is also what ``scripts/check_cuda_compiles.py`` compiles the
CUDA sources with on a machine whose torch has no CUDA (CI).
"""
import glob
import os
import sys

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCH_LIST = "8.0;9.0+PTX"


def want_cuda():
    forced = os.environ.get("FORCE_CUDA", "0") == "1"
    return CUDA_HOME is not None and (forced or torch.cuda.is_available())


def extension(force_cuda: bool = False):
    csrc = os.path.join("csrc")
    sources = [os.path.join(csrc, "posefast_ops.cpp")] + sorted(glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    sources += sorted(glob.glob(os.path.join(csrc, "autograd", "*.cpp")))
    cxx = ["-O3"]
    if sys.platform.startswith("linux"):
        # at::parallel_for is inline in ATen's headers: with torch's OpenMP backend it is a
        # `#pragma omp parallel`, which runs on ONE thread unless this code is compiled with
        # -fopenmp. Not linked with -lgomp: the GOMP_* symbols resolve at load time to the
        # libgomp torch has already loaded globally, so ops share torch's thread pool and
        # torch.set_num_threads.
        cxx.append("-fopenmp")
    if not (force_cuda or want_cuda()):
        return CppExtension("posefast._C", sources, extra_compile_args={"cxx": cxx})
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
    sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
    nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
    return CUDAExtension("posefast._C", sources, extra_compile_args={"cxx": cxx, "nvcc": nvcc})


if __name__ == "__main__":  # setuptools runs this file as __main__; the compile check imports it
    setup(
        name="posefast",
        version="0.1.0",
        description="Fast 2D human pose estimation with fused CUDA kernels",
        packages=find_packages(include=["posefast", "posefast.*", "kernels_py"]),
        ext_modules=[extension()],
        cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
        python_requires=">=3.10",
        install_requires=["torch", "numpy", "pyyaml", "tqdm", "pycocotools", "pillow",
                          "matplotlib", "opencv-python-headless"],
    )
