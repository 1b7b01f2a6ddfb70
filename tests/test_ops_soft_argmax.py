import pytest
import torch

import kernels_py
from posefast.ops import render_heatmaps, soft_argmax
from op_cases import DEVICES

SHAPES = [(1, 1, 1, 1), (2, 1, 5, 7), (3, 17, 13, 9), (64, 17, 64, 48), (4, 17, 96, 72), (2, 17, 256, 192)]
# coordinate tolerance (px) against a float64 reference, by input dtype
COORD_ATOL = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 2e-4, torch.bfloat16: 2e-4}


def random_logits(shape, dtype, device, seed):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * 3).to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_forward_backward_match_reference(device, shape, dtype, beta):
    h = random_logits(shape, dtype, device, seed=sum(shape) + int(beta * 10)).requires_grad_()
    out = soft_argmax(h, beta)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert out.dtype == expected_dtype and out.shape == (*shape[:2], 2)
    # reference on the same (rounded) values, in float64
    h_ref = h.detach().double().requires_grad_()
    ref = kernels_py.soft_argmax(h_ref, beta)
    scale = max(1.0, max(shape[2:]) / 64)
    torch.testing.assert_close(out.double(), ref, atol=COORD_ATOL[dtype] * scale, rtol=1e-5)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    out.backward(grad_out.to(device=device, dtype=out.dtype))
    ref.backward(grad_out.to(device))
    assert h.grad.dtype == dtype
    # error relative to the largest gradient entry: p is recomputed from a float32 log-sum-exp
    gtol = {torch.float64: 1e-10, torch.float32: 5e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    atol = gtol * max(1.0, h_ref.grad.abs().max().item())
    torch.testing.assert_close(h.grad.double(), h_ref.grad, atol=atol, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    h = random_logits((2, 3, 6, 5), torch.float64, device, seed=11).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: soft_argmax(x, 1.7), (h,))
    h1 = random_logits((1, 2, 1, 4), torch.float64, device, seed=12).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: soft_argmax(x, 0.5), (h1,))


@pytest.mark.parametrize("device", DEVICES)
def test_recovers_interior_keypoints_of_rendered_maps(device):
    gen = torch.Generator().manual_seed(5)
    h, w, sigma = 64, 48, 2.0
    margin = 5 * sigma
    kp = torch.rand(16, 17, 2, generator=gen) * torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin]) + margin
    kp = kp.to(device)
    maps = render_heatmaps(kp, torch.ones(16, 17, device=device), (h, w), sigma)
    rec = soft_argmax(torch.log(maps + 1e-12))
    assert (rec - kp).abs().max().item() < 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_logits(device):
    h = torch.zeros(1, 3, 4, 4, device=device)
    h[0, 0, 1, 2] = float("nan")
    h[0, 1, 0, 0] = float("-inf")  # a -inf pixel simply gets probability 0
    h[0, 2] = float("-inf")
    out = soft_argmax(h)
    assert torch.isnan(out[0, 0]).all()
    expected = kernels_py.soft_argmax(h[:, 1:2].double())
    torch.testing.assert_close(out[0, 1].double(), expected[0, 0], atol=1e-5, rtol=0)
    assert torch.isnan(out[0, 2]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_huge_finite_logits_stay_finite(device):
    """Finite logits up to float32's limit give finite results: a kernel that scales the
    logits themselves by log2(e) (2^x weights) would overflow above FLT_MAX / 1.44."""
    h = torch.zeros(2, 2, 4, 8, device=device)  # W = 8: the vectorised CUDA path
    h[0, 0, 1, 2] = 3e38  # one peak: the softmax is one-hot there
    h[0, 1] = -3e38  # flat: the centre of the map
    h[1, 0, 3, 5] = -3e38  # one pixel that gets nothing
    out = soft_argmax(h, beta=1.0)
    expected = kernels_py.soft_argmax(h.double(), 1.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 0].cpu(), torch.tensor([2.0, 1.0]))


def grad_formula(h, coords, lse, grad_coords, beta):
    """dL/dh = beta * exp(beta h - lse) * ((j - x) gx + (i - y) gy), in float64."""
    h, coords, lse, g = (t.double().cpu() for t in (h, coords, lse, grad_coords))
    jj = torch.arange(h.shape[3], dtype=torch.float64)
    ii = torch.arange(h.shape[2], dtype=torch.float64)[:, None]
    x, y = coords[..., 0, None, None], coords[..., 1, None, None]
    p = torch.exp(beta * h - lse[..., None, None])
    return beta * p * ((jj - x) * g[..., 0, None, None] + (ii - y) * g[..., 1, None, None])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_exponent_range(device, dtype):
    """The CPU backward's fast exponential (exp2_fast, valid for finite exponents <= 127 in
    log2 units) must hand every other map to the exact path: -inf pixels get exactly 0,
    an exponent near the float32 limit (beta h - lse = 88.5 > 127 ln 2) stays finite and
    right, and maps far below their log-sum-exp give ~0."""
    h = random_logits((2, 17, 64, 48), torch.float32, device, seed=21)
    h[0, 3, 10, 7] = float("-inf")
    h[1, 5] -= 200.0  # every pixel ~ e^-200 relative to the log-sum-exp given below
    h = h.to(dtype)
    coords, lse = torch.ops.posefast.soft_argmax_forward(h, 1.0)
    lse = lse.clone()
    lse[0, 4] = h[0, 4].float().max() - 88.5  # the raw op accepts any log-sum-exp
    lse[1, 5] = lse[1, 5] + 200.0
    g = torch.randn(2, 17, 2, generator=torch.Generator().manual_seed(3)).to(device)
    g[0, 4] *= 1e-4  # keeps beta p ((j - x) gx + (i - y) gy) below FLT_MAX where p ~ e^88.5
    grad = torch.ops.posefast.soft_argmax_backward(g, h, coords, lse, 1.0)
    ref = grad_formula(h, coords, lse, g, 1.0)
    assert grad[0, 3, 10, 7].item() == 0.0
    assert torch.isfinite(grad[0, 4]).all()
    rtol = 1e-5 if dtype == torch.float32 else 1e-2
    for b, k in [(0, 3), (0, 4), (1, 6)]:
        scale = ref[b, k].abs().max().item()
        torch.testing.assert_close(grad[b, k].double().cpu(), ref[b, k], atol=rtol * scale, rtol=0)
    assert grad[1, 5].abs().max().item() < 1e-30  # weights below 2^-125 are taken as 2^-125


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 5, 7, 33), (2, 3, 1, 17), (2, 2, 256, 192)])
def test_backward_of_peaked_maps(device, shape):
    """float32 maps so peaked (logits ~N(0, 100^2), beta 4) that the forward's x, y round to
    the peak pixel exactly and the true gradient is ~0 everywhere: the backward must not
    add noise larger than the gradient itself. A form such as j * gx - x * gx instead of
    (j - x) * gx cancels at the peak (p ~ 1) and leaves errors ~1e4 times the true gradient.
    (bfloat16 logits tie often at this scale, so x is not a pixel centre there.)"""
    gen = torch.Generator().manual_seed(sum(shape))
    h = (torch.randn(shape, generator=gen) * 100).to(device=device).requires_grad_()
    out = soft_argmax(h, 4.0)
    h_ref = h.detach().double().requires_grad_()
    ref = kernels_py.soft_argmax(h_ref, 4.0)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    out.backward(g.to(device=device, dtype=out.dtype))
    ref.backward(g.to(device))
    err = (h.grad.double() - h_ref.grad).abs().amax(dim=(2, 3))
    scale = h_ref.grad.abs().amax(dim=(2, 3))
    assert (err <= 2 * scale + 1e-30).all(), (err / scale).max().item()


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_and_channels_last(device):
    base = random_logits((2, 17, 12, 10), torch.float32, device, seed=21)
    cl = base.to(memory_format=torch.channels_last)
    sliced = random_logits((2, 17, 12, 20), torch.float32, device, seed=21)[..., ::2]
    for h in (cl, sliced, base.transpose(2, 3)):
        assert not h.is_contiguous()
        h = h.clone().requires_grad_()
        out = soft_argmax(h)
        torch.testing.assert_close(out, soft_argmax(h.detach().contiguous()))
        out.sum().backward()
        ref_h = h.detach().contiguous().requires_grad_()
        soft_argmax(ref_h).sum().backward()
        torch.testing.assert_close(h.grad, ref_h.grad)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    h = torch.zeros(0, 17, 8, 6, device=device, requires_grad=True)
    out = soft_argmax(h)
    assert out.shape == (0, 17, 2)
    out.sum().backward()
    assert h.grad.shape == h.shape


def test_opcheck():
    h = torch.randn(2, 3, 5, 4, requires_grad=True)
    torch.library.opcheck(torch.ops.posefast.soft_argmax_forward.default, (h, 1.5))
    hb = torch.randn(2, 3, 8, 8, dtype=torch.bfloat16)
    torch.library.opcheck(torch.ops.posefast.soft_argmax_forward.default, (hb, 1.0))
    coords, lse = torch.ops.posefast.soft_argmax_forward(h.detach(), 1.5)
    torch.library.opcheck(torch.ops.posefast.soft_argmax_backward.default,
                          (torch.randn(2, 3, 2), h.detach(), coords, lse, 1.5))


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="inductor")
    def loss_fn(h, target):
        return (soft_argmax(h * 2.0, beta=1.5) - target).abs().sum()

    h = torch.randn(2, 4, 8, 6, requires_grad=True)
    target = torch.rand(2, 4, 2) * 5
    loss = loss_fn(h, target)
    loss.backward()
    h_ref = h.detach().clone().requires_grad_()
    ref = (kernels_py.soft_argmax(h_ref * 2.0, 1.5) - target).abs().sum()
    ref.backward()
    torch.testing.assert_close(loss, ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(h.grad, h_ref.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_contiguous_input_at_an_unaligned_address(device, dtype):
    """A contiguous view one element into its storage (what slicing a flat buffer gives): the
    kernels' 16-byte vector loads must not be used on it; results as for an aligned copy."""
    shape = (3, 17, 16, 12)  # W a multiple of every vector width: aligned, the vector path runs
    flat = random_logits((1 + 3 * 17 * 16 * 12,), dtype, device, seed=21)
    h = flat[1:].view(shape).requires_grad_()
    assert h.is_contiguous() and h.data_ptr() % 16 != 0
    h_aligned = h.detach().clone().requires_grad_()
    out, out_aligned = soft_argmax(h, 1.5), soft_argmax(h_aligned, 1.5)
    torch.testing.assert_close(out, out_aligned, atol=1e-5, rtol=1e-6)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(22)).to(device)
    out.backward(g)
    out_aligned.backward(g)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(h.grad.double(), h_aligned.grad.double(),
                               atol=tol * h_aligned.grad.abs().max().item(), rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 3, 256, 192), (2, 3, 130, 67), (2, 3, 512, 384)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_maps_split_into_chunks(device, shape, dtype):
    """Maps of more than 8,192 pixels are folded by several CUDA blocks whose states are then
    merged (W = 67 takes the unvectorised path): a peak in the last rows, a NaN, a map of -inf
    but for one pixel, and a +inf must all come out as from one pass over the map."""
    h = random_logits(shape, torch.float32, "cpu", seed=sum(shape))
    rows, cols = shape[2], shape[3]
    h[0, 0, rows - 2, cols - 3] = 40.0  # dominant peak in the map's last chunk
    h[0, 1].fill_(float("-inf"))
    h[0, 1, rows // 2, 1] = 0.0  # a single finite pixel, in a middle chunk
    h[-1, -1, rows - 1, cols - 1] = float("nan")  # the NaN in the last chunk poisons the map
    h = h.to(device=device, dtype=dtype)
    out = soft_argmax(h)
    ref = kernels_py.soft_argmax(h.double().cpu(), 1.0)
    assert out[0, 0].tolist() == pytest.approx([cols - 3, rows - 2], abs=1e-3)
    assert out[0, 1].tolist() == [1.0, float(rows // 2)]
    assert torch.isnan(out[-1, -1]).all() and torch.isnan(ref[-1, -1]).all()
    finite = torch.isfinite(ref)
    torch.testing.assert_close(out.double().cpu()[finite], ref[finite], atol=2e-4 * max(rows, cols) / 64, rtol=1e-5)
    h[0, 2, 3, 3] = float("inf")
    assert torch.isnan(soft_argmax(h)[0, 2]).all() and torch.isfinite(soft_argmax(h)[1, 0]).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 3, 256, 192), (2, 3, 130, 67)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_maps_split_into_chunks_backward(device, shape, dtype):
    """The backward pass over maps the forward split into chunks (W = 67: unvectorised),
    against autograd through the float64 reference, with a peak in the last chunk."""
    h = random_logits(shape, torch.float32, "cpu", seed=3 + sum(shape))
    h[0, 0, shape[2] - 2, shape[3] - 3] = 8.0
    h = h.to(dtype)
    h_ref = h.double().requires_grad_()
    h_op = h.to(device).requires_grad_()
    g = torch.randn(shape[0], shape[1], 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    kernels_py.soft_argmax(h_ref, 1.5).backward(g)
    soft_argmax(h_op, 1.5).backward(g.float().to(device))
    assert h_op.grad.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(h_op.grad.double().cpu(), h_ref.grad, atol=tol * h_ref.grad.abs().max().item(), rtol=0)
