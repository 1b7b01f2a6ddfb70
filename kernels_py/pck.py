"""Reference PCK counting."""
import torch


def pck_counts(pred, gt, visible, norm, thresholds):
    """Hits ``int64[T, K]`` and valid counts ``int64[K]``.

    A joint is valid when it is visible (``visible > 0``), its ground truth is finite and
    its instance's ``norm > 0``. It is a hit at threshold ``t`` when
    ``||pred - gt|| / norm < t`` (strict). A non-finite prediction is never a hit.
    """
    compute = torch.float64 if pred.dtype == torch.float64 else torch.float32
    pred = pred.to(compute)
    gt = gt.to(compute)
    norm = norm.to(compute)
    thr = thresholds.to(compute)
    dist = ((pred - gt) ** 2).sum(-1).sqrt() / norm[:, None]
    valid = (visible > 0) & (norm[:, None] > 0) & torch.isfinite(gt).all(-1)
    hits = (dist[None] < thr[:, None, None]) & valid[None]
    return hits.sum(1).to(torch.int64), valid.sum(0).to(torch.int64)
