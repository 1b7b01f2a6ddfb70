"""Skeleton drawing and the batch overlay PNG."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader
from posefast.visualize import LEFT_COLOR, RIGHT_COLOR, draw_skeleton, save_batch_overlay

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_draw_skeleton_draws_visible_joints_only():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    keypoints = torch.zeros(17, 2)
    keypoints[5] = torch.tensor([10.0, 20.0])  # left shoulder at row 20, col 10
    keypoints[6] = torch.tensor([30.0, 5.0])  # right shoulder, not visible
    visible = torch.zeros(17)
    visible[5] = 1
    out = draw_skeleton(image, keypoints, visible)
    assert tuple(out[20, 10]) == LEFT_COLOR and not out[5, 30].any() and not image.any()
    visible[6] = 1
    out = draw_skeleton(image, keypoints, visible)
    assert tuple(out[5, 30]) == RIGHT_COLOR


def test_overlay_png_of_a_batch(tmp_path):
    path = os.environ.get("POSEFAST_COCO_DIR", os.path.join(REPO, "..", "shared", "data", "coco_kpts"))
    if not os.path.isfile(os.path.join(path, "val.json")):
        pytest.skip(f"COCO keypoints subset not found at {path} (set POSEFAST_COCO_DIR)")
    dataset = CocoKeypoints(os.path.join(path, "val.json"), os.path.join(path, "images"), subset=6,
                            cache_dir=str(tmp_path / "cache"), progress=False)
    batch = next(iter(PoseLoader(dataset, 6, shuffle=True, drop_last=False, device="cpu",
                                 augment=AugmentConfig(), output_stride=4)))
    out = save_batch_overlay(batch, str(tmp_path / "overlay.png"), predictions=batch.keypoints + 2.0)
    picture = np.asarray(Image.open(out))
    assert picture.ndim == 3 and picture.shape[0] >= 256 and picture.shape[1] >= 4 * 192
    assert picture.std() > 20  # real image content, not a blank canvas
    # Magenta prediction skeletons are drawn in the right-hand panels.
    assert ((picture[..., 0] == 255) & (picture[..., 1] == 0) & (picture[..., 2] == 255)).sum() > 100
