#!/usr/bin/env python
"""Fused pose loss vs the unfused posefast composition vs the eager reference (issue 8).

Each variant computes the dual loss of ``posefast.losses.PoseLoss`` (BCE heatmap loss vs
Gaussian targets + soft-argmax L1, joint weights, visibility mask) and its gradient w.r.t.
the logits, forward + backward:

- ``fused``:   ``posefast.ops.pose_loss`` (targets never materialised; logits read once
  forward, once backward, gradient written once);
- ``unfused``: ``posefast.ops.render_heatmaps`` + ``F.binary_cross_entropy_with_logits`` +
  ``posefast.ops.soft_argmax`` + L1 (the training loop's unfused path, targets included);
- ``eager``:   ``kernels_py.pose_loss``, all pure PyTorch.

Memory floor: the logits read twice and their gradient written once,
``3 * B * K * H * W * elsize`` bytes; ``floor_x`` = fused time / (floor bytes / copy bandwidth).

Run it through the main benchmark (B = 128 at 64x48 and 256x192 unless ``--loss-sizes``):
    python benchmarks/run.py --ops pose_loss
    python benchmarks/run.py --device cpu --ops pose_loss --loss-sizes 16:64x48 --dtypes float32

``bench_pose_loss(device, sizes, dtypes, copy_gbs=...)`` returns one dict per (dtype, size)
row; ``format_rows(rows)`` renders them as a markdown table.
"""
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import kernels_py  # noqa: E402
from posefast import ops as pf  # noqa: E402
from posefast.skeleton import DEFAULT_JOINT_WEIGHTS  # noqa: E402
from timing import device_times, error_line, graph_replay_times, time_fn  # noqa: E402

NUM_JOINTS = 17
SIGMA = 2.0
BETA = 1.0
COORD_WEIGHT = 0.1
DEFAULT_SIZES = [(128, 64, 48), (128, 256, 192)]


def make_inputs(batch, h, w, dtype, device, seed):
    """``(logits requiring grad, keypoints, visible, joint_weights)``; ~20% hidden joints (NaN)."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, NUM_JOINTS, h, w, generator=gen) * 3 - 2).to(device=device, dtype=dtype)
    kp = torch.rand(batch, NUM_JOINTS, 2, generator=gen) * torch.tensor([w - 1.0, h - 1.0])
    vis = (torch.rand(batch, NUM_JOINTS, generator=gen) > 0.2).float()
    kp[vis == 0] = float("nan")
    weights = torch.tensor(DEFAULT_JOINT_WEIGHTS, dtype=torch.float32)
    return logits.requires_grad_(), kp.to(device), vis.to(device), weights.to(device)


def fused(logits, kp, vis, weights):
    loss, _ = pf.pose_loss(logits, kp, vis, SIGMA, weights, COORD_WEIGHT, BETA, "bce")
    return torch.autograd.grad(loss, logits)


def unfused_loss(logits, kp, vis, weights):
    """The training loop's unfused path (posefast.losses.PoseLoss), targets rendered here."""
    z = logits.float() if logits.dtype != torch.float64 else logits
    z = torch.where((vis > 0)[:, :, None, None], z, 0)  # hidden maps: not read, zero gradient (as PoseLoss)
    t = pf.render_heatmaps(kp, vis, tuple(z.shape[-2:]), SIGMA, dtype=z.dtype)
    m = (vis > 0).to(z.dtype) * weights.to(z.dtype)
    n = (vis > 0).sum().clamp(min=1).to(z.dtype)
    heatmap = (F.binary_cross_entropy_with_logits(z, t, reduction="none").mean(dim=(2, 3)) * m).sum() / n
    pred = pf.soft_argmax(z, BETA)
    coord = ((pred - torch.nan_to_num(kp.to(pred.dtype))).abs().mean(-1) * m).sum() / n
    return heatmap + COORD_WEIGHT * coord


def unfused(logits, kp, vis, weights):
    return torch.autograd.grad(unfused_loss(logits, kp, vis, weights), logits)


def eager(logits, kp, vis, weights):
    loss, _ = kernels_py.pose_loss(logits, kp, vis, SIGMA, weights, COORD_WEIGHT, BETA, "bce")
    return torch.autograd.grad(loss, logits)


VARIANTS = {"fused": fused, "unfused": unfused, "eager": eager}


def floor_bytes(batch, h, w, dtype):
    """Logits read twice + gradient written once."""
    return 3 * batch * NUM_JOINTS * h * w * torch.empty((), dtype=dtype).element_size()


def bench_pose_loss(device, sizes=DEFAULT_SIZES, dtypes=(torch.float32, torch.bfloat16), copy_gbs=None,
                    variants=("fused", "unfused", "eager"), n_sets=2, rounds=1, repeats=30, warmup=3, budget_s=2.0):
    """One row per (dtype, (B, H, W)): ``{variant}_us`` medians, speedups and the memory floor.

    Variants are timed in ``rounds`` interleaved rounds (``timing.time_fn``, rotating over
    ``n_sets`` input sets), so a change in machine load hits each alike. ``copy_gbs``: the
    measured copy bandwidth (read + write GB/s) for the ``floor_x`` column; None omits it.
    """
    device = torch.device(device)
    rows = []
    for dtype in dtypes:
        for batch, h, w in sizes:
            arg_sets = [make_inputs(batch, h, w, dtype, device, seed) for seed in range(n_sets)]
            row = {"op": "pose_loss_fwd_bwd", "dtype": str(dtype).replace("torch.", ""),
                   "size": f"B{batch} {h}x{w}", "floor_bytes": floor_bytes(batch, h, w, dtype)}
            samples = {name: [] for name in variants}

            def floor_ratio(us):  # a time over the floor's bytes at the copy bandwidth
                return (us * 1e-6) / (row["floor_bytes"] / (copy_gbs * 1e9)) if us and copy_gbs else None

            for _ in range(rounds):
                for name in variants:
                    samples[name] += time_fn(VARIANTS[name], arg_sets, device, max(3, repeats // rounds), warmup,
                                             budget_s / rounds)
            for name in variants:
                row[f"{name}_us"], row[f"{name}_repeats"] = statistics.median(samples[name]), len(samples[name])
            if device.type == "cuda" and "fused" in variants:
                # the fused forward + backward replayed from a CUDA graph: the kernels without host time
                try:
                    row["fused_graph_us"] = statistics.median(
                        graph_replay_times(fused, arg_sets, device, repeats, warmup, budget_s / rounds))
                    row["graph_floor_x"] = floor_ratio(row["fused_graph_us"])
                except Exception as exc:  # report it, keep the timed rows
                    row["graph_error"] = error_line(exc)
                try:  # and as device time, the host's share hidden behind a spin kernel
                    row["fused_device_us"] = statistics.median(
                        device_times(fused, arg_sets, device, repeats, warmup, budget_s / rounds,
                                     lead_us=50 + 3 * row["fused_us"]))
                    row["device_floor_x"] = floor_ratio(row["fused_device_us"])
                except Exception as exc:
                    row["device_error"] = error_line(exc)
            f = row.get("fused_us")
            row["fused_vs_unfused"] = row["unfused_us"] / f if f and row.get("unfused_us") else None
            row["fused_vs_eager"] = row["eager_us"] / f if f and row.get("eager_us") else None
            row["fused_gbps"] = row["floor_bytes"] / (f * 1e-6) / 1e9 if f else None
            row["floor_x"] = floor_ratio(f)
            rows.append(row)
            del arg_sets
    return rows


def format_rows(rows):
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    graph = any("fused_graph_us" in r for r in rows)
    device_col = any("fused_device_us" in r for r in rows)
    lines = ["| dtype | size | eager us | unfused us | fused us | x unfused | x eager | GB/s (floor) | x floor |"
             + (" fused graph us | graph x floor |" if graph else "")
             + (" fused device us | device x floor |" if device_col else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if graph else "")
             + ("---:|---:|" if device_col else "")]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['size']} | {fmt(r.get('eager_us'), '.0f')} | {fmt(r.get('unfused_us'), '.0f')}"
                     f" | {fmt(r.get('fused_us'), '.0f')} | {fmt(r['fused_vs_unfused'], '.2f')}"
                     f" | {fmt(r['fused_vs_eager'], '.2f')} | {fmt(r['fused_gbps'], '.1f')} | {fmt(r['floor_x'], '.2f')} |"
                     + (f" {fmt(r.get('fused_graph_us'), '.0f')} | {fmt(r.get('graph_floor_x'), '.2f')} |" if graph else "")
                     + (f" {fmt(r.get('fused_device_us'), '.0f')} | {fmt(r.get('device_floor_x'), '.2f')} |"
                        if device_col else ""))
    for r in rows:
        for key, what in (("graph_error", "CUDA graph"), ("device_error", "device time")):
            if r.get(key):
                lines.append(f"{what} failed for pose_loss {r['dtype']} {r['size']}: {r[key]}")
    return "\n".join(lines)
