import torch

from posefast.metrics import bbox_size, torso_size


def test_torso_size_uses_longer_visible_diagonal():
    kp = torch.zeros(3, 17, 2)
    kp[:, 5] = torch.tensor([0.0, 0.0])   # left shoulder
    kp[:, 12] = torch.tensor([3.0, 4.0])  # right hip: diagonal 5
    kp[:, 6] = torch.tensor([10.0, 0.0])  # right shoulder
    kp[:, 11] = torch.tensor([10.0, 8.0])  # left hip: diagonal 8
    vis = torch.ones(3, 17)
    vis[1, 11] = 0  # only the first diagonal remains
    vis[2, 5] = 0
    vis[2, 11] = 0  # none remains
    assert torso_size(kp, vis).tolist() == [8.0, 5.0, 0.0]


def test_bbox_size_is_longer_side():
    assert bbox_size(torch.tensor([[1.0, 2.0, 30.0, 40.0], [0.0, 0.0, 7.0, 3.0]])).tolist() == [40.0, 7.0]


def test_float64_thresholds_compare_in_float64():
    """0.2 as float32 is 0.2000000030: a distance of exactly 0.2 * norm must stay a miss (strict <)."""
    from posefast.metrics import pck

    pred = torch.tensor([[[2.0, 0.0]]], dtype=torch.float64)
    gt = torch.zeros(1, 1, 2, dtype=torch.float64)
    result = pck(pred, gt, torch.ones(1, 1), torch.tensor([10.0], dtype=torch.float64), [0.2])
    assert result.hits.item() == 0 and result.thresholds.item() == 0.2
