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


# Points farther out than this (px) are not drawn: cv2 draws in 1/16 px on int32 coordinates
# (2^31 / 16 = 1.3e8 px overflows), and nothing that far out would show anyway.
DRAW_LIMIT_PX = 1e6


def draw_skeleton(image_uint8_hwc, keypoints, visible, color=None, radius=3, thickness=2, hollow=False):
    """A copy of an RGB ``uint8 [H, W, 3]`` image with the skeleton drawn on it.

    ``keypoints`` ``[17, 2]`` in this image's pixels (centre of pixel (i, j) at x=j, y=i),
    ``visible`` ``[17]`` (> 0: draw); non-finite points and points more than
    :data:`DRAW_LIMIT_PX` out are not drawn. ``color``: one RGB tuple for everything, or
    None to colour left joints orange, right joints blue and the middle green. ``hollow``:
    joints as rings instead of discs (how overlays tell predictions from ground truth).
    """
    image = np.ascontiguousarray(np.asarray(image_uint8_hwc, dtype=np.uint8)).copy()
    points = np.asarray(torch.as_tensor(keypoints).detach().cpu(), dtype=np.float64)
    shown = np.asarray(torch.as_tensor(visible).detach().cpu()) > 0
    with np.errstate(invalid="ignore"):
        shown = shown & (np.abs(points) <= DRAW_LIMIT_PX).all(1)  # NaN compares False
    shift = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px
    fixed = np.round(np.where(shown[:, None], points, 0.0) * (1 << shift)).astype(np.int64)
    for a, b in SKELETON:
        if shown[a] and shown[b]:
            cv2.line(image, tuple(map(int, fixed[a])), tuple(map(int, fixed[b])), color or _edge_color(a, b),
                     thickness, cv2.LINE_AA, shift)
    ring = max(1, thickness // 2 + 1) if hollow else -1
    for joint in np.flatnonzero(shown):
        cv2.circle(image, tuple(map(int, fixed[joint])), (radius + (1 if hollow else 0)) << shift,
                   color or _joint_color(joint), ring, cv2.LINE_AA, shift)
    return image


def _heatmap_tint(image, targets):
    """Blend the per-pixel max over joints of ``targets`` ``[K, h, w]`` onto ``image`` in red."""
    peak = targets.max(0).values.float().cpu().numpy()
    peak = cv2.resize(peak, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)[..., None]
    red = np.array([255, 0, 0], dtype=np.float32)
    return (image * (1 - 0.6 * peak) + red * 0.6 * peak).clip(0, 255).astype(np.uint8)


def upscale(image, factor: int):
    """``image`` ``[H, W, 3]`` enlarged ``factor`` times by pixel repetition (a keypoint at
    ``x`` moves to ``(x + 0.5) * factor - 0.5``: see :func:`upscale_points`)."""
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def upscale_points(points, factor: int):
    """Pixel coordinates of ``points`` in an image :func:`upscale` enlarged ``factor`` times."""
    return (torch.as_tensor(points).detach().cpu().double() + 0.5) * factor - 0.5


def tag(image, text):
    """``image`` with ``text`` in white on a dark box in its top-left corner."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    out = image.copy()
    out[:h + base + 4, :w + 4] = (out[:h + base + 4, :w + 4] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (2, h + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def caption_strip(text, width):
    """A white ``[h, width, 3]`` strip holding ``text`` in black, wrapped at words to fit."""
    font, scale, lines = cv2.FONT_HERSHEY_SIMPLEX, 0.45, [""]
    for word in text.split():
        trial = f"{lines[-1]} {word}".strip()
        if lines[-1] and cv2.getTextSize(trial, font, scale, 1)[0][0] > width - 8:
            lines.append(word)
        else:
            lines[-1] = trial
    step = cv2.getTextSize("Ag", font, scale, 1)[0][1] + 8
    strip = np.full((step * len(lines) + 6, width, 3), 255, dtype=np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(strip, line, (4, step * (row + 1)), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def save_batch_overlay(batch, path, max_images=16, predictions=None, show_targets=True,
                       prediction_color=(255, 0, 255), caption=None, min_cell_height=160):
    """Write a PNG grid of the first ``max_images`` samples of a ``Batch``.

    Each framed cell shows the (de-normalised) input with the ground-truth skeleton, joints
    as discs (and the target heatmaps tinted red if present and ``show_targets``); with
    ``predictions`` ``[B, 17, 2]`` (input px) a second panel beside it shows the predicted
    skeleton (all joints), joints as rings, in ``prediction_color`` (magenta; None:
    left/right colours like the ground truth). Panels are tagged "truth" / "prediction",
    inputs under ``min_cell_height`` px are enlarged by a whole factor (pixel repetition)
    so the joints stay readable, and a strip on top says what is shown, after ``caption``.
    Returns ``path``.
    """
    from posefast.data.normalize import denormalize_to_uint8

    count = min(max_images, len(batch))
    if count < 1:
        raise ValueError(f"save_batch_overlay: nothing to draw (a batch of {len(batch)}, max_images={max_images})")
    images = denormalize_to_uint8(batch.images[:count])
    factor = max(1, math.ceil(min_cell_height / images[0].shape[0]))
    cells = []
    for i in range(count):
        image = upscale(images[i], factor)
        truth = image
        if show_targets and batch.targets is not None:
            truth = _heatmap_tint(truth, batch.targets[i])
        panels = [tag(draw_skeleton(truth, upscale_points(batch.keypoints[i], factor), batch.visible[i]), "truth")]
        if predictions is not None:
            pred = upscale_points(predictions[i], factor)
            drawn = draw_skeleton(image, pred, torch.ones(pred.shape[0]), color=prediction_color, hollow=True)
            panels += [np.full((image.shape[0], 3, 3), 255, dtype=np.uint8), tag(drawn, "prediction")]
        cell = np.pad(np.concatenate(panels, axis=1), ((1, 1), (1, 1), (0, 0)), constant_values=150)  # frame
        cells.append(np.pad(cell, ((3, 3), (3, 3), (0, 0)), constant_values=255))
    columns = min(count, 8 if predictions is None else 4)
    rows = math.ceil(count / columns)
    blank = np.full_like(cells[0], 255)
    cells += [blank] * (rows * columns - count)
    grid = np.concatenate([np.concatenate(cells[r * columns:(r + 1) * columns], axis=1) for r in range(rows)], axis=0)
    colours = "orange = left, blue = right, green = middle"
    if predictions is not None and prediction_color:
        colours += f"; prediction in {'magenta' if tuple(prediction_color) == (255, 0, 255) else 'one colour'}"
    shown = ("ground truth (labelled joints, discs) | prediction (all 17 joints, rings)"
             if predictions is not None else "ground truth (labelled joints)")
    text = f"{caption + ': ' if caption else ''}{shown}; {colours}" + (f"; enlarged {factor}x" if factor > 1 else "")
    grid = np.concatenate([caption_strip(text, grid.shape[1]), grid], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
