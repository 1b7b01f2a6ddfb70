"""``render_heatmaps``: batched Gaussian target heatmaps."""
import numpy as np
import torch

from posefast.ops.validation import (FLOAT32_MAX, FLOAT_DTYPES, MIN_SIGMA, no_grad_input, require_float,
                                     require_mask_dtype, require_same_device, require_shape, require_sigma,
                                     require_tensor)


def render_heatmaps(keypoints, visible, size, sigma, dtype=torch.float32):
    """Render one Gaussian heatmap per keypoint.

    Args:
        keypoints: float ``[B, K, 2]`` ``(x, y)`` in heatmap pixels; the centre of the pixel in
            row ``i``, column ``j`` is ``(x=j, y=i)``.
        visible: bool or numeric ``[B, K]``; a keypoint is rendered where ``visible > 0``.
        size: ``(H, W)`` of the output maps.
        sigma: a number in ``[1e-6, 3.4e38]`` (heatmap px), or a float tensor ``[K]`` of per-joint
            sigmas in that range (same device; checked outside ``torch.compile``).
        dtype: output dtype: float32, float16, bfloat16 (computed in float32) or float64.

    Returns:
        ``[B, K, H, W]`` with ``exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2))`` for a visible
        keypoint: peak 1 at the keypoint, no normalisation, no truncation (a keypoint outside
        the map leaves its exact partial tail). Invisible keypoints, and keypoints with a
        non-finite coordinate, give maps of exact zeros.

    Not differentiable: these are training targets.
    """
    require_tensor(keypoints, "keypoints")
    require_tensor(visible, "visible")
    require_float(keypoints, "keypoints")
    require_shape(keypoints, "keypoints", (None, None, 2), "[B, K, 2]")
    batch, joints = keypoints.shape[:2]
    require_mask_dtype(visible, "visible")
    require_shape(visible, "visible", (batch, joints), "[B, K]")
    require_same_device(visible, "visible", keypoints, "keypoints")
    height, width = _check_size(size)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype}")
    sigma_per_joint, sigma_scalar = _split_sigma(sigma, keypoints)
    # targets carry no gradient: detach so autograd never records this op
    return torch.ops.posefast.render_heatmaps(no_grad_input(keypoints), no_grad_input(visible), sigma_per_joint,
                                              sigma_scalar, height, width, dtype)


def _check_size(size):
    if type(size) is tuple and len(size) == 2 and type(size[0]) is int and type(size[1]) is int \
            and size[0] > 0 and size[1] > 0:  # the common case, checked first: this runs on every call
        return size
    try:
        height, width = (int(s) for s in size)
        exact = all(int(s) == s and not isinstance(s, (bool, np.bool_)) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {size!r}") from None
    if not exact or height <= 0 or width <= 0:
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {tuple(size)}")
    return height, width


def _split_sigma(sigma, keypoints):
    """Scalar sigma -> (None, sigma); tensor [K] -> (tensor, 1.0)."""
    if isinstance(sigma, torch.Tensor):
        require_float(sigma, "sigma")
        require_shape(sigma, "sigma", (keypoints.shape[1],), "[K]")
        require_same_device(sigma, "sigma", keypoints, "keypoints")
        # (not while compiling: the check reads the values; nor on the meta device, which has none)
        if not torch.compiler.is_compiling() and sigma.device.type != "meta" \
                and not bool(((sigma >= MIN_SIGMA) & (sigma <= FLOAT32_MAX)).all()):
            raise ValueError(f"sigma must be positive (at least {MIN_SIGMA:g}) and finite for every joint, "
                             f"got {sigma.tolist()}")
        return no_grad_input(sigma), 1.0
    require_sigma(sigma)
    return None, float(sigma)


@torch.library.register_fake("posefast::render_heatmaps")
def _render_heatmaps_fake(keypoints, visible, sigma_per_joint, sigma, height, width, dtype):
    return keypoints.new_empty((keypoints.shape[0], keypoints.shape[1], height, width), dtype=dtype)
