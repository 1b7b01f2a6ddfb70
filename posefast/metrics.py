"""PCK metrics built from ``posefast.ops.pck_counts``.

Normalisers:

* **torso size** (the original study's PCK@0.2): the longer of the two torso diagonals,
  left shoulder to right hip and right shoulder to left hip, each counted only when both of
  its joints are labelled (``visible > 0``: COCO's v = 1 occluded and v = 2 visible alike); an
  instance with neither diagonal has torso size 0 and is left out (on the COCO subset's
  val.json, 213 of the 698 persons).
* **bbox size** (mmpose's ``PCKAccuracy`` with ``norm_item='bbox'``): ``max(w, h)`` of the
  person box.
"""
from dataclasses import dataclass

import torch

from posefast.ops import pck_counts

LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 5, 6, 11, 12
TORSO_DIAGONALS = ((LEFT_SHOULDER, RIGHT_HIP), (RIGHT_SHOULDER, LEFT_HIP))


@dataclass
class PckResult:
    """PCK at each threshold: ``per_joint [T, K]`` (NaN where a joint has no valid
    instance), ``mean [T]`` (macro average over joints with at least one valid instance),
    and the raw ``hits [T, K]`` / ``valid [K]`` counts."""

    thresholds: torch.Tensor
    per_joint: torch.Tensor
    mean: torch.Tensor
    hits: torch.Tensor
    valid: torch.Tensor

    def at(self, threshold):
        """(mean, per_joint) at the threshold closest to ``threshold``."""
        i = int(torch.argmin((self.thresholds - threshold).abs()))
        return float(self.mean[i]), self.per_joint[i]


def torso_size(gt_keypoints, visible):
    """``[N]`` torso sizes (see module docstring) of ``[N, 17, 2]`` ground truth; ``visible``
    ``[N, 17]`` is the labelled mask (``> 0`` counts)."""
    vis = visible > 0
    sizes = []
    for a, b in TORSO_DIAGONALS:
        length = (gt_keypoints[:, a] - gt_keypoints[:, b]).norm(dim=-1)
        sizes.append(torch.where(vis[:, a] & vis[:, b], length, torch.zeros_like(length)))
    return torch.maximum(*sizes)


def bbox_size(bbox_xywh):
    """``[N]`` bbox normalisers ``max(w, h)`` of ``[N, 4]`` boxes."""
    return bbox_xywh[:, 2:4].amax(dim=-1)


def pck_from_counts(hits, valid, thresholds):
    """Per-joint and macro-averaged PCK from ``pck_counts`` output."""
    valid_f = valid.to(torch.float64)
    per_joint = hits.to(torch.float64) / valid_f
    per_joint = torch.where(valid > 0, per_joint, torch.full_like(per_joint, float("nan")))
    has_valid = valid > 0
    if bool(has_valid.any()):
        mean = per_joint[:, has_valid].mean(dim=1)
    else:
        mean = torch.full((hits.shape[0],), float("nan"), dtype=torch.float64, device=hits.device)
    return PckResult(torch.as_tensor(thresholds).to(hits.device, torch.float64), per_joint, mean, hits, valid)


def pck(pred, gt, visible, norm, thresholds=(0.2,)):
    """PCK of ``pred`` against ``gt`` (``[N, K, 2]``) with per-instance ``norm [N]``."""
    # the dtype pck_counts compares in: float64 thresholds for float64 predictions (0.2 in
    # float32 is 0.2000000030, which would count a distance of exactly 0.2 * norm as a hit)
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    thr = torch.as_tensor(thresholds, dtype=dtype, device=pred.device).reshape(-1)
    hits, valid = pck_counts(pred, gt, visible, norm, thr)
    return pck_from_counts(hits, valid, thr)


def pck_auc(result):
    """Area under the PCK-vs-threshold curve, normalised by the threshold range (trapezoids)."""
    t = result.thresholds
    span = float(t[-1] - t[0])
    if span <= 0:
        raise ValueError("pck_auc needs at least two increasing thresholds")
    return float(torch.trapezoid(result.mean, t) / span)
