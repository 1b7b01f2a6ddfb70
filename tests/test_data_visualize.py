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


def test_points_out_of_drawing_range_are_left_out():
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    keypoints = torch.full((17, 2), 25.0)
    keypoints[5] = torch.tensor([1.4e8, 1.4e8])  # past cv2's int32 range in 1/16 px
    keypoints[6] = torch.tensor([float("nan"), 3.0])
    out = draw_skeleton(image, keypoints, torch.ones(17))
    assert out[25, 25].any()  # the other joints are drawn
    near = keypoints.clone()
    near[5] = torch.tensor([40.0, 25.0])
    assert draw_skeleton(image, near, torch.ones(17))[25, 40].any()  # the left shoulder, when in range


def test_hollow_joints_are_rings():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    keypoints = torch.full((17, 2), -100.0)
    keypoints[0] = torch.tensor([20.0, 20.0])
    visible = torch.zeros(17)
    visible[0] = 1
    disc = draw_skeleton(image, keypoints, visible, radius=5)
    ring = draw_skeleton(image, keypoints, visible, radius=5, hollow=True)
    assert disc[20, 20].any() and not ring[20, 20].any() and ring[20, 26].any()


class TinyBatch:
    """The fields ``save_batch_overlay`` reads, for ``n`` plain 16x12 inputs."""

    def __init__(self, n):
        self.images = torch.zeros(n, 3, 16, 12)
        self.keypoints = torch.full((n, 17, 2), 6.0)
        self.keypoints[:, 0] = torch.tensor([3.0, 4.0])  # the nose: column 3, row 4
        self.visible = torch.zeros(n, 17)
        self.visible[:, 0] = 1
        self.targets = None

    def __len__(self):
        return len(self.images)


def test_overlay_enlarges_small_inputs_and_keeps_joints_on_their_pixels(tmp_path):
    out = np.asarray(Image.open(save_batch_overlay(TinyBatch(1), str(tmp_path / "o.png"), min_cell_height=160)))
    factor = 10  # ceil(160 / 16)
    strip = out.shape[0] - (16 * factor + 2 * 4)  # the caption strip above the framed cell
    assert out.shape[1] == 12 * factor + 2 * 4 and strip > 10
    y, x = strip + 4 + (4 + 0.5) * factor - 0.5, 4 + (3 + 0.5) * factor - 0.5  # nose, enlarged
    assert tuple(out[round(y), round(x)]) == (60, 220, 60)  # the middle joints' green
    assert tuple(out[strip + 3, 3]) == (150, 150, 150)  # the cell's frame


def test_overlay_of_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to draw"):
        save_batch_overlay(TinyBatch(0), str(tmp_path / "o.png"))
