import sys

import pytest
import torch

from posefast.ops import _extension


def test_missing_extension_says_how_to_build(monkeypatch):
    monkeypatch.setitem(sys.modules, "posefast._C", None)  # makes `from posefast import _C` fail
    with pytest.raises(ImportError, match=r"pip install -e \. --no-build-isolation"):
        _extension.load_extension()


def test_all_ops_registered():
    import torch

    for name in ("render_heatmaps", "soft_argmax_forward", "soft_argmax_backward", "pck_counts"):
        assert hasattr(torch.ops.posefast, name)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the -fopenmp build flag is Linux-only")
def test_cpu_ops_can_use_torchs_openmp_threads():
    # at::parallel_for is inline in ATen's headers: under torch's OpenMP backend an extension
    # compiled without -fopenmp silently runs every CPU op on one thread. The built module
    # must call into OpenMP (GOMP_parallel), resolved against the libgomp torch loaded.
    import torch

    import posefast._C as ext

    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("this torch does not use the OpenMP parallel backend")
    with open(ext.__file__, "rb") as f:
        assert b"GOMP_parallel" in f.read(), "posefast._C was built without -fopenmp: CPU ops run on one thread"


def test_results_do_not_depend_on_thread_count():
    import torch

    import kernels_py
    from posefast.ops import pck_counts, render_heatmaps, soft_argmax

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 17, 32, 24, generator=gen) * 3
    kp = torch.rand(8, 17, 2, generator=gen) * 20
    vis = torch.rand(8, 17, generator=gen) > 0.2
    norm = torch.rand(8, generator=gen) * 30 + 1
    thr = torch.linspace(0, 0.5, 11)
    before = torch.get_num_threads()
    outputs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xg = x.clone().requires_grad_()
            coords = soft_argmax(xg)
            coords.sum().backward()
            outputs.append((render_heatmaps(kp, vis, (32, 24), 2.0), coords.detach(), xg.grad,
                            *pck_counts(coords.detach(), kp, vis, norm, thr)))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*outputs):
        assert torch.equal(a, b)
    coords, hits = outputs[0][1], outputs[0][3]
    assert torch.equal(hits, kernels_py.pck_counts(coords, kp, vis, norm, thr)[0])


@pytest.mark.parametrize("op", ["soft_argmax", "pose_loss"])
def test_a_second_derivative_is_refused_not_silently_zero(op):
    import posefast.ops as pf

    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    if op == "soft_argmax":
        y = pf.soft_argmax(x, 1.0).sum()
    else:
        kp = torch.rand(2, 3, 2, dtype=torch.float64) * 3
        y = pf.pose_loss(x, kp, torch.ones(2, 3), 1.5)[0]
    (grad,) = torch.autograd.grad(y, x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad.sum().backward()
