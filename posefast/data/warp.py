"""Batched affine warping of cached crops with one ``grid_sample`` call."""
import torch
import torch.nn.functional as F

from posefast.data.geometry import compose, invert_affine, pixel_to_normalized


def grid_theta(output_to_source, source_hw, output_hw):
    """``affine_grid`` thetas ``[B, 2, 3]`` for pixel-space affines mapping output px -> source px.

    Both sides use the ``align_corners=False`` convention (pixel centre of column ``j`` at
    ``x = j``, image edges at -0.5 and W - 0.5), so ``theta = N_src . M . N_out^-1``.
    """
    to_source_norm = pixel_to_normalized(source_hw).expand(output_to_source.shape[0], 2, 3)
    from_output_norm = invert_affine(pixel_to_normalized(output_hw)).expand(output_to_source.shape[0], 2, 3)
    return compose(to_source_norm, compose(output_to_source.to(torch.float64), from_output_norm))


def sampling_grid(theta, output_hw):
    """Same as ``F.affine_grid(theta, (B, C, H, W), align_corners=False)``, computed by
    broadcasting (about 5x faster on CPU than affine_grid's batched matmul)."""
    height, width = output_hw
    xs = ((torch.arange(width, dtype=theta.dtype, device=theta.device) * 2 + 1) / width - 1).view(1, 1, width)
    ys = ((torch.arange(height, dtype=theta.dtype, device=theta.device) * 2 + 1) / height - 1).view(1, height, 1)
    grid = torch.empty(theta.shape[0], height, width, 2, dtype=theta.dtype, device=theta.device)
    coeff = theta.view(-1, 2, 3, 1, 1)
    for axis in range(2):
        torch.add(coeff[:, axis, 0] * xs, coeff[:, axis, 1] * ys + coeff[:, axis, 2], out=grid[..., axis])
    return grid


def warp_images(crops_nhwc, output_to_source, output_hw):
    """Warp ``uint8 [B, Hs, Ws, 3]`` crops (any device) into float32 ``[B, 3, H, W]`` in 0..255.

    ``output_to_source`` ``[B, 2, 3]`` maps output pixels to source pixels. Bilinear
    sampling; outside the source is 0 (black).
    """
    theta = grid_theta(output_to_source, crops_nhwc.shape[1:3], output_hw).float()
    return warp_with_theta(crops_nhwc, theta.to(crops_nhwc.device), output_hw)


def warp_with_theta(crops_nhwc, theta, output_hw):
    """``warp_images`` given the ``grid_sample`` thetas ``[B, 2, 3]`` (float32, on the crops' device)."""
    source = crops_nhwc.permute(0, 3, 1, 2).float()
    grid = sampling_grid(theta, output_hw)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def center_crop_images(crops_nhwc, output_hw):
    """The exact centre ``output_hw`` window of each crop as float32 ``[B, 3, H, W]`` (no resampling).

    Equals ``warp_images`` with a pure integer shift; the un-augmented fast path.
    """
    source_h, source_w = crops_nhwc.shape[1:3]
    top, left = (source_h - output_hw[0]) // 2, (source_w - output_hw[1]) // 2
    window = crops_nhwc[:, top:top + output_hw[0], left:left + output_hw[1]]
    return window.permute(0, 3, 1, 2).float()
