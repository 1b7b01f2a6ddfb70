"""posefast.ops.pose_loss (the fused dual loss) against the unfused composition of the
reference ops (kernels_py) and against posefast.losses.PoseLoss, value and gradient."""
import pytest
import torch

import kernels_py
from op_cases import DEVICES
from posefast.losses import PoseLoss
from posefast.ops import pose_loss
from posefast.skeleton import DEFAULT_JOINT_WEIGHTS

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 17, 13, 9), (4, 17, 64, 48), (2, 17, 96, 72), (1, 17, 256, 192),
          (2, 5, 130, 67)]  # the last two: CUDA splits each map into chunks (67: unvectorised)
KINDS = ["bce", "mse"]


def make_inputs(shape, dtype, device, seed, hidden=0.3, nan_hidden=True):
    b, k, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3 - 1).to(device=device, dtype=dtype)
    # keypoints spread a little beyond the map, so partial Gaussians are covered too
    kp = torch.rand(b, k, 2, generator=gen, dtype=torch.float64) * torch.tensor([w + 3.0, h + 3.0]) - 1.5
    vis = (torch.rand(b, k, generator=gen) > hidden).float()
    if nan_hidden:
        kp[vis == 0] = float("nan")
    weights = torch.rand(k, generator=gen, dtype=torch.float64) + 0.5
    kp_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    return logits, kp.to(device=device, dtype=kp_dtype), vis.to(device), weights.to(device=device, dtype=kp_dtype)


def reference(logits, kp, vis, sigma, weights, coord_weight, beta, kind):
    """float64 reference value and gradient on the same (rounded) logits."""
    z = logits.detach().double().requires_grad_()
    loss, parts = kernels_py.pose_loss(z, kp.double(), vis, sigma, weights.double(), coord_weight, beta, kind)
    (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), parts, grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", KINDS)
def test_value_and_gradient_match_unfused_reference(device, shape, dtype, kind):
    logits, kp, vis, weights = make_inputs(shape, dtype, device, seed=sum(shape) + len(kind))
    z = logits.clone().requires_grad_()
    loss, parts = pose_loss(z, kp, vis, 1.7, weights, 0.3, 0.8, kind)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    assert loss.dtype == acc and loss.shape == () and parts.shape == (2,) and not parts.requires_grad
    loss.backward()
    assert z.grad.dtype == dtype and z.grad.shape == z.shape
    ref, ref_parts, ref_grad = reference(logits, kp, vis, 1.7, weights, 0.3, 0.8, kind)
    rtol = 1e-10 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(loss.double(), ref, rtol=rtol, atol=rtol)
    torch.testing.assert_close(parts.double(), ref_parts, rtol=rtol, atol=rtol)
    # gradient error relative to the largest entry (float32 accumulation, then rounded to dtype)
    gtol = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(z.grad.double(), ref_grad, atol=gtol * ref_grad.abs().max().item(), rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(device, kind):
    logits, kp, vis, weights = make_inputs((2, 4, 6, 5), torch.float64, device, seed=3)
    vis[0, 0] = 1.0
    kp[0, 0] = float("nan")  # visible but non-finite: zero target, nan_to_num'd coordinate target
    z = logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: pose_loss(x, kp, vis, 1.3, weights, 0.7, 1.4, kind)[0], (z,))
    z1 = make_inputs((1, 2, 1, 4), torch.float64, device, seed=4, hidden=0.0)[0].requires_grad_()
    kp1 = torch.tensor([[[1.2, 0.3], [2.6, -0.4]]], dtype=torch.float64, device=device)
    vis1 = torch.ones(1, 2, device=device)
    assert torch.autograd.gradcheck(lambda x: pose_loss(x, kp1, vis1, 0.9, None, 2.0, 0.5, kind)[0], (z1,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_the_training_loss(device, kind):
    """Same value and gradient as posefast.losses.PoseLoss (the unfused training path)."""
    logits, kp, vis, _ = make_inputs((3, 17, 16, 12), torch.float32, device, seed=9)
    weights = torch.tensor(DEFAULT_JOINT_WEIGHTS, device=device)
    z1, z2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    unfused = PoseLoss(kind=kind, coord_weight=0.2, sigma=2.0, beta=1.5).to(device)
    if hasattr(unfused, "fused"):
        unfused.fused = False
    out = unfused(z1, kp, vis)
    loss, parts = pose_loss(z2, kp, vis, 2.0, weights, 0.2, 1.5, kind)
    torch.testing.assert_close(loss, out.total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts, torch.stack([out.heatmap, out.coord]), rtol=1e-5, atol=1e-6)
    out.total.backward()
    loss.backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_hidden_joints_are_masked_and_not_read(device):
    logits, kp, vis, weights = make_inputs((2, 5, 8, 6), torch.float32, device, seed=5, hidden=0.0)
    vis[0, 1] = 0
    vis[1, 4] = 0
    base, base_parts = pose_loss(logits, kp, vis, 2.0, weights)
    z = logits.clone()
    z[0, 1] = float("nan")  # a hidden map's logits are never read: even NaN changes nothing
    z[1, 4] += 100.0
    kp2 = kp.clone()
    kp2[0, 1] = float("nan")
    z.requires_grad_()
    loss, parts = pose_loss(z, kp2, vis, 2.0, weights)
    loss.backward()
    assert loss.item() == base.item()
    torch.testing.assert_close(parts, base_parts, rtol=0, atol=0)
    assert torch.all(z.grad[0, 1] == 0) and torch.all(z.grad[1, 4] == 0)
    assert torch.isfinite(z.grad).all() and z.grad[0, 0].abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_no_visible_joint_gives_zero_loss(device):
    logits = torch.randn(2, 3, 4, 4, device=device, requires_grad=True)
    kp = torch.full((2, 3, 2), float("nan"), device=device)
    loss, parts = pose_loss(logits, kp, torch.zeros(2, 3, device=device), 2.0)
    loss.backward()
    assert loss.item() == 0.0 and parts.tolist() == [0.0, 0.0]
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("device", DEVICES)
def test_bool_visibility_sequence_weights_and_scaled_gradient(device):
    logits, kp, vis, _ = make_inputs((2, 3, 7, 5), torch.float64, device, seed=6)
    weights = [1.0, 2.0, 0.5]
    z1, z2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss1, _ = pose_loss(z1, kp, vis > 0, 1.5, weights, 0.4, 1.0, "bce")
    loss2, _ = pose_loss(z2, kp, vis, 1.5, torch.tensor(weights, dtype=torch.float64, device=device), 0.4)
    assert loss1.item() == loss2.item()
    (3.0 * loss1).backward()
    loss2.backward()
    torch.testing.assert_close(z1.grad, 3.0 * z2.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_and_channels_last(device):
    logits, kp, vis, weights = make_inputs((2, 17, 12, 10), torch.float32, device, seed=21)
    wide = make_inputs((2, 17, 12, 20), torch.float32, device, seed=21)[0][..., ::2]
    for z in (logits.to(memory_format=torch.channels_last), wide, logits.transpose(2, 3).contiguous().transpose(2, 3)):
        assert not z.is_contiguous()
        z = z.clone().requires_grad_()
        loss, _ = pose_loss(z, kp, vis, 2.0, weights)
        loss.backward()
        ref = z.detach().contiguous().requires_grad_()
        ref_loss, _ = pose_loss(ref, kp, vis, 2.0, weights)
        ref_loss.backward()
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(z.grad, ref.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    z = torch.zeros(0, 17, 8, 6, device=device, requires_grad=True)
    loss, parts = pose_loss(z, torch.zeros(0, 17, 2, device=device), torch.zeros(0, 17, device=device), 2.0)
    assert loss.item() == 0.0 and parts.tolist() == [0.0, 0.0]
    loss.backward()
    assert z.grad.shape == z.shape


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_training_step_shape(device):
    """bf16 logits (autocast output): float32 loss, bf16 gradient close to the float32 one."""
    logits, kp, vis, weights = make_inputs((8, 17, 64, 48), torch.float32, device, seed=8)
    zb = logits.to(torch.bfloat16).requires_grad_()
    zf = zb.detach().float().requires_grad_()
    lb, _ = pose_loss(zb, kp, vis, 2.0, weights)
    lf, _ = pose_loss(zf, kp, vis, 2.0, weights)
    lb.backward()
    lf.backward()
    assert lb.dtype == torch.float32 and zb.grad.dtype == torch.bfloat16
    torch.testing.assert_close(lb, lf, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(zb.grad.float(), zf.grad, atol=1e-2 * zf.grad.abs().max().item(), rtol=0)


def _bad(**overrides):
    args = dict(logits=torch.randn(2, 3, 4, 5), keypoints=torch.rand(2, 3, 2), visible=torch.ones(2, 3), sigma=2.0,
                joint_weights=None, coord_weight=0.1, beta=1.0, heatmap_loss="bce")
    args.update(overrides)
    return args


@pytest.mark.parametrize("overrides, match", [
    (dict(logits=torch.randn(2, 3, 4)), r"logits must have shape \[B, K, H, W\]"),
    (dict(logits=torch.randn(2, 3, 0, 5)), "H > 0 and W > 0"),
    (dict(logits=torch.ones(2, 3, 4, 5, dtype=torch.int32)), "logits must be a floating-point"),
    (dict(logits=[1.0]), "logits must be a torch.Tensor"),
    (dict(keypoints=torch.rand(2, 4, 2)), r"keypoints must have shape \[B, K, 2\] = \[2, 3, 2\]"),
    (dict(keypoints=torch.ones(2, 3, 2, dtype=torch.int64)), "keypoints must be a floating-point"),
    (dict(visible=torch.ones(3, 2)), r"visible must have shape \[B, K\]"),
    (dict(visible=torch.ones(2, 3, dtype=torch.complex64)), "visible must be a bool, integer or float"),
    (dict(joint_weights=[1.0, 2.0]), r"joint_weights must have shape \[K\] = \[3\]"),
    (dict(sigma=0.0), "sigma must be positive"),
    (dict(sigma="2"), "sigma must be a positive number"),
    (dict(beta=-1.0), "beta must be positive"),
    (dict(coord_weight=float("nan")), "coord_weight must be a finite number"),
    (dict(coord_weight=float("inf")), "coord_weight must be a finite number"),
    (dict(sigma=1e-20), r"sigma must be in \[1e-06"),
    (dict(beta=float("inf")), r"beta must be in"),
    (dict(joint_weights=2.0), "joint_weights must be a float tensor or a sequence of 3 numbers, got 2.0"),
    (dict(heatmap_loss="l1"), "heatmap_loss must be one of"),
])
def test_bad_inputs_raise_value_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        pose_loss(**_bad(**overrides))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a visible CUDA GPU")
def test_device_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match="keypoints is on cpu but logits is on cuda"):
        pose_loss(**_bad(logits=torch.randn(2, 3, 4, 5, device="cuda")))


def test_cpp_checks_guard_direct_calls():
    with pytest.raises(RuntimeError, match="heatmap_loss must be 'bce' or 'mse'"):
        torch.ops.posefast.pose_loss_forward(torch.randn(1, 2, 3, 3), torch.rand(1, 2, 2), torch.ones(1, 2),
                                             torch.ones(2), 2.0, 0.1, 1.0, "huber")
    with pytest.raises(RuntimeError, match="joint_weights must have shape"):
        torch.ops.posefast.pose_loss_forward(torch.randn(1, 2, 3, 3), torch.rand(1, 2, 2), torch.ones(1, 2),
                                             torch.ones(3), 2.0, 0.1, 1.0, "bce")


def test_opcheck():
    logits, kp, vis, weights = make_inputs((2, 3, 5, 4), torch.float32, "cpu", seed=1)
    for kind in KINDS:
        args = (logits.clone().requires_grad_(), kp, vis, weights, 2.0, 0.3, 1.5, kind)
        torch.library.opcheck(torch.ops.posefast.pose_loss_forward.default, args)
        loss, coords, lse, norm = torch.ops.posefast.pose_loss_forward(logits, kp, vis, weights, 2.0, 0.3, 1.5, kind)
        torch.library.opcheck(torch.ops.posefast.pose_loss_backward.default,
                              (torch.tensor([1.0, 0.5, -0.2]), logits, kp, vis, weights, coords, lse, norm, 2.0, 0.3,
                               1.5, kind))
    torch.library.opcheck(torch.ops.posefast.pose_loss_forward.default,
                          (logits.to(torch.bfloat16), kp, vis, weights, 2.0, 0.3, 1.0, "bce"))


def test_differentiable_parts_through_the_raw_op():
    """The raw op's loss output [total, heatmap, coord] is differentiable in every entry."""
    logits, kp, vis, weights = make_inputs((2, 3, 6, 5), torch.float64, "cpu", seed=2)
    z = logits.requires_grad_()
    coef = torch.tensor([0.7, -1.3, 2.1], dtype=torch.float64)

    def f(x):
        return (torch.ops.posefast.pose_loss_forward(x, kp, vis, weights, 1.5, 0.3, 1.2, "bce")[0] * coef).sum()

    assert torch.autograd.gradcheck(f, (z,))


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    logits, kp, vis, weights = make_inputs((2, 4, 8, 6), torch.float32, "cpu", seed=13)

    @torch.compile(fullgraph=True, backend="inductor")
    def step(z):
        loss, parts = pose_loss(z * 2.0, kp, vis, 2.0, weights, 0.1, 1.0, "bce")
        return loss, parts

    z = logits.clone().requires_grad_()
    loss, parts = step(z)
    loss.backward()
    ref_z = logits.clone().requires_grad_()
    ref, ref_parts = kernels_py.pose_loss(ref_z * 2.0, kp, vis, 2.0, weights, 0.1, 1.0, "bce")
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts, ref_parts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad, ref_z.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_contiguous_logits_at_an_unaligned_address(device, dtype):
    """Logits one element into their storage: no 16-byte vector loads on them; same loss and
    gradient as an aligned copy."""
    logits, kp, vis, weights = make_inputs((2, 17, 16, 12), dtype, device, seed=31)
    flat = torch.empty(1 + logits.numel(), dtype=dtype, device=device)
    z = flat[1:].view(logits.shape).copy_(logits).requires_grad_()
    assert z.is_contiguous() and z.data_ptr() % 16 != 0
    z_aligned = logits.clone().requires_grad_()
    loss, parts = pose_loss(z, kp, vis, 2.0, weights)
    loss_aligned, parts_aligned = pose_loss(z_aligned, kp, vis, 2.0, weights)
    torch.testing.assert_close(loss, loss_aligned, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(parts, parts_aligned, rtol=1e-6, atol=1e-7)
    loss.backward()
    loss_aligned.backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(z.grad.double(), z_aligned.grad.double(),
                               atol=tol * z_aligned.grad.abs().max().item(), rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, width", [(torch.float32, 8200), (torch.float64, 4200)])
def test_maps_too_wide_for_the_factor_table(device, dtype, width):
    """H + W beyond what the CUDA kernel keeps in shared memory (8192 float32 / 4096 float64
    factors): the Gaussian is evaluated per pixel instead; same value and gradient."""
    logits, kp, vis, weights = make_inputs((1, 2, 1, width), dtype, device, seed=32, hidden=0.0)
    z = logits.clone().requires_grad_()
    loss, parts = pose_loss(z, kp, vis, 3.0, weights, 0.1, 0.5, "bce")
    loss.backward()
    ref, ref_parts, ref_grad = reference(logits, kp, vis, 3.0, weights, 0.1, 0.5, "bce")
    rtol = 1e-10 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(loss.double(), ref, rtol=rtol, atol=rtol)
    torch.testing.assert_close(parts.double(), ref_parts, rtol=rtol, atol=rtol)
    gtol = 1e-10 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(z.grad.double(), ref_grad, atol=gtol * ref_grad.abs().max().item(), rtol=0)



def test_targets_and_weights_are_never_differentiated():
    """Keypoints, visibility and joint weights that require grad are read, not differentiated."""
    logits, kp, vis, weights = make_inputs((2, 3, 5, 4), torch.float32, "cpu", seed=5)
    z = logits.requires_grad_()
    kp, vis, weights = kp.requires_grad_(), vis.requires_grad_(), weights.requires_grad_()
    loss, parts = pose_loss(z, kp, vis, 2.0, weights)
    loss.backward()
    assert z.grad is not None and kp.grad is None and vis.grad is None and weights.grad is None
    expected, _ = pose_loss(logits.detach(), kp.detach(), vis.detach(), 2.0, weights.detach())
    assert torch.equal(loss.detach(), expected)


@pytest.mark.current_kernels
@pytest.mark.parametrize("device", DEVICES)
def test_visible_is_compared_in_its_own_dtype(device):
    """A float64 mask of 1e-300 counts with float32 logits (visible > 0, as PoseLoss and the
    reference say); converted to float32 first it would be 0."""
    logits, kp, _, weights = make_inputs((2, 3, 7, 5), torch.float32, device, seed=8, nan_hidden=False)
    flags = torch.tensor([[1e-300, 0.0, 1.0], [-1e-300, float("nan"), 1e-300]], dtype=torch.float64, device=device)
    loss, parts = pose_loss(logits, kp, flags, 1.5, weights)
    loss_bool, parts_bool = pose_loss(logits, kp, flags > 0, 1.5, weights)
    assert loss.item() == loss_bool.item() and torch.equal(parts, parts_bool)
    ref, _, _ = reference(logits, kp, flags, 1.5, weights, 0.1, 1.0, "bce")
    torch.testing.assert_close(loss.double(), ref, atol=1e-5, rtol=1e-5)
