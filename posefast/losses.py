"""The dual heatmap + coordinate loss of the original study (and an MSE variant).

Notation, for heatmap logits ``z[b, k, i, j]`` of shape ``[B, K, H, W]`` (cast to
float32; float64 stays float64), Gaussian targets ``t[b, k, i, j]`` rendered by
``posefast.ops.render_heatmaps`` at the heatmap resolution with ``sigma`` (heatmap px),
target keypoints ``(x, y)[b, k]`` in heatmap px, visibility ``v[b, k]`` and per-joint
weights ``w[k]``:

- mask ``m[b, k] = 1 if v[b, k] > 0 else 0``; invisible joints contribute nothing;
- ``N = max(sum_{b,k} m[b, k], 1)`` (number of visible joints in the batch), ``P = H * W``;
- heatmap term, ``kind="bce"`` (default):
  ``L_hm = 1/N * sum_{b,k} w[k] m[b,k] * 1/P * sum_{i,j} bce(z, t)`` with
  ``bce(z, t) = max(z, 0) - z t + log(1 + exp(-|z|))`` (``BCEWithLogits``);
  ``kind="mse"``: the same with ``(z - t)^2`` in place of ``bce(z, t)`` (z used raw);
- coordinate term: ``(x^, y^)[b, k] = posefast.ops.soft_argmax(z, beta)`` (expected
  position under ``softmax(beta * z)`` over the ``P`` pixels of each map), and
  ``L_coord = 1/N * sum_{b,k} w[k] m[b,k] * (|x^ - x| + |y^ - y|) / 2`` (heatmap px);
- ``total = L_hm + coord_weight * L_coord``.

Default joint weights: 1.0, with 1.2 for elbows and knees and 1.5 for wrists and ankles
(``posefast.skeleton.DEFAULT_JOINT_WEIGHTS``).

``PoseLoss(fused=True)`` (the default) computes all of this with one fused op,
``posefast.ops.pose_loss``, whenever no ``targets`` are passed: the Gaussian targets are
evaluated analytically from the keypoints and never written to memory, the logits are read
once forward and once backward. ``fused=False``, or passing ``targets``, runs the unfused
composition above (render + heatmap loss + soft-argmax + L1); both agree to float tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posefast import ops
from posefast.ops.validation import require_finite, require_positive, require_sigma
from posefast.skeleton import DEFAULT_JOINT_WEIGHTS

LOSS_KINDS = ("bce", "mse")


@dataclass
class LossOutput:
    """The total loss (differentiable) and its two parts (detached), for logging."""

    total: torch.Tensor
    heatmap: torch.Tensor
    coord: torch.Tensor


class PoseLoss(nn.Module):
    """``L_hm + coord_weight * L_coord``, exactly as defined in the module docstring."""

    def __init__(self, kind: str = "bce", coord_weight: float = 0.1, sigma: float = 2.0, beta: float = 1.0,
                 joint_weights: Sequence[float] | None = None, fused: bool = True):
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {kind!r}; choose from {LOSS_KINDS}")
        require_sigma(sigma)  # here, not at the first forward
        require_positive(beta, "beta")
        require_finite(coord_weight, "coord_weight")
        self.kind, self.coord_weight, self.sigma, self.beta = kind, float(coord_weight), float(sigma), float(beta)
        self.fused = bool(fused)  # posefast.ops.pose_loss when no targets are given
        weights = DEFAULT_JOINT_WEIGHTS if joint_weights is None else joint_weights
        self.register_buffer("joint_weights", torch.tensor(list(weights), dtype=torch.float64), persistent=False)

    def forward(self, logits: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor,
                targets: torch.Tensor | None = None) -> LossOutput:
        """``logits`` ``[B,K,H,W]``, ``keypoints`` ``[B,K,2]`` heatmap px, ``visible`` ``[B,K]``,
        ``targets`` ``[B,K,H,W]`` (rendered here with ``sigma`` when ``None``; with ``fused``
        and no ``targets`` they are never rendered)."""
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        if logits.shape[1] != self.joint_weights.numel():
            raise ValueError(f"{logits.shape[1]} heatmaps but {self.joint_weights.numel()} joint weights")
        if self.fused and targets is None:
            total, parts = ops.pose_loss(logits, keypoints, visible, self.sigma, self.joint_weights.to(dtype),
                                         self.coord_weight, self.beta, self.kind)
            return LossOutput(total=total, heatmap=parts[0], coord=parts[1])
        # hidden joints' maps are not read and get a zero gradient, as in the fused op (a NaN
        # there must not turn the loss NaN); the targets and keypoints are not differentiated
        shown = visible > 0
        z = torch.where(shown[:, :, None, None], logits.to(dtype), 0)
        keypoints = keypoints.detach()
        if targets is None:
            targets = ops.render_heatmaps(keypoints, visible, size=tuple(z.shape[-2:]), sigma=self.sigma, dtype=dtype)
        t = targets.detach().to(dtype)
        m = shown.to(dtype) * self.joint_weights.to(dtype)  # [B, K]: w[k] m[b, k]
        n = shown.sum().clamp(min=1).to(dtype)
        if self.kind == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        else:
            per_pixel = (z - t) ** 2
        heatmap = (per_pixel.mean(dim=(2, 3)) * m).sum() / n
        pred = ops.soft_argmax(z, beta=self.beta)
        target = torch.nan_to_num(keypoints.to(pred.dtype))  # hidden joints may carry NaN; masked below
        l1 = (pred - target).abs().mean(-1)  # [B, K]: (|dx| + |dy|) / 2
        coord = (l1 * m).sum() / n
        total = heatmap + self.coord_weight * coord
        return LossOutput(total=total, heatmap=heatmap.detach(), coord=coord.detach())
