"""The baseline PoseLoader is measured against: a top-down training pipeline as mmpose runs it.

A ``torch.utils.data.DataLoader`` whose worker processes, per person instance, decode the
JPEG (``cv2.imread``, BGR), flip the whole image and the keypoints at random (p = 0.5, joints
swapped), jitter the box (shift 0.16 x size with p = 0.3, scale 0.5-1.5, rotation up to 80
degrees with p = 0.6: mmpose 1.x's ``RandomBBoxTransform`` defaults), warp the person to the
input size with ``cv2.warpAffine`` (box padded 1.25x, aspect fixed: ``TopdownAffine``) and
render the 17 Gaussian targets in NumPy at the heatmap size (sigma 2, a 6-sigma window per
joint: the ``MSRAHeatmap`` codec). Batches are collated in the workers, pinned, copied to the
device, turned to RGB float and normalised there (mmpose's data preprocessor).
Left out: the random half-body transform (off in posefast's default augmentation too).

posefast's ``PoseLoader`` differs by design: images are decoded once into a crop cache, and
the warp, normalisation and targets run batched on the training device.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import cv2
import numpy as np
import torch

from posefast.skeleton import FLIP_PAIRS

MEAN = (123.675, 116.28, 103.53)  # ImageNet, RGB, 0-255
STD = (58.395, 57.12, 57.375)
SWAP = list(range(17))
for _left, _right in FLIP_PAIRS:
    SWAP[_left], SWAP[_right] = _right, _left


def person_instances(ann_file: str, image_dir: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(image path, bbox xywh, keypoints [17, 3])`` of every non-crowd person with keypoints."""
    with open(ann_file) as f:
        data = json.load(f)
    files = {image["id"]: os.path.join(image_dir, image["file_name"]) for image in data["images"]}
    return [(files[a["image_id"]], np.asarray(a["bbox"], np.float32), np.asarray(a["keypoints"], np.float32).reshape(17, 3))
            for a in data["annotations"] if not a.get("iscrowd") and a.get("num_keypoints", 0) > 0]


def warp_matrix(center, size, rotation_deg: float, out_w: int, out_h: int) -> np.ndarray:
    """2x3 matrix taking the box (``center``, ``size`` = (w, h)) rotated by ``rotation_deg`` to
    an ``out_w`` x ``out_h`` image."""
    zoom = out_w / size[0]
    angle = math.radians(rotation_deg)
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    linear = np.array([[cos, sin], [-sin, cos]], np.float64)
    offset = np.array([out_w / 2, out_h / 2]) - linear @ np.asarray(center, np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def gaussian_targets(points: np.ndarray, visible: np.ndarray, heat_w: int, heat_h: int, sigma: float):
    """``[17, heat_h, heat_w]`` Gaussians at the rounded heatmap ``points`` (a 6-sigma window
    each) and ``[17]`` weights (0 for hidden joints and those whose window misses the map)."""
    radius = int(3 * sigma)
    axis = np.arange(2 * radius + 1, dtype=np.float32)
    window = np.exp(-((axis[None, :] - radius) ** 2 + (axis[:, None] - radius) ** 2) / (2 * sigma ** 2))
    heatmaps = np.zeros((17, heat_h, heat_w), np.float32)
    weights = visible.astype(np.float32)
    for k in np.flatnonzero(visible):
        mx, my = (int(v + 0.5) for v in points[k])
        left, top, right, bottom = mx - radius, my - radius, mx + radius + 1, my + radius + 1
        if left >= heat_w or top >= heat_h or right <= 0 or bottom <= 0:
            weights[k] = 0
            continue
        x0, x1, y0, y1 = max(0, left), min(heat_w, right), max(0, top), min(heat_h, bottom)
        heatmaps[k, y0:y1, x0:x1] = window[y0 - top:y1 - top, x0 - left:x1 - left]
    return heatmaps, weights


class MmposeStyleDataset(torch.utils.data.Dataset):
    """One augmented, warped person per item: ``(image uint8 [H, W, 3] BGR, targets, weights)``."""

    def __init__(self, ann_file: str, image_dir: str, input_size=(256, 192), stride: int = 4, sigma: float = 2.0):
        self.instances = person_instances(ann_file, image_dir)
        self.height, self.width = input_size
        self.stride, self.sigma = stride, sigma
        self.rng = None

    def __len__(self):
        return len(self.instances)

    def __getitem__(self, index):
        if self.rng is None:  # per worker process
            self.rng = np.random.default_rng(torch.initial_seed() % 2**32)
        path, (x, y, w, h), keypoints = self.instances[index]
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {path}")
        keypoints = keypoints.copy()
        center = np.array([x + w / 2, y + h / 2], np.float64)
        if self.rng.random() < 0.5:  # RandomFlip: the whole image, the box and the joints
            image = cv2.flip(image, 1)
            center[0] = image.shape[1] - center[0]  # the box [x, x + w] becomes [W - x - w, W - x]
            keypoints[:, 0] = image.shape[1] - 1 - keypoints[:, 0]
            keypoints = keypoints[SWAP]
        aspect = self.width / self.height
        w, h = (w, w / aspect) if w > h * aspect else (h * aspect, h)
        size = np.array([w, h]) * 1.25
        if self.rng.random() < 0.3:
            center += self.rng.uniform(-0.16, 0.16, 2) * size
        size = size * self.rng.uniform(0.5, 1.5)
        rotation = self.rng.uniform(-80, 80) if self.rng.random() < 0.6 else 0.0
        matrix = warp_matrix(center, size, rotation, self.width, self.height)
        crop = cv2.warpAffine(image, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR)
        points = keypoints[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        heatmaps, weights = gaussian_targets(points / self.stride, keypoints[:, 2] > 0, self.width // self.stride,
                                             self.height // self.stride, self.sigma)
        return torch.from_numpy(crop), torch.from_numpy(heatmaps), torch.from_numpy(weights)


def quiet_worker(_):
    """One OpenCV thread per worker process (mmengine sets the same)."""
    cv2.setNumThreads(1)


def mmpose_style_loader(dataset, batch_size: int, workers: int, device: torch.device):
    """Spawned workers: a forked one inherits whatever lock another thread of this process held
    (after posefast's crop cache was built in the same process, forked workers hung)."""
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=True, drop_last=True, num_workers=workers,
                                       pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                       worker_init_fn=quiet_worker if workers else None,
                                       multiprocessing_context="spawn" if workers else None)


def to_device(batch, device: torch.device):
    """The data preprocessor: copy, BGR -> RGB, float, normalise."""
    images, targets, weights = (t.to(device, non_blocking=True) for t in batch)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    images = (images.permute(0, 3, 1, 2).flip(1).float() - mean) / std
    return images, targets, weights


def benchmark_mmpose_style(ann_file: str, image_dir: str, device: torch.device, batch_size: int, num_batches: int,
                           workers: int, warmup: int = 2) -> float:
    """Samples/s of the baseline over ``num_batches`` batches after ``warmup`` (cycling epochs),
    each ready on ``device``, as ``posefast.data.benchmark_loader`` counts PoseLoader's."""
    dataset = MmposeStyleDataset(ann_file, image_dir)
    if len(dataset) < batch_size:
        raise ValueError(f"{ann_file}: {len(dataset)} persons, fewer than one batch of {batch_size}")
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:  # the spawned workers import this module to unpickle the dataset
        sys.path.append(here)
    loader = mmpose_style_loader(dataset, batch_size, workers, device)

    def batches():
        while True:
            yield from loader

    stream = batches()
    try:
        for _ in range(warmup):
            to_device(next(stream), device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, samples = time.perf_counter(), 0
        for _ in range(num_batches):
            images, _, _ = to_device(next(stream), device)
            samples += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    finally:
        stream.close()
        del loader  # its persistent workers exit
    return samples / elapsed
