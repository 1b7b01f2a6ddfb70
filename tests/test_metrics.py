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
