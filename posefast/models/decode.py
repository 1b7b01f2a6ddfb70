"""Heatmaps -> keypoints: the decoding used for validation and inference."""
import torch

from posefast import ops


def heatmap_to_input_px(points: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap px -> input px, the inverse of the data's ``(input_px + 0.5) / stride - 0.5``."""
    return (points + 0.5) * stride - 0.5


def decode_heatmaps(logits: torch.Tensor, stride: int, beta: float = 1.0) -> torch.Tensor:
    """``[B,K,H,W]`` logits -> ``[B,K,2]`` float32 keypoints in input px, by soft-argmax."""
    return heatmap_to_input_px(ops.soft_argmax(logits.float(), beta=beta), stride)
