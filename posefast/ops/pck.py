"""``pck_counts``: PCK hit and valid counts for many thresholds at once."""
import torch

from posefast.ops.validation import (require_float, require_mask_dtype, require_same_device, require_shape,
                                     require_tensor)


def pck_counts(pred, gt, visible, norm, thresholds):
    """Count PCK hits per threshold and joint.

    Args:
        pred, gt: float ``[N, K, 2]`` predicted and ground-truth ``(x, y)``.
        visible: ``[N, K]``; a joint is considered where ``visible > 0``.
        norm: float ``[N]`` per-instance normaliser (torso size, bbox size, ...).
        thresholds: float ``[T]`` (a tensor, a sequence of numbers or one number).

    Returns:
        ``hits`` int64 ``[T, K]`` and ``valid`` int64 ``[K]``. A joint is valid when it is
        visible, its ground truth is finite and its instance's ``norm > 0``; it is a hit at
        threshold ``t`` when ``||pred - gt|| / norm < t`` (strict, like mmpose's
        ``keypoint_pck_accuracy``). A non-finite prediction is never a hit. Computed in
        float32 (float64 when ``pred`` is float64).
    """
    require_tensor(pred, "pred")
    require_float(pred, "pred")
    require_shape(pred, "pred", (None, None, 2), "[N, K, 2]")
    n, k = pred.shape[:2]
    for name, t, shape, layout in (("gt", gt, (n, k, 2), "[N, K, 2]"), ("visible", visible, (n, k), "[N, K]"),
                                   ("norm", norm, (n,), "[N]")):
        require_tensor(t, name)
        require_shape(t, name, shape, layout)
        require_same_device(t, name, pred, "pred")
    require_float(gt, "gt")
    require_float(norm, "norm")
    require_mask_dtype(visible, "visible")
    if not isinstance(thresholds, torch.Tensor):
        thresholds = torch.as_tensor(thresholds, dtype=pred.dtype if pred.dtype == torch.float64 else torch.float32,
                                     device=pred.device).reshape(-1)  # a single number: [1]
    require_float(thresholds, "thresholds")
    require_shape(thresholds, "thresholds", (None,), "[T]")
    require_same_device(thresholds, "thresholds", pred, "pred")
    return torch.ops.posefast.pck_counts(pred, gt, visible, norm, thresholds)


@torch.library.register_fake("posefast::pck_counts")
def _pck_counts_fake(pred, gt, visible, norm, thresholds):
    joints = pred.shape[1]
    hits = pred.new_empty((thresholds.shape[0], joints), dtype=torch.int64)
    return hits, pred.new_empty((joints,), dtype=torch.int64)
