import pytest
import torch

import kernels_py
from posefast.ops import render_heatmaps
from op_cases import DEVICES, RENDER_ATOL

SHAPES = [(1, 1, 1, 1), (2, 1, 5, 7), (3, 17, 13, 9), (64, 17, 64, 48), (4, 17, 96, 72), (2, 3, 256, 192)]


def random_keypoints(b, k, h, w, device, gen):
    # inside, near and well outside the map, so tails are exercised
    kp = torch.rand(b, k, 2, generator=gen) * torch.tensor([w * 1.4, h * 1.4]) - torch.tensor([w * 0.2, h * 0.2])
    vis = torch.rand(b, k, generator=gen) > 0.2
    return kp.to(device), vis.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_matches_reference(device, shape, dtype):
    gen = torch.Generator().manual_seed(hash((shape, str(dtype))) % 2**31)
    b, k, h, w = shape
    kp, vis = random_keypoints(b, k, h, w, device, gen)
    sigma = 0.5 + 3 * torch.rand((), generator=gen).item()
    out = render_heatmaps(kp, vis, (h, w), sigma, dtype=dtype)
    ref = kernels_py.render_heatmaps(kp.double(), vis, (h, w), sigma, dtype=torch.float64)
    assert out.dtype == dtype and out.shape == (b, k, h, w) and out.device.type == device
    torch.testing.assert_close(out.double(), ref, atol=RENDER_ATOL[dtype], rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_per_joint_sigma_and_bool_or_float_visibility(device):
    gen = torch.Generator().manual_seed(1)
    kp, vis = random_keypoints(8, 17, 32, 24, device, gen)
    sigma = (torch.rand(17, generator=gen) * 3 + 0.5).to(device)
    out_bool = render_heatmaps(kp, vis, (32, 24), sigma)
    out_float = render_heatmaps(kp, vis.float() * 2.0, (32, 24), sigma)
    ref = kernels_py.render_heatmaps(kp.double(), vis, (32, 24), sigma.double(), dtype=torch.float64)
    torch.testing.assert_close(out_bool.double(), ref, atol=2e-6, rtol=0)
    assert torch.equal(out_bool, out_float)


@pytest.mark.parametrize("device", DEVICES)
def test_peak_is_one_and_invisible_is_exact_zero(device):
    kp = torch.tensor([[[3.0, 2.0], [1.0, 1.0]]], device=device)
    vis = torch.tensor([[True, False]], device=device)
    out = render_heatmaps(kp, vis, (5, 6), 1.5)
    assert out[0, 0, 2, 3].item() == 1.0
    assert out[0, 0].argmax().item() == 2 * 6 + 3
    assert torch.count_nonzero(out[0, 1]).item() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_keypoint_outside_leaves_exact_tail(device):
    kp = torch.tensor([[[-3.0, 2.0]]], device=device)
    out = render_heatmaps(kp, torch.ones(1, 1, device=device), (4, 4), 2.0, dtype=torch.float64)
    expected = torch.exp(-torch.tensor(9.0, dtype=torch.float64) / 8)
    torch.testing.assert_close(out[0, 0, 2, 0].cpu(), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_coordinates_render_zero(device):
    kp = torch.tensor([[[float("nan"), 2.0], [1.0, float("inf")], [1.0, 1.0]]], device=device)
    out = render_heatmaps(kp, torch.ones(1, 3, device=device), (4, 5), 1.0)
    assert torch.count_nonzero(out[0, :2]).item() == 0
    assert torch.isfinite(out).all() and out[0, 2].max().item() == 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    gen = torch.Generator().manual_seed(3)
    kp_t = (torch.rand(2, 17, 5, generator=gen) * 20).to(device)
    kp = kp_t[..., 1:5:2]  # strided last dim
    vis = torch.ones(17, 2, device=device).t()  # transposed
    assert not kp.is_contiguous() and not vis.is_contiguous()
    out = render_heatmaps(kp, vis, (20, 16), 2.0)
    ref = render_heatmaps(kp.contiguous(), vis.contiguous(), (20, 16), 2.0)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    out = render_heatmaps(torch.zeros(0, 17, 2, device=device), torch.zeros(0, 17, device=device), (8, 6), 2.0)
    assert out.shape == (0, 17, 8, 6)


def test_not_differentiable_target():
    kp = torch.rand(1, 2, 2, requires_grad=True)
    out = render_heatmaps(kp, torch.ones(1, 2), (4, 4), 1.0)
    assert not out.requires_grad


def test_opcheck():
    kp = torch.rand(3, 5, 2) * 8
    vis = torch.rand(3, 5) > 0.3
    torch.library.opcheck(torch.ops.posefast.render_heatmaps.default, (kp, vis, None, 2.0, 9, 7, torch.float32))
    sigma = torch.rand(5) + 0.5
    torch.library.opcheck(torch.ops.posefast.render_heatmaps.default, (kp, vis.float(), sigma, 1.0, 4, 8, torch.bfloat16))


@pytest.mark.current_kernels
@pytest.mark.parametrize("device", DEVICES)
def test_visible_is_compared_in_its_own_dtype(device):
    """A float64 mask of 1e-300 with float32 keypoints renders (visible > 0, as the reference
    says); converted to float32 first it would be 0."""
    kp = torch.tensor([[[3.0, 2.0], [1.0, 4.0], [2.0, 2.0]]], device=device)
    flags = torch.tensor([[1e-300, -1e-300, float("nan")]], dtype=torch.float64, device=device)
    out = render_heatmaps(kp, flags, (6, 5), 1.0)
    torch.testing.assert_close(out, render_heatmaps(kp, flags > 0, (6, 5), 1.0), atol=0, rtol=0)
    assert out[0, 0].max() == 1.0 and out[0, 1:].abs().sum() == 0
