"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``torch.save`` mapping: ``model``, ``optimizer``, ``scheduler``,
``scaler`` (state dicts; ``scaler`` may be ``None``), ``epoch`` (number of finished
epochs), ``config`` (plain mapping), ``metrics`` (the last epoch's record), ``best``
(best validation PCK so far), ``pretrained`` (whether the encoder started from ImageNet
weights) and ``rng`` (Python, NumPy, torch CPU and CUDA generator states). A
weights-only checkpoint (``best.pt``: what evaluation, inference and export read) leaves
out ``optimizer``, ``scheduler``, ``scaler`` and ``rng``: a third of the size, since AdamW
keeps two moments per weight; runs resume from ``last.pt``. Files are written atomically
(temporary file + rename), so an interrupted save never leaves a truncated file.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict:
    """Every global random generator's state."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str, *, model, optimizer, scheduler, scaler, epoch: int, config: dict, metrics: dict,
                    best: float, pretrained: bool, weights_only: bool = False) -> None:
    """Write a checkpoint atomically to ``path`` (``weights_only``: without what resuming needs)."""
    payload = {
        "model": unwrap(model).state_dict(),
        "epoch": epoch,
        "config": config,
        "metrics": metrics,
        "best": best,
        "pretrained": pretrained,
    }
    if not weights_only:
        payload.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                       scaler=scaler.state_dict() if scaler is not None else None, rng=rng_state())
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


class CheckpointError(ValueError):
    """A file that is missing, unreadable or not a posefast training checkpoint."""


def read_checkpoint(path: str, map_location="cpu") -> dict:
    """The mapping saved at ``path``; :class:`CheckpointError` naming the path if it is not one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a posefast training checkpoint (no 'model' and 'config' entries)")
    return ckpt


def load_checkpoint(path: str, *, model, optimizer=None, scheduler=None, scaler=None, map_location="cpu",
                    restore_rng: bool = True) -> dict:
    """Load ``path`` into the given objects (those passed) and return the whole mapping."""
    ckpt = read_checkpoint(path, map_location)
    wanted = {"optimizer": optimizer, "scheduler": scheduler, "rng": restore_rng or None}
    absent = [key for key, obj in wanted.items() if obj is not None and key not in ckpt]
    if absent:
        raise CheckpointError(f"{path} holds weights only (no {', '.join(absent)}): resume from a run's last.pt")
    unwrap(model).load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler") is not None:
        scaler.load_state_dict(ckpt["scaler"])
    if restore_rng:
        set_rng_state(ckpt["rng"])
    return ckpt


def load_trained_model(path: str, device="cpu"):
    """``(model, config, checkpoint)``: the network of a training checkpoint, rebuilt from its
    saved config, with its weights, on ``device`` and in eval mode (for evaluation, inference
    and export). Raises :class:`CheckpointError` naming ``path`` when that is impossible."""
    from posefast.config import ConfigError, config_from_dict
    from posefast.models import build_model

    ckpt = read_checkpoint(path)
    try:
        cfg = config_from_dict(ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its saved config is not usable: {exc}") from None
    model = build_model(cfg.model, pretrained="none", output_stride=cfg.output_stride, head_bias=cfg.head_bias)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {cfg.model!r}: {str(exc)[:300]}") from None
    return model.to(device).eval(), cfg, ckpt
