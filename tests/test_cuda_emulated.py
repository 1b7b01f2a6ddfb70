"""The CUDA kernels (csrc/cuda/*.cu) run on the CPU under tests/cuda_emu, without a GPU.

tests/cuda_emu/build.py compiles the .cu sources with the host compiler against an emulated
CUDA execution model (cooperative fibers per thread, warp collectives, shared memory, launch
limits, guard bytes; see cuda_emu.h). These tests check the emulation itself, then run the
CPU op test files with every torch.ops.posefast op routed to the emulated CUDA kernels
(POSEFAST_CUDA_EMU), so each reference comparison, special-value and gradcheck test there
also tests the CUDA code: its indexing, chunking, vector paths, reductions and the device-only
branches of pose_math.h. What only a GPU shows (timing, races, the hardware's own rounding
beyond the modelled bounds) still needs test_ops_cuda.py on a GPU.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import posefast.ops  # noqa: F401  (loads torch.ops.posefast, the CPU kernels compared with)
from cuda_emu.build import LAUNCH, translate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OP_TEST_FILES = ["test_ops_render.py", "test_ops_soft_argmax.py", "test_ops_pck.py", "test_ops_pose_loss.py",
                 "test_ops_validation.py", "test_ops_extension.py"]
needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None and shutil.which("g++") is None,
                                    reason="no C++ compiler")


@pytest.fixture(scope="session")
def emu_dir(tmp_path_factory):
    """The emulated kernels, built once per test session (about a minute on 2 cores)."""
    from cuda_emu.build import load_emulated_ops

    path = os.environ.get("POSEFAST_CUDA_EMU") or str(tmp_path_factory.mktemp("cuda_emu"))
    load_emulated_ops(path)
    return path


@pytest.mark.parametrize("line", ["__shared__ float a[4], b[4];", "asm volatile(\"trap;\");",
                                  "#if __CUDA_ARCH__ >= 800", "at::Tensor t = at::zeros_like(x);"])
def test_translate_refuses_what_it_does_not_rewrite(line):
    with pytest.raises(ValueError, match=r"y\.cu:2: cuda_emu cannot translate"):
        translate("// ok\n" + line + "\n", "y.cu")


def test_translate_rewrites_launches_and_shared_memory():
    src = ("__global__ void k(float* o) {\n  __shared__ float part[8];\n  extern __shared__ __align__(16) "
           "unsigned char smem[];\n}\nvoid f(float* o, cudaStream_t) {\n  k<float, 4><<<grid, 256, 64, stream>>>(o);\n}\n")
    with pytest.raises(ValueError, match=r"x\.cu:5: cuda_emu cannot translate 'cudaStream'"):
        translate(src, "x.cu")
    out = translate(src.replace("cudaStream_t", "int"), "x.cu")
    assert 'Launch(grid, 256, 64, stream).run("k<float, 4>", k<float, 4>, o);' in out
    assert "static float part[8]; ::cuda_emu::poison_static_shared(&part, sizeof(part));" in out
    assert "unsigned char* smem = ::cuda_emu::dynamic_smem();" in out
    assert out.count("\n") == src.count("\n") + 2  # the include and #line: messages keep their line numbers
    assert LAUNCH.search("a<<<1, 2>>>(x)")[1] == "a"
    cast = translate("auto v = *reinterpret_cast<const Vec<scalar_t, VEC>*>(src + e);\n", "v.cu")
    assert "auto v = *::cuda_emu::checked_reinterpret<const Vec<scalar_t, VEC>*>(src + e);" in cast
    bounded = translate("__global__ void __launch_bounds__(kBlock, 4)\n    k(float* o) {\n  o[0] = 1;\n}\n", "z.cu")
    assert 'void \n    k(float* o) { ::cuda_emu::check_launch_bounds(kBlock, "kBlock");\n' in bounded
    # a bound named in a comment puts no check into the next function's body
    assert "check_launch_bounds" not in translate("// __launch_bounds__(64) is wrong here\nvoid f() {\n}\n", "c.cu")


@needs_compiler
def test_emulated_collectives_give_cudas_results(emu_dir):
    out = torch.ops.posefast_emu.selftest("collectives", 3)
    # per block of 128: sum of 0..127 by shuffles + shared memory; 16 odd lanes in a ballot of
    # warp 0; 0 + ... + 31 in every lane after a butterfly of __shfl_xor_sync
    assert out.tolist() == [8128.0] * 3 + [16.0] * 3 + [496.0] * 3


@needs_compiler
@pytest.mark.parametrize("case, message", [
    ("early_exit_sync", r"deadlock: 127 threads wait at __syncthreads .* 1 have exited"),
    ("half_warp_shuffle", r"deadlock: 0 threads wait at __syncthreads and 64 at a warp collective"),
    ("partial_mask", r"exception in thread \d+: .*mask 0xffff in a warp of 32 lanes"),
    ("mixed_collectives", r"is in __(ballot|shfl_down)_sync while lane \d+ is in __(shfl_down|ballot)_sync"),
    ("overrun", r"overrun_kernel wrote past the end of a tensor of 12 bytes"),
    ("smem_overrun", r"wrote past its dynamic shared memory"),
    ("smem_too_large", r"50176 bytes of dynamic shared memory"),
    ("block_too_large", r"block of 2048 threads"),
    ("misaligned", r"misaligned address: a pointer 4 bytes past a 16-byte boundary"),
    ("launch_bounds", r"block of 128 threads exceeds the kernel's __launch_bounds__\(kBlock / 2\) = 64"),
])
def test_emulation_refuses_what_a_gpu_would_not_run(emu_dir, case, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.posefast_emu.selftest(case, 1)


@needs_compiler
def test_overruns_are_caught_in_inference_mode_too(emu_dir):
    with torch.inference_mode(), pytest.raises(RuntimeError, match="wrote past the end of a tensor"):
        torch.ops.posefast_emu.selftest("overrun", 1)


@needs_compiler
def test_a_race_between_lanes_shows_under_one_of_the_schedules(emu_dir):
    """Three launches in a row get the three schedules: lanes in ascending order read lane 0's
    write, the descending one reads shared memory nobody wrote yet."""
    if os.environ.get("CUDA_EMU_SCHEDULE"):
        pytest.skip("CUDA_EMU_SCHEDULE pins one schedule")
    reads = [torch.ops.posefast_emu.selftest("lane_race", 1)[0].item() for _ in range(3)]
    assert sum(r == 42.0 for r in reads) == 2 and sum(r != r for r in reads) == 1, reads


@needs_compiler
def test_unwritten_shared_memory_reads_as_nan(emu_dir):
    assert torch.isnan(torch.ops.posefast_emu.selftest("unwritten_shared", 1)[0])


@needs_compiler
def test_launches_are_logged_with_their_shape(emu_dir):
    """The forward of a 256x192 float32 map takes 6 chunks of 2,048 16-byte vectors and a
    merge; a 64x48 map one block: the chunked and the one-block paths both run here."""
    log = torch.ops.posefast_emu.launch_log
    log(True)
    torch.ops.posefast_emu.soft_argmax_forward(torch.randn(2, 3, 256, 192), 1.0)
    assert log(True) == [6, 6, 1, 256, 1, 1, 0, 1, 1, 1, 128, 1, 1, 0]
    torch.ops.posefast_emu.soft_argmax_forward(torch.randn(2, 3, 64, 48), 1.0)
    assert log(True) == [6, 1, 1, 256, 1, 1, 0]
    # pck_counts: up to 8,192 instances one 1,024-thread block per joint stores its counts;
    # beyond, 256-instance blocks add theirs atomically (shared: 20 thresholds, 20 counts, 1)
    for n, shape in ((4096, [1, 17, 1, 1024, 1, 1, 20 * 8 + 4]), (9000, [36, 17, 1, 256, 1, 1, 20 * 8 + 4])):
        gt = torch.rand(n, 17, 2) * 100
        torch.ops.posefast_emu.pck_counts(gt + 1, gt, torch.rand(n, 17) > 0.2, torch.ones(n) * 30,
                                          torch.linspace(0, 0.5, 20))
        assert log(True) == shape


# ATen calls in a CUDA launcher that are kernel launches of their own on a GPU
GPU_LAUNCHING_ATEN = ("aten::fill_", "aten::zero_", "aten::copy_", "aten::_to_copy", "aten::gt")


@needs_compiler
def test_pck_counts_is_one_launch_for_the_usual_inputs(emu_dir):
    """The benchmark's case (float32 points, bool mask, 4,096 instances): no zero-fill of the
    outputs and no conversion of the mask beside the kernel, so on a GPU the op is one launch."""
    gt = torch.rand(4096, 17, 2) * 100
    args = (gt + 1, gt, torch.rand(4096, 17) > 0.2, torch.ones(4096) * 30, torch.linspace(0, 0.5, 20))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        torch.ops.posefast_emu.pck_counts(*args)
    names = {e.name for e in prof.events()}
    assert "posefast_emu::pck_counts" in names and not names.intersection(GPU_LAUNCHING_ATEN), sorted(names)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:  # the test can fail:
        torch.ops.posefast_emu.pck_counts(*args[:2], args[2].to(torch.int8), *args[3:])  # int8 is converted
    assert "aten::gt" in {e.name for e in prof.events()}


@needs_compiler
@pytest.mark.parametrize("shape", [(64, 17, 64, 48), (3, 17, 13, 9), (2, 17, 256, 192)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_emulated_soft_argmax_matches_cpu_within_the_gpu_tests_tolerance(emu_dir, shape, dtype):
    """test_ops_cuda.py's comparison of the two implementations, with the emulated kernels."""
    if os.environ.get("POSEFAST_CUDA_EMU"):
        pytest.skip("torch.ops.posefast is routed to the emulation too: it would be compared with itself")
    h = (torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    coords, lse = torch.ops.posefast_emu.soft_argmax_forward(h, 1.3)
    coords_cpu, lse_cpu = torch.ops.posefast.soft_argmax_forward(h, 1.3)
    torch.testing.assert_close(coords, coords_cpu, atol=2e-4 * max(1, shape[2] / 64), rtol=1e-5)
    g = torch.randn(coords.shape, generator=torch.Generator().manual_seed(2)).to(coords.dtype)
    grad = torch.ops.posefast_emu.soft_argmax_backward(g, h, coords, lse, 1.3)
    grad_cpu = torch.ops.posefast.soft_argmax_backward(g, h, coords_cpu, lse_cpu, 1.3)
    scale = max(1.0, grad_cpu.abs().max().item())
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(grad.double(), grad_cpu.double(), atol=tol * scale, rtol=0)


def test_ops_run_the_emulated_kernels_when_routed():
    """Run by test_op_tests_pass_on_the_emulated_kernels inside its routed session."""
    if not os.environ.get("POSEFAST_CUDA_EMU"):
        pytest.skip("only meaningful with POSEFAST_CUDA_EMU (the routed op-test run sets it)")
    from posefast.ops import render_heatmaps

    torch.ops.posefast_emu.launch_log(True)
    render_heatmaps(torch.rand(2, 3, 2) * 8, torch.ones(2, 3), (8, 8), 2.0)
    assert torch.ops.posefast_emu.launch_log(True) == [6, 1, 1, 256, 1, 1, 64]


def host_has_fma() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " fma " in f" {line.split(':', 1)[-1].strip()} " for line in f)
    except OSError:
        return False


@needs_compiler
@pytest.mark.parametrize("variant", ["default", "fused", "one_block_per_map"])
def test_op_tests_pass_on_the_emulated_kernels(emu_dir, tmp_path, variant):
    """Every CPU case of the op test files, with the ops routed to the emulated CUDA kernels;
    "fused" builds them with a * b + c contracted into multiply-adds, as nvcc does by default;
    "one_block_per_map" never splits a map into chunks (POSEFAST_CUDA_CHUNK_VECS=0, the A/B
    setting of benchmarks/device_check.sh) and runs the two ops that split."""
    if os.environ.get("POSEFAST_CUDA_EMU"):
        pytest.skip("already inside the routed run")
    env = dict(os.environ, POSEFAST_CUDA_EMU=emu_dir)
    files = [os.path.join(ROOT, "tests", f) for f in OP_TEST_FILES]
    if variant == "one_block_per_map":
        env["POSEFAST_CUDA_CHUNK_VECS"] = "0"
        files = [os.path.join(ROOT, "tests", f) for f in ("test_ops_soft_argmax.py", "test_ops_pose_loss.py")]
    if variant == "fused":
        if not host_has_fma():
            pytest.skip("this CPU has no fused multiply-add")
        env.update(POSEFAST_CUDA_EMU=str(tmp_path / "emu_fma"), CUDA_EMU_CFLAGS="-O2 -mfma -ffp-contract=fast")
    probe = os.path.join(ROOT, "tests", "test_cuda_emulated.py") + "::test_ops_run_the_emulated_kernels_when_routed"
    # "not cuda" drops the GPU cases (and would drop this module's probe, hence the "or")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           "-k", "not cuda or when_routed", probe, *files],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary
    assert f"PASSED {os.path.relpath(probe, ROOT)}" in done.stdout, "the routing probe did not run and pass"
    assert int(summary.split(" passed")[0].split()[-1]) > 150, summary
