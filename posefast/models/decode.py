"""Heatmaps -> keypoints: the decodings used for validation, evaluation and inference."""
import torch

from posefast import ops
from posefast.ops.validation import require_heatmaps

DECODERS = ("soft_argmax", "argmax_quarter")


def heatmap_to_input_px(points: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap px -> input px, the inverse of the data's ``(input_px + 0.5) / stride - 0.5``."""
    return (points + 0.5) * stride - 0.5


def decode_heatmaps(logits: torch.Tensor, stride: int, beta: float = 1.0) -> torch.Tensor:
    """``[B,K,H,W]`` logits -> ``[B,K,2]`` float32 keypoints in input px, by soft-argmax."""
    return heatmap_to_input_px(ops.soft_argmax(logits.float(), beta=beta), stride)


def argmax_quarter_offset(logits: torch.Tensor) -> torch.Tensor:
    """``[B,K,H,W]`` -> ``[B,K,2]`` heatmap px: the arg-max pixel moved a quarter pixel towards
    its higher neighbour along x and along y (as SimpleBaseline's ``get_final_preds``; here an
    axis is not shifted when the peak is on that axis's border, nor on a tie). Not
    differentiable (the result is detached); a map holding NaN decodes to NaN, as with
    soft-argmax."""
    require_heatmaps(logits, "logits")
    maps = logits.detach().float()
    b, k, h, w = maps.shape
    flat = maps.reshape(b, k, h * w)
    index = flat.argmax(dim=-1)
    ys, xs = torch.div(index, w, rounding_mode="floor"), index % w

    def neighbour_sign(dx, dy):
        ahead = flat.gather(-1, ((ys + dy).clamp(0, h - 1) * w + (xs + dx).clamp(0, w - 1))[..., None])[..., 0]
        behind = flat.gather(-1, ((ys - dy).clamp(0, h - 1) * w + (xs - dx).clamp(0, w - 1))[..., None])[..., 0]
        pos = ys if dy else xs
        inside = (pos > 0) & (pos < (h if dy else w) - 1)
        return torch.where(inside, torch.sign(ahead - behind), torch.zeros_like(ahead))

    x = xs.float() + 0.25 * neighbour_sign(1, 0)
    y = ys.float() + 0.25 * neighbour_sign(0, 1)
    points = torch.stack([x, y], dim=-1)
    has_nan = maps.isnan().flatten(2).any(dim=-1)  # argmax would pick the first NaN's pixel
    return torch.where(has_nan[..., None], torch.full_like(points, float("nan")), points)


def decode(logits: torch.Tensor, stride: int, decoder: str = "soft_argmax", beta: float = 1.0) -> torch.Tensor:
    """``[B,K,H,W]`` logits -> ``[B,K,2]`` float32 input px by ``decoder`` (one of ``DECODERS``)."""
    if decoder == "soft_argmax":
        return decode_heatmaps(logits, stride, beta)
    if decoder == "argmax_quarter":
        return heatmap_to_input_px(argmax_quarter_offset(logits), stride)
    raise ValueError(f"unknown decoder {decoder!r}; choose from {DECODERS}")


def joint_confidence(logits: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    """``[B,K]`` per-joint confidence in [0, 1]: the peak heatmap value (through a sigmoid for
    BCE-trained logits, clamped to [0, 1] for MSE-trained heatmaps)."""
    require_heatmaps(logits, "logits")
    if loss not in ("bce", "mse"):
        raise ValueError(f"loss must be 'bce' or 'mse' (what the heatmaps were trained with), got {loss!r}")
    peak = logits.float().flatten(2).amax(dim=-1)
    return torch.sigmoid(peak) if loss == "bce" else peak.clamp(0, 1)
