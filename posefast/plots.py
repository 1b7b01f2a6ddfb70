"""PNG pictures of a run: per-joint PCK bars, training curves, validation overlays.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend
state, no display needed). ``write_training_pictures`` is what ``posefast.train`` calls
after each epoch; ``posefast.evaluate`` uses the same functions.
"""
import json
import math
import os

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from posefast.skeleton import KEYPOINT_NAMES

OVERLAY_PNG, PER_JOINT_PNG, CURVES_PNG = "val_overlay.png", "per_joint_pck.png", "curves.png"


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_per_joint_pck(series, path, title="per-joint PCK"):
    """Horizontal bars of per-joint PCK. ``series``: ``{label: {joint name: value or None}}``
    (e.g. ``{"torso": ..., "bbox": ...}``); a joint without a value gets no bar and "n/a".
    The legend holds each series' macro mean over joints with a value. Returns ``path``."""
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(series))
    for s, (label, values) in enumerate(series.items()):
        ys = [k + (s - (len(series) - 1) / 2) * height for k in range(len(KEYPOINT_NAMES))]
        xs = [values.get(name) for name in KEYPOINT_NAMES]
        known = [v for v in xs if v is not None and not math.isnan(v)]
        mean = f"{sum(known) / len(known):.3f}" if known else "n/a"
        ax.barh(ys, [0 if v is None or math.isnan(v) else v for v in xs], height=height, label=f"{label} (mean {mean})")
        for y, v in zip(ys, xs):
            text = "n/a" if v is None or math.isnan(v) else f"{v:.2f}"
            ax.text(0.005 if text == "n/a" else min(v, 1.0) + 0.005, y, text, va="center", fontsize=7)
    ax.set_yticks(range(len(KEYPOINT_NAMES)), KEYPOINT_NAMES, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("PCK")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    # below the axes, where it covers no bar (in the corner it hid the last joints' bars)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=len(series), fontsize=8)
    return _save(fig, path)


def read_metrics(metrics_path):
    """The records of a ``metrics.jsonl`` (one JSON object per epoch), in file order."""
    with open(metrics_path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(metrics_path, path, pck_threshold=None):
    """Two panels from ``metrics.jsonl``: losses (train total / heatmap / coord, val total;
    log scale) and validation PCK (torso, bbox; at ``pck_threshold``, for the axis label)
    per epoch. Returns ``path``."""
    records = read_metrics(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path}: no epochs recorded")
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(11, 4), layout="constrained")
    losses, pcks = fig.subplots(1, 2)
    positive = lambda v: v if v is not None and v > 0 else float("nan")  # noqa: E731  (a log axis)
    for key, label in (("loss", "train loss (total)"), ("loss_heatmap", "train heatmap loss"),
                       ("loss_coord", "train coordinate L1, heatmap px (unweighted)")):
        losses.plot(epochs, [positive(r.get(key)) for r in records], marker="o", ms=3, label=label)
    losses.plot(epochs, [positive(r["val"]["loss"]) for r in records], marker="o", ms=3, ls="--",
                label="val loss (total)")
    losses.set_yscale("log")
    losses.set(xlabel="epoch", ylabel="loss", title="losses")
    for key in ("torso", "bbox"):
        values = [float("nan") if r["val"][f"pck_{key}"] is None else r["val"][f"pck_{key}"] for r in records]
        pcks.plot(epochs, values, marker="o", ms=3, label=f"val PCK, {key}-normalised")
    pcks.set(xlabel="epoch", ylabel="PCK" if pck_threshold is None else f"PCK@{pck_threshold}", title="validation PCK", ylim=(0, 1))
    for ax in (losses, pcks):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(set(epochs)) == 1:  # one epoch: whole-number ticks around it, not 0.945 ... 1.050
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


@torch.no_grad()
def save_prediction_overlay(model, batch, path, decoder="soft_argmax", beta=1.0, flip=False, max_images=16,
                            caption=None):
    """The debugging grid for one ``Batch``: each input with the ground-truth skeleton, and
    beside it the network's prediction, both coloured left (orange) / right (blue) / middle
    (green); ``caption`` heads the grid. Returns ``path``."""
    from posefast.flip_test import predict_heatmaps
    from posefast.models.decode import decode
    from posefast.visualize import save_batch_overlay

    was_training = model.training
    model.eval()
    count = min(max_images, len(batch))
    logits = predict_heatmaps(model, batch.images[:count], flip=flip)
    model.train(was_training)
    pred = decode(logits, model.output_stride, decoder, beta)
    return save_batch_overlay(batch, path, max_images=count, predictions=pred.cpu(), show_targets=False,
                              prediction_color=None, caption=caption)


def write_training_pictures(out_dir, model, val_loader, val_record, cfg, epoch=None):
    """After an epoch: ``val_overlay.png`` (first validation batch), ``per_joint_pck.png``
    (this epoch's validation PCK) and ``curves.png`` (from ``metrics.jsonl``) in ``out_dir``.
    ``cfg``: the run's ``TrainConfig`` (soft-argmax ``beta``, ``pck_threshold``); ``epoch``
    (1-based), named in the pictures (they may lag ``metrics.jsonl``: pictures_interval_s)."""
    batches = iter(val_loader)
    batch = next(batches)
    batches.close()  # stop the loader's prefetch thread
    when = f"epoch {epoch}" if epoch is not None else "latest epoch"
    save_prediction_overlay(model, batch, os.path.join(out_dir, OVERLAY_PNG), beta=cfg.beta,
                            caption=f"validation, {when}, soft-argmax")
    series = {name: val_record[f"pck_{name}_per_joint"] for name in ("torso", "bbox")}
    plot_per_joint_pck(series, os.path.join(out_dir, PER_JOINT_PNG),
                       title=f"validation per-joint PCK@{cfg.pck_threshold} ({when})")
    plot_training_curves(os.path.join(out_dir, "metrics.jsonl"), os.path.join(out_dir, CURVES_PNG), cfg.pck_threshold)
