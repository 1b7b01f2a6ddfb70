"""The baseline PoseLoader is measured against: a lean approximation of mmpose's top-down
training pipeline.

A ``torch.utils.data.DataLoader`` whose worker processes, per person instance, decode the
JPEG (``cv2.imread``, BGR), flip the whole image and the keypoints at random (p = 0.5, joints
swapped), jitter the box (shift 0.16 x size with p = 0.3, scale 0.5-1.5, rotation up to 80
degrees with p = 0.6: mmpose 1.x's ``RandomBBoxTransform`` defaults), warp the person to the
input size with ``cv2.warpAffine`` (box padded 1.25x, aspect fixed: ``TopdownAffine``) and
render the 17 Gaussian targets in NumPy at the heatmap size (sigma 2, a 6-sigma window
computed per joint: the ``MSRAHeatmap`` codec). Samples are collated as a list, as mmengine's
``pseudo_collate`` does; the data preprocessor copies each to the device, turns it to RGB
float, normalises it and stacks the batch there.
Left out, so the baseline does less than mmpose: the random half-body transform (off in
posefast's default augmentation too), mmpose's per-sample data-sample objects and
annotation copies. Its augmentation ranges are mmpose's, wider than posefast's defaults
(scale +-25 %, rotation 30 degrees); the warp costs the same either way.

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
    """``(image path, bbox xywh, keypoints [17, 3])`` of every non-crowd person with a box of
    positive size and at least one labelled joint (the persons ``CocoKeypoints`` keeps)."""
    with open(ann_file) as f:
        data = json.load(f)
    files = {image["id"]: os.path.join(image_dir, image["file_name"]) for image in data["images"]}
    persons = []
    for a in data["annotations"]:
        keypoints = np.asarray(a.get("keypoints") or np.zeros(51), np.float32).reshape(17, 3)
        box = np.asarray(a.get("bbox") or np.zeros(4), np.float32)
        if not a.get("iscrowd") and (keypoints[:, 2] > 0).any() and box[2] > 0 and box[3] > 0:
            persons.append((files[a["image_id"]], box, keypoints))
    return persons


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
    each, computed per joint and merged with a maximum, as mmpose's encoder does) and ``[17]``
    weights (0 for hidden joints and those whose window misses the map)."""
    radius = int(3 * sigma)
    heatmaps = np.zeros((17, heat_h, heat_w), np.float32)
    weights = visible.astype(np.float32)
    for k in np.flatnonzero(visible):
        mx, my = (int(v + 0.5) for v in points[k])
        left, top, right, bottom = mx - radius, my - radius, mx + radius + 1, my + radius + 1
        if left >= heat_w or top >= heat_h or right <= 0 or bottom <= 0:
            weights[k] = 0
            continue
        axis = np.arange(2 * radius + 1, dtype=np.float32)
        window = np.exp(-((axis[None, :] - radius) ** 2 + (axis[:, None] - radius) ** 2) / (2 * sigma ** 2))
        x0, x1, y0, y1 = max(0, left), min(heat_w, right), max(0, top), min(heat_h, bottom)
        region = heatmaps[k, y0:y1, x0:x1]
        np.maximum(region, window[y0 - top:y1 - top, x0 - left:x1 - left], out=region)
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
            # as mmpose flips them: the box [x, x + w] becomes [W - x - w, W - x], a joint x W - 1 - x
            center[0] = image.shape[1] - center[0]
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


def as_list(samples):
    """mmengine's ``pseudo_collate``: the batch stays a list of samples."""
    return samples


def mmpose_style_loader(dataset, batch_size: int, workers: int):
    """Spawned workers: a forked one inherits whatever lock another thread of this process held
    (after posefast's crop cache was built in the same process, forked workers hung)."""
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=True, drop_last=True, num_workers=workers,
                                       collate_fn=as_list, persistent_workers=workers > 0,
                                       worker_init_fn=quiet_worker if workers else None,
                                       multiprocessing_context="spawn" if workers else None)


def to_device(samples, device: torch.device):
    """The data preprocessor: each sample copied, BGR -> RGB, float, normalised; then stacked."""
    mean = torch.tensor(MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(STD, device=device).view(3, 1, 1)
    images, targets, weights = [], [], []
    for image, heatmaps, weight in samples:
        images.append((image.to(device).permute(2, 0, 1).flip(0).float() - mean) / std)
        targets.append(heatmaps.to(device))
        weights.append(weight.to(device))
    return torch.stack(images), torch.stack(targets), torch.stack(weights)


class MmposeStyleBench:
    """The baseline's loader, kept (with its persistent workers) across timed rounds."""

    def __init__(self, ann_file: str, image_dir: str, device: torch.device, batch_size: int, workers: int):
        dataset = MmposeStyleDataset(ann_file, image_dir)
        if len(dataset) < batch_size:
            raise ValueError(f"{ann_file}: {len(dataset)} persons, fewer than one batch of {batch_size}")
        here = os.path.dirname(os.path.abspath(__file__))
        if here not in sys.path:  # the spawned workers import this module to unpickle the dataset
            sys.path.append(here)
        self.device, self.loader = device, mmpose_style_loader(dataset, batch_size, workers)
        self.stream = self._batches()

    def _batches(self):
        while True:
            yield from self.loader

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def samples_per_s(self, num_batches: int, warmup: int = 2) -> float:
        """Samples/s over ``num_batches`` batches after ``warmup`` (cycling epochs), each
        ready on the device, as ``posefast.data.benchmark_loader`` counts PoseLoader's."""
        for _ in range(warmup):
            to_device(next(self.stream), self.device)
        self._sync()
        start, samples = time.perf_counter(), 0
        for _ in range(num_batches):
            samples += len(to_device(next(self.stream), self.device)[0])
        self._sync()
        return samples / (time.perf_counter() - start)

    def close(self):
        self.stream.close()
        self.loader = None  # its persistent workers exit
