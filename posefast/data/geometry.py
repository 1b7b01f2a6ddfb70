"""Affine geometry shared by the cache, the augmentation and the evaluation.

Conventions (used everywhere in posefast):

* The centre of the pixel in row ``i``, column ``j`` is the point ``(x=j, y=i)``; an image
  of width ``W`` covers ``x`` in ``[-0.5, W - 0.5]``.
* An affine is a ``[..., 2, 3]`` matrix ``A`` mapping a point ``p`` (column ``[x, y, 1]``)
  to ``A @ p``. ``compose(A, B)`` is "apply B, then A".
* A crop box is a centre ``(cx, cy)`` and a size ``(w, h)`` in source pixels. Its edges map
  to the edges of the output image, so its centre maps to ``((W-1)/2, (H-1)/2)``.
"""
import functools

import torch


def box_to_center_size(bbox_xywh, aspect_wh, padding=1.25):
    """Person boxes ``[N, 4]`` (x, y, w, h) -> centres ``[N, 2]`` and sizes ``[N, 2]``.

    The box is grown (never shrunk) to the aspect ratio ``aspect_wh`` (width / height of
    the model input) around its centre, then scaled by ``padding``.
    """
    bbox = torch.as_tensor(bbox_xywh, dtype=torch.float64)
    center = bbox[:, :2] + bbox[:, 2:] * 0.5
    w = bbox[:, 2].clamp_min(1.0)
    h = bbox[:, 3].clamp_min(1.0)
    w, h = torch.maximum(w, h * aspect_wh), torch.maximum(h, w / aspect_wh)
    return center, torch.stack([w, h], dim=1) * padding


def crop_affine(center, size, out_hw):
    """Affines ``[N, 2, 3]`` mapping source pixels into an ``out_hw`` crop of each box."""
    center = torch.as_tensor(center, dtype=torch.float64)
    size = torch.as_tensor(size, dtype=torch.float64)
    out_h, out_w = out_hw
    sx = out_w / size[:, 0]
    sy = out_h / size[:, 1]
    affine = torch.zeros(center.shape[0], 2, 3, dtype=torch.float64)
    affine[:, 0, 0] = sx
    affine[:, 1, 1] = sy
    affine[:, 0, 2] = (out_w - 1) / 2 - center[:, 0] * sx
    affine[:, 1, 2] = (out_h - 1) / 2 - center[:, 1] * sy
    return affine


def to_homogeneous(affine):
    """``[..., 2, 3]`` -> ``[..., 3, 3]`` with the last row ``[0, 0, 1]``."""
    bottom = torch.zeros(*affine.shape[:-2], 1, 3, dtype=affine.dtype, device=affine.device)
    bottom[..., 0, 2] = 1
    return torch.cat([affine, bottom], dim=-2)


def compose(outer, inner):
    """The affine that applies ``inner`` first, then ``outer``."""
    return (to_homogeneous(outer) @ to_homogeneous(inner))[..., :2, :]


def invert_affine(affine):
    """Inverse of ``[..., 2, 3]`` affines (computed in float64, returned in the input dtype)."""
    a64 = affine.to(torch.float64)
    # inv_ex: no error check, so no device synchronisation on CUDA (a singular affine never
    # comes from sample_affines / crop_affine; its inverse would hold inf/NaN)
    linear_inv = torch.linalg.inv_ex(a64[..., :2]).inverse
    shift = -(linear_inv @ a64[..., 2:])
    return torch.cat([linear_inv, shift], dim=-1).to(affine.dtype)


def apply_affine(affine, points):
    """Transform points ``[B, K, 2]`` with per-item affines ``[B, 2, 3]``."""
    affine = affine.to(points.dtype)
    return points @ affine[..., :2].transpose(-1, -2) + affine[..., None, :, 2]


def pixel_to_normalized(size_hw, dtype=torch.float64):
    """The affine from pixel coordinates to ``grid_sample`` coordinates (align_corners=False).

    With ``align_corners=False`` the value -1 is the left edge of the left pixel and +1 the
    right edge of the right pixel, so ``g = (2 x + 1) / W - 1``.
    """
    height, width = size_hw
    return torch.tensor([[2.0 / width, 0.0, 1.0 / width - 1.0],
                         [0.0, 2.0 / height, 1.0 / height - 1.0]], dtype=dtype)


def invert_keypoints(keypoints, affine, flipped=None):
    """Map keypoints ``[B, K, 2]`` from input pixels back to original image pixels.

    ``affine`` ``[B, 2, 3]`` is the batch's original->input affine (``Batch.affine``). The
    computation runs in float64. If ``flipped`` ``[B]`` (``Batch.flipped``) is given, the
    left/right joint swap of horizontally flipped samples is undone too, so joint ``k`` of
    the result is the original joint ``k``; without it, the joint order is the input's.
    """
    inverse = invert_affine(affine.to(torch.float64))
    points = apply_affine(inverse, keypoints.to(torch.float64))
    if flipped is not None:
        flip_index = _flip_index(points.device)  # cached: a list copied to the GPU waits for it
        flipped = torch.as_tensor(flipped, device=points.device).bool()
        points = torch.where(flipped[:, None, None], points[:, flip_index], points)
    return points.to(keypoints.dtype)


@functools.lru_cache(maxsize=None)
def _flip_index(device):
    """``FLIP_INDEX`` as an int64 tensor on ``device`` (made once per device)."""
    from posefast.skeleton import FLIP_INDEX
    return torch.as_tensor(FLIP_INDEX, device=device)
