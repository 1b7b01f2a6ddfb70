"""Every bad argument gives a ValueError naming the argument and what was expected."""
import numpy as np
import pytest
import torch

from posefast.ops import pck_counts, render_heatmaps, soft_argmax

KP = torch.rand(2, 17, 2)
VIS = torch.ones(2, 17)


@pytest.mark.parametrize("kwargs,match", [
    (dict(keypoints=torch.rand(2, 17)), r"keypoints must have shape \[B, K, 2\].*got \[2, 17\]"),
    (dict(keypoints=torch.rand(2, 17, 3)), r"keypoints must have shape"),
    (dict(keypoints=torch.randint(0, 5, (2, 17, 2))), r"keypoints must be a floating-point tensor.*torch.int64"),
    (dict(keypoints=[[0.0, 1.0]]), r"keypoints must be a torch.Tensor"),
    (dict(visible=torch.ones(2, 16)), r"visible must have shape \[B, K\] = \[2, 17\], got \[2, 16\]"),
    (dict(visible=torch.ones(2, 17, dtype=torch.complex64)), r"visible must be a bool, integer or float"),
    (dict(size=(0, 48)), r"size must be a pair \(H, W\) of positive ints, got \(0, 48\)"),
    (dict(size=(64,)), r"size must be a pair"),
    (dict(size=(64.5, 48)), r"size must be a pair"),
    (dict(sigma=0.0), r"sigma must be positive, got 0.0"),
    (dict(sigma=-1), r"sigma must be positive"),
    (dict(sigma=torch.ones(16)), r"sigma must have shape \[K\] = \[17\], got \[16\]"),
    (dict(sigma=torch.tensor([1.0] * 16 + [0.0])), r"sigma must be positive \(at least 1e-06\) and finite for every"),
    (dict(sigma=torch.tensor([1.0] * 16 + [float("inf")])), r"and finite for every joint"),
    (dict(sigma=1e-20), r"sigma must be in \[1e-06, 3.40282e\+38\], got 1e-20"),  # 1/(2 sigma^2) overflows float32
    (dict(sigma=float("inf")), r"sigma must be in \[1e-06"),
    (dict(sigma=float("nan")), r"sigma must be positive, got nan"),
    (dict(sigma=True), r"sigma must be a positive number, got True"),
    (dict(size=(True, 6)), r"size must be a pair \(H, W\) of positive ints, got \(True, 6\)"),
    (dict(size=(np.True_, 6)), r"size must be a pair \(H, W\) of positive ints"),
    (dict(dtype=torch.int32), r"dtype must be one of"),
])
def test_render_bad_arguments(kwargs, match):
    args = dict(keypoints=KP, visible=VIS, size=(8, 6), sigma=2.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        render_heatmaps(**args)


@pytest.mark.parametrize("heatmaps,beta,match", [
    (torch.rand(2, 17, 8), 1.0, r"heatmaps must have shape \[B, K, H, W\].*got \[2, 17, 8\]"),
    (torch.randint(0, 3, (2, 17, 8, 6)), 1.0, r"heatmaps must be a floating-point tensor"),
    (torch.rand(2, 17, 0, 6), 1.0, r"heatmaps must have H > 0 and W > 0"),
    (torch.rand(2, 17, 8, 6), 0.0, r"beta must be positive, got 0.0"),
    (torch.rand(2, 17, 8, 6), -2.0, r"beta must be positive"),
    (torch.rand(2, 17, 8, 6), "1", r"beta must be a positive number"),
    (torch.rand(2, 17, 8, 6), float("inf"), r"beta must be in \(0, 3.40282e\+38\], got inf"),
    (torch.rand(2, 17, 8, 6), 1e39, r"beta must be in"),  # finite in float64, infinite in the kernels' float32
])
def test_soft_argmax_bad_arguments(heatmaps, beta, match):
    with pytest.raises(ValueError, match=match):
        soft_argmax(heatmaps, beta)


P = torch.rand(5, 17, 2)


@pytest.mark.parametrize("args,match", [
    ((torch.rand(5, 17), P, torch.ones(5, 17), torch.ones(5), [0.2]), r"pred must have shape \[N, K, 2\]"),
    ((P, torch.rand(5, 16, 2), torch.ones(5, 17), torch.ones(5), [0.2]), r"gt must have shape \[N, K, 2\] = \[5, 17, 2\], got \[5, 16, 2\]"),
    ((P, P, torch.ones(5, 16), torch.ones(5), [0.2]), r"visible must have shape \[N, K\]"),
    ((P, P, torch.ones(5, 17), torch.ones(4), [0.2]), r"norm must have shape \[N\] = \[5\], got \[4\]"),
    ((P, P, torch.ones(5, 17), torch.ones(5), torch.ones(2, 2)), r"thresholds must have shape \[T\]"),
    ((P, P, torch.ones(5, 17), torch.ones(5, dtype=torch.int64), [0.2]), r"norm must be a floating-point tensor"),
    ((P.long(), P, torch.ones(5, 17), torch.ones(5), [0.2]), r"pred must be a floating-point tensor"),
])
def test_pck_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        pck_counts(*args)


def test_numpy_scalars_are_numbers():
    maps = render_heatmaps(KP, VIS, (8, 6), np.float32(2.0))
    torch.testing.assert_close(maps, render_heatmaps(KP, VIS, (8, 6), 2.0))
    torch.testing.assert_close(soft_argmax(maps, np.float32(1.5)), soft_argmax(maps, 1.5))


def test_one_threshold_may_be_a_number():
    hits, valid = pck_counts(P, P + 0.1, torch.ones(5, 17), torch.ones(5), 0.2)
    assert hits.shape == (1, 17) and torch.equal(hits, pck_counts(P, P + 0.1, torch.ones(5, 17), torch.ones(5), [0.2])[0])


def test_device_mismatch_is_named():
    meta = torch.rand(2, 17, device="meta")
    with pytest.raises(ValueError, match=r"visible is on meta but keypoints is on cpu"):
        render_heatmaps(KP, meta, (8, 6), 2.0)
    with pytest.raises(ValueError, match=r"norm is on meta but pred is on cpu"):
        pck_counts(P, P, torch.ones(5, 17), torch.ones(5, device="meta"), [0.2])


def test_direct_op_calls_are_checked_in_cpp():
    with pytest.raises(RuntimeError, match="beta must be positive"):
        torch.ops.posefast.soft_argmax_forward(torch.rand(1, 1, 2, 2), -1.0)
    with pytest.raises(RuntimeError, match="visible must have shape"):
        torch.ops.posefast.render_heatmaps(KP, torch.ones(3), None, 1.0, 4, 4, torch.float32)
