"""``soft_argmax``: differentiable expected (x, y) under a softmax over each heatmap."""
import torch

from posefast.ops.validation import require_heatmaps, require_positive


def soft_argmax(heatmaps, beta=1.0):
    """Expected keypoint location under ``softmax(beta * heatmaps)`` over each map.

    Args:
        heatmaps: ``[B, K, H, W]`` logits, float32, float16, bfloat16 or float64.
        beta: positive inverse temperature applied before the softmax.

    Returns:
        ``[B, K, 2]`` ``(x, y)`` in heatmap pixels (pixel ``(i, j)`` centred at ``x=j, y=i``):
        ``x = sum_ij p_ij * j``, ``y = sum_ij p_ij * i`` with ``p = softmax(beta * h)``;
        float32, or float64 for float64 input. Accumulation is in float32 (float64).

    Differentiable. The forward pass reads each map once (online max and sum-of-exp) and
    keeps only each map's log-sum-exp; the backward pass reads the heatmaps once and writes
    ``dL/dh_ij = beta * p_ij * ((j - x) * gx + (i - y) * gy)`` once, in the input dtype.

    A NaN anywhere in a map makes that map's coordinates NaN; maps holding +inf are NaN too.
    """
    require_heatmaps(heatmaps, "heatmaps")
    require_positive(beta, "beta")
    coords, _ = torch.ops.posefast.soft_argmax_forward(heatmaps, float(beta))
    return coords


def _out_dtype(heatmaps):
    return torch.float64 if heatmaps.dtype == torch.float64 else torch.float32


@torch.library.register_fake("posefast::soft_argmax_forward")
def _forward_fake(heatmaps, beta):
    batch, joints = heatmaps.shape[:2]
    dtype = _out_dtype(heatmaps)
    return heatmaps.new_empty((batch, joints, 2), dtype=dtype), heatmaps.new_empty((batch, joints), dtype=dtype)


@torch.library.register_fake("posefast::soft_argmax_backward")
def _backward_fake(grad_coords, heatmaps, coords, logsumexp, beta):
    return torch.empty_like(heatmaps, memory_format=torch.contiguous_format)


# Autograd is registered in C++ (csrc/autograd/soft_argmax.cpp): soft_argmax_backward writes the
# heatmaps' gradient once.
