"""Reference dual pose loss: the unfused composition of the reference ops."""
import torch
import torch.nn.functional as F

from kernels_py.render import render_heatmaps
from kernels_py.soft_argmax import soft_argmax


def pose_loss(logits, keypoints, visible, sigma, joint_weights=None, coord_weight=0.1, beta=1.0,
              heatmap_loss="bce"):
    """``(loss, parts)`` as :func:`posefast.ops.pose_loss`, written as render + heatmap loss +
    soft-argmax + L1 (the definition of :class:`posefast.losses.PoseLoss`).

    Computed in float32 (float64 for float64 logits). ``parts`` = detached ``(L_hm, L_coord)``.
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    shown = visible > 0
    z = torch.where(shown[:, :, None, None], logits.to(dtype), 0)  # hidden maps: not read, zero gradient
    b, k, h, w = z.shape
    if joint_weights is None:
        joint_weights = torch.ones(k, dtype=dtype, device=z.device)
    weights = torch.as_tensor(joint_weights, dtype=dtype, device=z.device).detach()
    targets = render_heatmaps(keypoints.detach(), visible, (h, w), sigma, dtype=dtype)
    mask = shown.to(dtype) * weights  # [B, K]: w[k] m[b, k]
    n = shown.sum().clamp(min=1).to(dtype)
    if heatmap_loss == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    elif heatmap_loss == "mse":
        per_pixel = (z - targets) ** 2
    else:
        raise ValueError(f"heatmap_loss must be 'bce' or 'mse', got {heatmap_loss!r}")
    heatmap = (per_pixel.mean(dim=(2, 3)) * mask).sum() / n
    pred = soft_argmax(z, beta)
    target = torch.nan_to_num(keypoints.detach().to(pred.dtype))
    coord = ((pred - target).abs().mean(-1) * mask).sum() / n
    total = heatmap + coord_weight * coord
    return total, torch.stack([heatmap, coord]).detach()
