"""Reference Gaussian heatmap rendering."""
import torch


def render_heatmaps(keypoints, visible, size, sigma, dtype=torch.float32, compute_dtype=None):
    """Gaussian heatmaps ``[B, K, H, W]``.

    ``value[b, k, i, j] = exp(-((j - x)^2 + (i - y)^2) / (2 sigma_k^2))`` when joint ``k``
    of instance ``b`` is visible (``visible > 0``) and has finite coordinates, else 0.
    The pixel in row ``i``, column ``j`` has its centre at ``(x=j, y=i)``.
    """
    height, width = size
    compute_dtype = compute_dtype or (torch.float64 if dtype == torch.float64 else torch.float32)
    kp = keypoints.to(compute_dtype)
    num_joints = kp.shape[1]
    sigma_t = torch.as_tensor(sigma, dtype=compute_dtype, device=kp.device)
    sigma_t = sigma_t.expand(num_joints).reshape(1, num_joints, 1, 1)
    ys = torch.arange(height, dtype=compute_dtype, device=kp.device).view(1, 1, height, 1)
    xs = torch.arange(width, dtype=compute_dtype, device=kp.device).view(1, 1, 1, width)
    x = kp[..., 0, None, None]
    y = kp[..., 1, None, None]
    d2 = (xs - x) ** 2 + (ys - y) ** 2
    maps = torch.exp(-d2 / (2 * sigma_t**2))
    keep = (visible > 0) & torch.isfinite(kp).all(-1)
    maps = torch.where(keep[..., None, None], maps, torch.zeros((), dtype=compute_dtype, device=kp.device))
    return maps.to(dtype)
