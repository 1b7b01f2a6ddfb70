"""Drawing skeletons on images and writing PNG grids of batches (ground truth vs predictions)."""
import math
import os

import cv2
import numpy as np
import torch
from PIL import Image

from posefast.skeleton import FLIP_PAIRS, SKELETON

LEFT_COLOR = (255, 140, 0)  # orange
RIGHT_COLOR = (0, 160, 255)  # blue
CENTER_COLOR = (60, 220, 60)  # green
_LEFT = {left for left, _ in FLIP_PAIRS}
_RIGHT = {right for _, right in FLIP_PAIRS}


def _joint_color(joint):
    return LEFT_COLOR if joint in _LEFT else RIGHT_COLOR if joint in _RIGHT else CENTER_COLOR


def _edge_color(a, b):
    if a in _LEFT and b in _LEFT:
        return LEFT_COLOR
    if a in _RIGHT and b in _RIGHT:
        return RIGHT_COLOR
    return CENTER_COLOR


def draw_skeleton(image_uint8_hwc, keypoints, visible, color=None, radius=3, thickness=2):
    """A copy of an RGB ``uint8 [H, W, 3]`` image with the skeleton drawn on it.

    ``keypoints`` ``[17, 2]`` in this image's pixels (centre of pixel (i, j) at x=j, y=i),
    ``visible`` ``[17]`` (> 0: draw). ``color``: one RGB tuple for everything, or None to
    colour left joints orange, right joints blue and the middle green.
    """
    image = np.ascontiguousarray(np.asarray(image_uint8_hwc, dtype=np.uint8)).copy()
    points = np.asarray(torch.as_tensor(keypoints).detach().cpu(), dtype=np.float64)
    shown = np.asarray(torch.as_tensor(visible).detach().cpu()) > 0
    shift = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px
    fixed = np.round(points * (1 << shift)).astype(np.int64) if np.isfinite(points).all() else None
    if fixed is None:
        shown = shown & np.isfinite(points).all(1)
        fixed = np.round(np.nan_to_num(points) * (1 << shift)).astype(np.int64)
    for a, b in SKELETON:
        if shown[a] and shown[b]:
            cv2.line(image, tuple(map(int, fixed[a])), tuple(map(int, fixed[b])), color or _edge_color(a, b),
                     thickness, cv2.LINE_AA, shift)
    for joint in np.flatnonzero(shown):
        cv2.circle(image, tuple(map(int, fixed[joint])), radius << shift, color or _joint_color(joint), -1,
                   cv2.LINE_AA, shift)
    return image


def _heatmap_tint(image, targets):
    """Blend the per-pixel max over joints of ``targets`` ``[K, h, w]`` onto ``image`` in red."""
    peak = targets.max(0).values.float().cpu().numpy()
    peak = cv2.resize(peak, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)[..., None]
    red = np.array([255, 0, 0], dtype=np.float32)
    return (image * (1 - 0.6 * peak) + red * 0.6 * peak).clip(0, 255).astype(np.uint8)


def save_batch_overlay(batch, path, max_images=16, predictions=None, show_targets=True,
                       prediction_color=(255, 0, 255)):
    """Write a PNG grid of the first ``max_images`` samples of a ``Batch``.

    Each cell shows the (de-normalised) input with the ground-truth skeleton (and the target
    heatmaps tinted red if present and ``show_targets``); with ``predictions`` ``[B, 17, 2]``
    (input px) a second panel beside it shows the predicted skeleton (all joints) in
    ``prediction_color`` (magenta; None: left/right colours like the ground truth).
    Returns ``path``.
    """
    from posefast.data.normalize import denormalize_to_uint8

    count = min(max_images, len(batch))
    images = denormalize_to_uint8(batch.images[:count])
    cells = []
    for i in range(count):
        truth = images[i]
        if show_targets and batch.targets is not None:
            truth = _heatmap_tint(truth, batch.targets[i])
        panels = [draw_skeleton(truth, batch.keypoints[i], batch.visible[i])]
        if predictions is not None:
            pred = torch.as_tensor(predictions[i]).detach().cpu()
            panels.append(draw_skeleton(images[i], pred, torch.ones(pred.shape[0]), color=prediction_color))
        cell = np.concatenate(panels, axis=1)
        cells.append(np.pad(cell, ((2, 2), (2, 2), (0, 0)), constant_values=255))
    columns = min(count, 8 if predictions is None else 4)
    rows = math.ceil(count / columns)
    blank = np.full_like(cells[0], 255)
    cells += [blank] * (rows * columns - count)
    grid = np.concatenate([np.concatenate(cells[r * columns:(r + 1) * columns], axis=1) for r in range(rows)], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
