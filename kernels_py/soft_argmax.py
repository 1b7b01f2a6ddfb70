"""Reference soft-argmax: expected (x, y) under a softmax over each heatmap."""
import torch


def soft_argmax(heatmaps, beta=1.0):
    """``[B, K, H, W]`` logits -> ``[B, K, 2]`` expected ``(x, y)`` in heatmap pixels.

    ``p = softmax(beta * h)`` over the ``H * W`` pixels of each map; ``x = sum p * j``,
    ``y = sum p * i``. float64 in -> float64 out, anything else -> float32.
    """
    out_dtype = torch.float64 if heatmaps.dtype == torch.float64 else torch.float32
    b, k, h, w = heatmaps.shape
    logits = heatmaps.to(out_dtype).reshape(b, k, h * w) * beta
    p = torch.softmax(logits, dim=-1).reshape(b, k, h, w)
    xs = torch.arange(w, dtype=out_dtype, device=heatmaps.device)
    ys = torch.arange(h, dtype=out_dtype, device=heatmaps.device)
    x = (p.sum(2) * xs).sum(-1)
    y = (p.sum(3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)
