"""CUDA against CPU on the same inputs (skipped without a visible GPU).

The per-op test files already run every reference comparison on CUDA too (DEVICES); these
check that the two compiled implementations agree with each other directly.
"""
import pytest
import torch

from posefast.ops import pck_counts, render_heatmaps, soft_argmax

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")]


@pytest.mark.parametrize("shape", [(64, 17, 64, 48), (3, 17, 13, 9), (2, 17, 256, 192)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_render_cuda_matches_cpu(shape, dtype):
    b, k, h, w = shape
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(b, k, 2, generator=gen) * torch.tensor([w, h])
    vis = torch.rand(b, k, generator=gen) > 0.2
    cpu = render_heatmaps(kp, vis, (h, w), 2.0, dtype=dtype)
    gpu = render_heatmaps(kp.cuda(), vis.cuda(), (h, w), 2.0, dtype=dtype)
    torch.testing.assert_close(gpu.cpu().double(), cpu.double(), atol=2e-6 if dtype != torch.bfloat16 else 8e-3, rtol=0)


@pytest.mark.parametrize("shape", [(64, 17, 64, 48), (3, 17, 13, 9), (2, 17, 256, 192)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_soft_argmax_cuda_matches_cpu(shape, dtype):
    h = (torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    h_cpu = h.clone().requires_grad_()
    h_gpu = h.cuda().requires_grad_()
    out_cpu, out_gpu = soft_argmax(h_cpu, 1.3), soft_argmax(h_gpu, 1.3)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=2e-4 * max(1, shape[2] / 64), rtol=1e-5)
    g = torch.randn(out_cpu.shape, generator=torch.Generator().manual_seed(2)).to(out_cpu.dtype)
    out_cpu.backward(g)
    out_gpu.backward(g.cuda())
    scale = max(1.0, h_cpu.grad.abs().max().item())
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(h_gpu.grad.cpu().double(), h_cpu.grad.double(), atol=tol * scale, rtol=0)


def test_pck_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(4096, 17, 2, generator=gen) * 100
    pred = gt + torch.randn(4096, 17, 2, generator=gen) * 8
    vis = torch.rand(4096, 17, generator=gen) > 0.2
    norm = torch.rand(4096, generator=gen) * 50
    thr = torch.linspace(0, 0.5, 20)
    cpu = pck_counts(pred, gt, vis, norm, thr)
    gpu = pck_counts(pred.cuda(), gt.cuda(), vis.cuda(), norm.cuda(), thr.cuda())
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])


def test_opcheck_on_cuda():
    h = torch.randn(2, 3, 8, 8, device="cuda", requires_grad=True)
    torch.library.opcheck(torch.ops.posefast.soft_argmax_forward.default, (h, 1.0))
    kp = torch.rand(2, 3, 2, device="cuda") * 8
    torch.library.opcheck(torch.ops.posefast.render_heatmaps.default,
                          (kp, torch.ones(2, 3, device="cuda"), None, 2.0, 8, 8, torch.float32))
