"""``pose_loss``: the fused dual pose loss (heatmap loss + soft-argmax L1) in one op."""
import torch

from posefast.ops.validation import (no_grad_input, require_finite, require_float, require_heatmaps,
                                     require_mask_dtype, require_positive, require_same_device, require_shape,
                                     require_sigma, require_tensor)

HEATMAP_LOSSES = ("bce", "mse")


def pose_loss(logits, keypoints, visible, sigma, joint_weights=None, coord_weight=0.1, beta=1.0,
              heatmap_loss="bce"):
    """The dual heatmap + coordinate loss of :class:`posefast.losses.PoseLoss`, fused.

    Args:
        logits: ``[B, K, H, W]`` heatmap logits ``z``, float32, float16, bfloat16 or float64.
        keypoints: float ``[B, K, 2]`` target ``(x, y)`` in heatmap px (pixel ``(i, j)`` is
            centred at ``x=j, y=i``); hidden joints may hold NaN. Not differentiated.
        visible: bool or numeric ``[B, K]``; joint ``(b, k)`` counts where ``visible > 0``.
        sigma: Gaussian target sigma in heatmap px, a number in ``[1e-6, 3.4e38]``.
        joint_weights: float ``[K]`` (tensor or sequence) ``w[k]``; ``None`` = all 1. Not
            differentiated.
        coord_weight: weight of the coordinate term.
        beta: positive, finite (in float32) soft-argmax inverse temperature.
        heatmap_loss: ``"bce"`` (BCE-with-logits) or ``"mse"`` (``(z - t)^2``).

    Returns:
        ``(loss, parts)``: ``loss`` the differentiable scalar ``L_hm + coord_weight * L_coord``,
        ``parts`` a detached ``[2]`` tensor ``(L_hm, L_coord)`` for logging; float32 (float64
        for float64 logits), accumulated in that dtype.

    With ``m = visible > 0``, ``N = max(sum m, 1)``, ``P = H * W`` and the Gaussian target
    ``t = exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2))`` (all zero where the keypoint is not
    finite), ``L_hm = 1/N sum_{b,k} w m 1/P sum_ij loss(z, t)`` and
    ``L_coord = 1/N sum_{b,k} w m (|x^ - x| + |y^ - y|) / 2`` with ``(x^, y^)`` the soft-argmax
    of ``beta * z`` and the target passed through ``nan_to_num``: exactly PoseLoss. The
    target is never written to memory: the forward pass reads each visible map once, the
    backward pass reads it once and writes its gradient once. Hidden joints' maps are not
    read and get a zero gradient.
    """
    require_heatmaps(logits, "logits")
    batch, joints = logits.shape[:2]
    require_tensor(keypoints, "keypoints")
    require_float(keypoints, "keypoints")
    require_shape(keypoints, "keypoints", (batch, joints, 2), "[B, K, 2]")
    require_same_device(keypoints, "keypoints", logits, "logits")
    require_tensor(visible, "visible")
    require_mask_dtype(visible, "visible")
    require_shape(visible, "visible", (batch, joints), "[B, K]")
    require_same_device(visible, "visible", logits, "logits")
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    if joint_weights is None:
        joint_weights = torch.ones(joints, dtype=acc, device=logits.device)
    elif not isinstance(joint_weights, torch.Tensor):
        try:
            joint_weights = torch.as_tensor(list(joint_weights), dtype=acc, device=logits.device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"joint_weights must be a float tensor or a sequence of {joints} numbers, "
                             f"got {joint_weights!r}") from None
    require_float(joint_weights, "joint_weights")
    require_shape(joint_weights, "joint_weights", (joints,), "[K]")
    require_same_device(joint_weights, "joint_weights", logits, "logits")
    require_sigma(sigma)
    require_positive(beta, "beta")
    require_finite(coord_weight, "coord_weight")
    if heatmap_loss not in HEATMAP_LOSSES:
        raise ValueError(f"heatmap_loss must be one of {HEATMAP_LOSSES}, got {heatmap_loss!r}")
    loss, _, _, _ = torch.ops.posefast.pose_loss_forward(logits, no_grad_input(keypoints), no_grad_input(visible),
                                                         no_grad_input(joint_weights), float(sigma),
                                                         float(coord_weight), float(beta), heatmap_loss)
    return loss[0], loss[1:].detach()


def _acc_dtype(logits):
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


@torch.library.register_fake("posefast::pose_loss_forward")
def _forward_fake(logits, keypoints, visible, joint_weights, sigma, coord_weight, beta, heatmap_loss):
    batch, joints = logits.shape[:2]
    dtype = _acc_dtype(logits)
    return (logits.new_empty((3,), dtype=dtype), logits.new_empty((batch, joints, 2), dtype=dtype),
            logits.new_empty((batch, joints), dtype=dtype), logits.new_empty((), dtype=dtype))


@torch.library.register_fake("posefast::pose_loss_backward")
def _backward_fake(grad_loss, logits, keypoints, visible, joint_weights, coords, logsumexp, norm, sigma,
                   coord_weight, beta, heatmap_loss):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


# Autograd is registered in C++ (csrc/autograd/pose_loss.cpp): pose_loss_backward writes the
# logits' gradient once; only the loss [3] output is differentiable.
