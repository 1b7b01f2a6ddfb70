"""The dual loss against its docstring definition, masking, weights and the MSE variant."""
import math

import pytest
import torch

from posefast import ops
from posefast.losses import PoseLoss
from posefast.skeleton import DEFAULT_JOINT_WEIGHTS


def make_batch(seed=0, b=3, k=17, h=16, w=12):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(b, k, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0], dtype=torch.float64)
    vis = (torch.rand(b, k, generator=g) > 0.3).double()
    logits = torch.randn(b, k, h, w, generator=g, dtype=torch.float64) * 3
    return logits, kp, vis


def reference_loss(logits, kp, vis, weights, kind, coord_weight, sigma, beta):
    """Element-by-element transcription of the formulas in posefast.losses' docstring."""
    b, k, h, w = logits.shape
    n = max(sum(1 for bi in range(b) for ki in range(k) if vis[bi, ki] > 0), 1)
    hm = coord = 0.0
    for bi in range(b):
        for ki in range(k):
            if vis[bi, ki] <= 0:
                continue
            x, y = kp[bi, ki].tolist()
            z = logits[bi, ki]
            ii, jj = torch.meshgrid(torch.arange(h, dtype=z.dtype), torch.arange(w, dtype=z.dtype), indexing="ij")
            t = torch.exp(-((jj - x) ** 2 + (ii - y) ** 2) / (2 * sigma**2))
            if kind == "bce":
                per = z.clamp(min=0) - z * t + torch.log1p(torch.exp(-z.abs()))
            else:
                per = (z - t) ** 2
            hm += weights[ki] * per.mean().item()
            p = torch.softmax(beta * z.flatten(), 0).reshape(h, w)
            px, py = (p * jj).sum().item(), (p * ii).sum().item()
            coord += weights[ki] * (abs(px - x) + abs(py - y)) / 2
    return hm / n, coord / n, hm / n + coord_weight * coord / n


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_matches_the_documented_formula(kind):
    logits, kp, vis = make_batch()
    loss = PoseLoss(kind=kind, coord_weight=0.3, sigma=1.5, beta=0.7)
    out = loss(logits, kp, vis)
    hm, coord, total = reference_loss(logits, kp, vis, DEFAULT_JOINT_WEIGHTS, kind, 0.3, 1.5, 0.7)
    assert out.heatmap.item() == pytest.approx(hm, rel=1e-9)
    assert out.coord.item() == pytest.approx(coord, rel=1e-9)
    assert out.total.item() == pytest.approx(total, rel=1e-9)


def test_given_targets_equal_rendered_targets():
    logits, kp, vis = make_batch(1)
    targets = ops.render_heatmaps(kp, vis, size=(16, 12), sigma=2.0, dtype=torch.float64)
    loss = PoseLoss(sigma=2.0)
    assert loss(logits, kp, vis, targets).total.item() == pytest.approx(loss(logits, kp, vis).total.item(), rel=1e-12)


def test_invisible_joints_are_masked_out_even_with_nan_targets():
    logits, kp, vis = make_batch(2)
    vis[0, 3] = 0
    loss = PoseLoss()
    base = loss(logits, kp, vis).total
    logits2, kp2 = logits.clone().requires_grad_(), kp.clone()
    logits2.data[0, 3] += 100.0
    kp2[0, 3] = float("nan")
    out = loss(logits2, kp2, vis)
    out.total.backward()
    assert out.total.item() == pytest.approx(base.item(), rel=1e-12)
    assert torch.all(logits2.grad[0, 3] == 0) and torch.isfinite(logits2.grad).all()


def test_joint_weights_scale_each_joint():
    logits, kp, _ = make_batch(3, b=1, k=2)
    vis = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    one = PoseLoss(joint_weights=[1.0, 1.0])(logits, kp, vis)
    two = PoseLoss(joint_weights=[2.0, 5.0])(logits, kp, vis)
    assert two.total.item() == pytest.approx(2 * one.total.item(), rel=1e-12)


def test_default_weights_emphasise_hard_joints():
    w = PoseLoss().joint_weights.tolist()
    assert w[0] == 1.0 and w[7] == w[8] == w[13] == w[14] == pytest.approx(1.2)
    assert w[9] == w[10] == w[15] == w[16] == 1.5


def test_peaked_logits_at_the_target_give_near_zero_coord_loss():
    kp = torch.tensor([[[5.0, 7.0]]])
    vis = torch.ones(1, 1)
    target = ops.render_heatmaps(kp, vis, size=(16, 12), sigma=2.0)
    logits = (target * 40 - 20)
    out = PoseLoss(joint_weights=[1.0])(logits, kp, vis)
    assert out.coord.item() < 1e-3
    far = PoseLoss(joint_weights=[1.0])(logits.roll(4, dims=-1), kp, vis)
    assert far.coord.item() > 1.5 and far.heatmap.item() > out.heatmap.item()


def test_float32_and_bf16_logits_are_handled():
    logits, kp, vis = make_batch(4)
    ref = PoseLoss()(logits, kp, vis).total.item()
    assert PoseLoss()(logits.float(), kp.float(), vis.float()).total.item() == pytest.approx(ref, rel=1e-5)
    bf = PoseLoss()(logits.bfloat16(), kp.float(), vis.float()).total
    assert bf.dtype == torch.float32 and math.isfinite(bf.item())


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError):
        PoseLoss(kind="l2")


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30])
def test_hidden_maps_are_not_read_by_either_path(fused, bad):
    """A hidden joint's map is neither read nor differentiated, fused or not: a NaN, inf or
    huge logit there leaves the loss and every gradient finite (and equal on both paths)."""
    torch.manual_seed(3)
    clean = torch.randn(2, 3, 8, 8)
    kp, vis = torch.rand(2, 3, 2) * 7, torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    dirty = clean.clone()
    dirty[0, 1, 2, 2] = bad
    dirty[1, 2] = bad
    loss = PoseLoss("mse", joint_weights=[1.0, 1.2, 1.5], fused=fused)
    outs = []
    for logits in (clean, dirty):
        z = logits.clone().requires_grad_()
        total = loss(z, kp, vis).total
        total.backward()
        outs.append((total.detach(), z.grad))
    assert torch.isfinite(outs[1][0]) and torch.isfinite(outs[1][1]).all()
    torch.testing.assert_close(outs[1][0], outs[0][0])
    torch.testing.assert_close(outs[1][1], outs[0][1])
    assert outs[1][1][0, 1].abs().max() == 0 and outs[1][1][1, 2].abs().max() == 0


def test_keypoints_are_targets_on_both_paths():
    z = torch.randn(1, 3, 8, 8, requires_grad=True)
    for fused in (True, False):
        kp = (torch.rand(1, 3, 2) * 7).requires_grad_()
        PoseLoss(joint_weights=[1.0, 1.0, 1.0], fused=fused)(z, kp, torch.ones(1, 3)).total.backward()
        assert kp.grad is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigma=0.0), "sigma must be positive"),
    (dict(beta=float("inf")), "beta must be in"),
    (dict(coord_weight=float("nan")), "coord_weight must be a finite number"),
])
def test_bad_settings_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PoseLoss(**kwargs)


def test_compiles_with_dynamic_shapes():
    """torch.compile(dynamic=True) sees the module's floats as symbols: the checks must trace."""
    torch._dynamo.reset()
    loss = PoseLoss(joint_weights=[1.0, 1.0, 1.0])
    step = torch.compile(lambda z, kp, v: loss(z, kp, v).total, fullgraph=True, dynamic=True, backend="eager")
    z, kp, vis = torch.randn(2, 3, 8, 8), torch.rand(2, 3, 2) * 7, torch.ones(2, 3)
    torch.testing.assert_close(step(z, kp, vis), loss(z, kp, vis).total)
