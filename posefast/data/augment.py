"""Random per-sample affine augmentation: scale, rotation, horizontal flip, half-body crops.

Everything here works on small per-sample tensors (``[B, 2, 3]`` matrices, ``[B, 17, 2]``
keypoints) in float64; the images are warped once, elsewhere, with the resulting matrix.
"""
import dataclasses
import math

import torch

from posefast.data.geometry import box_to_center_size, compose, crop_affine
from posefast.skeleton import LOWER_BODY_JOINTS, UPPER_BODY_JOINTS


@dataclasses.dataclass
class AugmentConfig:
    """Training augmentation. Each sample gets one affine combining all of these.

    scale: box size factor drawn uniformly in ``[1 - scale, 1 + scale]`` (> 1 zooms out).
    rotation: angle in degrees drawn uniformly in ``[-rotation, rotation]``, applied with
        probability ``rotation_prob`` (else 0).
    flip_prob: probability of a horizontal flip (with the left/right joint swap).
    half_body_prob: probability of cropping to the upper or lower body, for samples with
        more than ``half_body_min_joints`` labelled joints; the half-body box is the joints'
        bounding box grown to the input aspect and padded by ``half_body_padding``.
    """

    scale: float = 0.25
    rotation: float = 30.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    half_body_prob: float = 0.0
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5


def sample_params(config, batch_size, generator):
    """Draw the random parameters of a batch from a CPU ``torch.Generator``."""
    def uniform(low, high):
        return low + (high - low) * torch.rand(batch_size, generator=generator, dtype=torch.float64)

    scale = uniform(1 - config.scale, 1 + config.scale)
    rotate = torch.rand(batch_size, generator=generator, dtype=torch.float64) < config.rotation_prob
    rotation = torch.where(rotate, uniform(-config.rotation, config.rotation), torch.zeros(batch_size, dtype=torch.float64))
    flip = torch.rand(batch_size, generator=generator, dtype=torch.float64) < config.flip_prob
    half_body = torch.rand(batch_size, generator=generator, dtype=torch.float64) < config.half_body_prob
    upper = torch.rand(batch_size, generator=generator, dtype=torch.float64) < 0.5
    return {"scale": scale, "rotation": rotation, "flip": flip, "half_body": half_body, "upper": upper}


def half_body_boxes(keypoints, params, config, center, box_size, aspect_wh):
    """Replace ``center``/``box_size`` by a half-body box where ``params['half_body']`` is drawn.

    ``keypoints`` ``[B, 17, 3]`` in original pixels. A sample gets a half-body box only if it
    has more than ``half_body_min_joints`` labelled joints and >= 2 in the chosen half (the
    other half is used when the chosen one has fewer than 2).
    """
    labelled = keypoints[..., 2] > 0
    upper_mask = torch.zeros(keypoints.shape[1], dtype=torch.bool)
    upper_mask[list(UPPER_BODY_JOINTS)] = True
    lower_mask = torch.zeros_like(upper_mask)
    lower_mask[list(LOWER_BODY_JOINTS)] = True
    n_upper = (labelled & upper_mask).sum(1)
    n_lower = (labelled & lower_mask).sum(1)
    use_upper = torch.where(params["upper"], n_upper >= 2, n_lower < 2)
    chosen = labelled & torch.where(use_upper[:, None], upper_mask, lower_mask)
    apply = params["half_body"] & (labelled.sum(1) > config.half_body_min_joints) & (chosen.sum(1) >= 2)
    if not apply.any():
        return center, box_size
    xy = keypoints[..., :2]
    big = torch.tensor(float("inf"), dtype=xy.dtype)
    low = torch.where(chosen[..., None], xy, big).amin(1)
    high = torch.where(chosen[..., None], xy, -big).amax(1)
    boxes = torch.cat([low, high - low], dim=1).nan_to_num(0.0)
    new_center, new_size = box_to_center_size(boxes, aspect_wh, config.half_body_padding)
    return (torch.where(apply[:, None], new_center, center), torch.where(apply[:, None], new_size, box_size))


def augmentation_affine(params, input_size):
    """Affines ``[B, 2, 3]`` in input pixels: scale, rotate and flip about the input centre."""
    height, width = input_size
    cx, cy = (width - 1) / 2, (height - 1) / 2
    angle = params["rotation"] * (math.pi / 180)
    inv_scale = 1.0 / params["scale"]
    cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
    mirror = torch.where(params["flip"], -1.0, 1.0).to(torch.float64)
    # x' = R S F (p - c) + c, with F = diag(mirror, 1)
    affine = torch.zeros(len(angle), 2, 3, dtype=torch.float64)
    affine[:, 0, 0] = cos * mirror
    affine[:, 0, 1] = -sin
    affine[:, 1, 0] = sin * mirror
    affine[:, 1, 1] = cos
    affine[:, 0, 2] = cx - affine[:, 0, 0] * cx - affine[:, 0, 1] * cy
    affine[:, 1, 2] = cy - affine[:, 1, 0] * cx - affine[:, 1, 1] * cy
    return affine


def sample_affines(meta, config, input_size, generator):
    """Original->input affines ``[B, 2, 3]`` (float64) and flip flags ``[B]`` for one batch.

    ``meta`` holds the batch's ``center``, ``box_size`` and ``keypoints`` (original px).
    With ``config=None`` the deterministic crop (no augmentation) is returned.
    """
    center, box_size = meta["center"], meta["box_size"]
    batch_size = center.shape[0]
    if config is None:
        return crop_affine(center, box_size, input_size), torch.zeros(batch_size, dtype=torch.bool)
    params = sample_params(config, batch_size, generator)
    aspect = input_size[1] / input_size[0]
    center, box_size = half_body_boxes(meta["keypoints"], params, config, center, box_size, aspect)
    base = crop_affine(center, box_size, input_size)
    return compose(augmentation_affine(params, input_size), base), params["flip"]
