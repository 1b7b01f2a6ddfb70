import numpy as np
import pytest
import torch

import kernels_py
from posefast.metrics import pck, pck_auc
from posefast.ops import pck_counts
from op_cases import DEVICES


def random_instances(n, k, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, k, 2, generator=gen, dtype=torch.float64) * 100
    pred = gt + torch.randn(n, k, 2, generator=gen, dtype=torch.float64) * 8
    vis = torch.rand(n, k, generator=gen) > 0.25
    norm = torch.rand(n, generator=gen, dtype=torch.float64) * 60
    norm[torch.rand(n, generator=gen) < 0.1] = 0
    return pred.to(dtype), gt.to(dtype), vis, norm.to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,k,t", [(1, 1, 1), (7, 17, 3), (4096, 17, 20), (300, 5, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(device, n, k, t, dtype):
    pred, gt, vis, norm = random_instances(n, k, seed=n + k + t, dtype=dtype)
    thr = torch.linspace(0, 0.5, t, dtype=dtype)
    args = [x.to(device) for x in (pred, gt, vis, norm, thr)]
    hits, valid = pck_counts(*args)
    ref_hits, ref_valid = kernels_py.pck_counts(*args)
    assert hits.dtype == torch.int64 and hits.shape == (t, k) and valid.shape == (k,)
    assert torch.equal(hits.cpu(), ref_hits.cpu()) and torch.equal(valid.cpu(), ref_valid.cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_hand_worked_example(device):
    # two instances, three joints; norms 10 and 0 (second instance never counts)
    pred = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]], [[0.0, 0.0]] * 3], device=device)
    gt = torch.tensor([[[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], [[5.0, 5.0]] * 3], device=device)
    vis = torch.tensor([[1, 1, 0], [1, 1, 1]], device=device)
    norm = torch.tensor([10.0, 0.0], device=device)
    # normalised distances of instance 0: 0.1, 0.5, (1.0 but invisible)
    hits, valid = pck_counts(pred, gt, vis, norm, [0.1, 0.2, 0.5, 0.51])
    assert valid.tolist() == [1, 1, 0]
    # strict: 0.1 < 0.1 is false, 0.5 < 0.5 is false
    assert hits.tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]]
    res = pck(pred, gt, vis, norm, thresholds=[0.2, 0.51])
    assert res.mean.tolist() == [0.5, 1.0]  # joint 2 has no valid instance: left out of the mean
    assert torch.isnan(res.per_joint[:, 2]).all()


def mmpose_keypoint_pck_accuracy(pred, gt, mask, thr, norm_factor):
    """mmpose's definition (keypoint_pck_accuracy), restated in numpy for comparison."""
    n, k, _ = pred.shape
    mask = mask.copy()
    mask[np.where((norm_factor == 0).sum(1))[0], :] = False
    norm_factor = norm_factor.copy()
    norm_factor[np.where(norm_factor <= 0)] = 1e6
    dist = np.full((n, k), -1.0)
    dist[mask] = np.linalg.norm(((pred - gt) / norm_factor[:, None, :])[mask], axis=-1)
    acc = []
    for d in dist.T:
        ok = d != -1
        acc.append((d[ok] < thr).sum() / ok.sum() if ok.sum() > 0 else -1)
    acc = np.array(acc)
    valid = acc[acc >= 0]
    return acc, (valid.mean() if len(valid) else 0.0), len(valid)


@pytest.mark.parametrize("thr", [0.05, 0.2, 0.5])
def test_agrees_with_mmpose_definition(thr):
    pred, gt, vis, norm = random_instances(500, 17, seed=9, dtype=torch.float64)
    acc, avg, cnt = mmpose_keypoint_pck_accuracy(pred.numpy(), gt.numpy(), vis.numpy(), thr,
                                                 np.stack([norm.numpy()] * 2, axis=1))
    res = pck(pred, gt, vis, norm, thresholds=[thr])
    ours = res.per_joint[0].numpy()
    np.testing.assert_allclose(np.where(np.isnan(ours), -1, ours), acc, atol=1e-12)
    assert abs(res.mean.item() - avg) < 1e-12 and int((res.valid > 0).sum()) == cnt


@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_inputs(device):
    pred = torch.tensor([[[float("nan"), 0.0], [1.0, 1.0]]], device=device)
    gt = torch.tensor([[[0.0, 0.0], [float("inf"), 1.0]]], device=device)
    hits, valid = pck_counts(pred, gt, torch.ones(1, 2, device=device), torch.ones(1, device=device), [0.5])
    assert valid.tolist() == [1, 0]  # non-finite gt: not valid; non-finite prediction: valid miss
    assert hits.tolist() == [[0, 0]]


@pytest.mark.parametrize("device", DEVICES)
def test_empty_and_non_contiguous(device):
    hits, valid = pck_counts(torch.zeros(0, 17, 2, device=device), torch.zeros(0, 17, 2, device=device),
                             torch.zeros(0, 17, device=device), torch.zeros(0, device=device), [0.2])
    assert hits.shape == (1, 17) and hits.sum() == 0 and valid.sum() == 0
    pred, gt, vis, norm = random_instances(50, 17, seed=4)
    big = torch.cat([pred, gt], dim=2).to(device)
    hits_nc, _ = pck_counts(big[..., :2], big[..., 2:], vis.t().contiguous().t().to(device), norm.to(device), [0.2])
    hits_c, _ = pck_counts(pred.to(device), gt.to(device), vis.to(device), norm.to(device), [0.2])
    assert torch.equal(hits_nc, hits_c)


def test_auc_of_perfect_predictions_is_one():
    pred, gt, vis, norm = random_instances(20, 17, seed=2)
    norm = norm + 1
    res = pck(gt.clone(), gt, vis, norm, thresholds=torch.linspace(0.01, 0.5, 50))
    assert pck_auc(res) == pytest.approx(1.0)


def test_opcheck():
    pred, gt, vis, norm = random_instances(30, 17, seed=1)
    torch.library.opcheck(torch.ops.posefast.pck_counts.default, (pred, gt, vis, norm, torch.linspace(0, 0.5, 5)))


@pytest.mark.parametrize("device", DEVICES)
def test_unsorted_repeated_and_non_finite_thresholds(device):
    # any threshold order, repeats, a NaN (never hit), +-inf, negatives, and distances that
    # equal a threshold exactly (strict <), over more instances than one CPU task takes
    pred, gt, vis, norm = random_instances(10_000, 17, seed=9)
    norm = torch.where(norm > 0, torch.full_like(norm, 10.0), norm)
    pred[:50, :, 0] = gt[:50, :, 0] + 2.0  # distance exactly 0.2
    pred[:50, :, 1] = gt[:50, :, 1]
    thr = torch.tensor([0.3, 0.2, float("nan"), 0.05, 0.2, float("inf"), -1.0, 0.0, 0.5, float("-inf")])
    args = [x.to(device) for x in (pred, gt, vis, norm, thr)]
    hits, valid = pck_counts(*args)
    ref_hits, ref_valid = kernels_py.pck_counts(*args)
    assert torch.equal(hits.cpu(), ref_hits.cpu()) and torch.equal(valid.cpu(), ref_valid.cpu())
    assert hits[2].sum() == 0 and hits[9].sum() == 0 and torch.equal(hits[5], valid.to(hits.device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vis_dtype", [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16,
                                       torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("n", [300, 9000])  # one block per joint on CUDA, and blocks that share a joint
def test_visible_in_any_mask_dtype(device, vis_dtype, n):
    """COCO's 0/1/2 flags, masks and weights all count where visible > 0 (the CUDA kernel reads
    bool, uint8, int64, float32 and float64 as they are, the rest as the bool visible > 0)."""
    pred, gt, _, norm = random_instances(n, 17, seed=n)
    flags = torch.randint(-1, 3, (n, 17), generator=torch.Generator().manual_seed(n))
    if vis_dtype == torch.bool:
        flags = flags.clamp(min=0, max=1)
    elif not vis_dtype.is_signed:
        flags = flags.clamp(min=0)
    thr = torch.linspace(0, 0.5, 7)
    args = [x.to(device) for x in (pred, gt, flags.to(vis_dtype), norm, thr)]
    hits, valid = pck_counts(*args)
    ref_hits, ref_valid = kernels_py.pck_counts(pred, gt, (flags > 0).float(), norm, thr)
    assert torch.equal(hits.cpu(), ref_hits) and torch.equal(valid.cpu(), ref_valid)
    assert 0 < valid.min() and valid.max() < n  # some joints of each kind: hidden, visible


@pytest.mark.current_kernels
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vis_dtype", [torch.float64, torch.float16, torch.bfloat16, torch.float32])
def test_visible_is_compared_in_its_own_dtype(device, vis_dtype):
    """visible > 0 as the mask's dtype says it: a float64 1e-300 or the smallest normal float16 is
    visible even with float32 predictions (a conversion to float32 first would lose the first),
    -0.0 and NaN are not."""
    tiny = torch.finfo(vis_dtype).tiny if vis_dtype != torch.float64 else 1e-300
    flags = torch.tensor([[tiny, 0.0, -0.0, float("nan"), -tiny, 1.0]], dtype=torch.float64).to(vis_dtype)
    gt = torch.zeros(1, 6, 2)
    args = [x.to(device) for x in (gt + 1, gt, flags, torch.ones(1), torch.tensor([2.0]))]
    hits, valid = pck_counts(*args)
    assert valid.tolist() == [1, 0, 0, 0, 0, 1] and hits.tolist() == [[1, 0, 0, 0, 0, 1]]
