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

import hashlib
import os
import random
import re
import threading
import warnings

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
    # generator states must be CPU byte tensors; a checkpoint loaded with map_location="cuda"
    # holds them on the GPU
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


RESUME_KEYS = ("optimizer", "scheduler", "scaler", "rng")  # what a weights-only checkpoint leaves out


def checkpoint_payload(*, model, optimizer, scheduler, scaler, epoch: int, config: dict, metrics: dict,
                       best: float, pretrained: bool, init_source: dict | None = None,
                       weights_only: bool = False) -> dict:
    """The mapping a checkpoint holds (``weights_only``: without what resuming needs;
    ``init_source``: a fine-tuned run's :func:`load_initial_weights` record)."""
    payload = {
        "model": unwrap(model).state_dict(),
        "epoch": epoch,
        "config": config,
        "metrics": metrics,
        "best": best,
        "pretrained": pretrained,
    }
    if init_source is not None:
        payload["init_source"] = init_source
    if not weights_only:
        payload.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                       scaler=scaler.state_dict() if scaler is not None else None, rng=rng_state())
    return payload


def write_payload(payload: dict, path: str) -> None:
    """``torch.save`` to a temporary file, then rename: never a truncated ``path``."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def save_checkpoint(path: str, *, weights_only: bool = False, **state) -> None:
    """Write a checkpoint atomically to ``path`` (``weights_only``: without what resuming needs)."""
    write_payload(checkpoint_payload(weights_only=weights_only, **state), path)


def snapshot(obj):
    """``obj`` with every tensor replaced by a detached copy in CPU memory (through nested
    dicts, lists and tuples): a state that later training steps cannot change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((key, snapshot(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(value) for value in obj)
    return obj


class BackgroundCheckpointer:
    """Checkpoints written by a background thread, so training does not wait for the disk.

    ``save`` snapshots the state at once (its tensors copied to CPU memory, the random
    generators' states read), then waits for the previous write and hands this one to a
    thread. ``wait`` (also on leaving a ``with`` block) returns once the last write has
    landed. A failed write raises, naming the path, from the next ``save`` or ``wait``.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, paths: dict, **state) -> None:
        """``paths``: ``{path: weights_only}``; one snapshot serves all of them."""
        full = snapshot(checkpoint_payload(**state))
        weights = {key: value for key, value in full.items() if key not in RESUME_KEYS}
        payloads = [(path, weights if weights_only else full)
                    for path, weights_only in paths.items()]
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(payloads,), name="posefast-checkpoint")
        self._thread.start()

    def _write(self, payloads) -> None:
        for path, payload in payloads:
            try:
                write_payload(payload, path)
            except BaseException as exc:  # handed to the training thread by wait()
                error = OSError(f"writing checkpoint {path} failed: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                self._error = error
                return

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.wait()
            return
        try:  # already failing: let the last write land, and report its error without hiding this one
            self.wait()
        except OSError as write_error:
            warnings.warn(str(write_error), stacklevel=2)


_NUMPY_CORE = getattr(np, "_core", None) or np.core  # NumPy 2 / 1
# what a checkpoint's rng entry (np.random.get_state()) pickles beyond tensors and plain data
NUMPY_GLOBALS = [_NUMPY_CORE.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class CheckpointError(ValueError):
    """A file that is missing, unreadable or not a posefast training checkpoint."""


def read_checkpoint(path: str, map_location="cpu") -> dict:
    """The mapping saved at ``path``; :class:`CheckpointError` naming the path if it is not one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):  # the rng state's NumPy array
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        foreign = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if foreign:  # a pickled object that would run code on loading
            raise CheckpointError(f"{path} holds a Python object posefast does not load ({foreign.group(1)}): "
                                  "checkpoints are read with torch.load(weights_only=True), tensors and plain "
                                  "data only, so that loading a file cannot run its code") from None
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a posefast training checkpoint (no 'model' and 'config' entries)")
    for key in ("model", "config"):
        if not isinstance(ckpt[key], dict):
            raise CheckpointError(f"{path} is not a posefast training checkpoint (its {key!r} is a "
                                  f"{type(ckpt[key]).__name__}, not a mapping)")
    return ckpt


def load_checkpoint(path: str, *, model, optimizer=None, scheduler=None, scaler=None, map_location="cpu",
                    restore_rng: bool = True) -> dict:
    """Load ``path`` into the given objects (those passed) and return the whole mapping."""
    return restore_checkpoint(read_checkpoint(path, map_location), path, model=model, optimizer=optimizer,
                              scheduler=scheduler, scaler=scaler, restore_rng=restore_rng)


def restore_checkpoint(ckpt: dict, path: str, *, model, optimizer=None, scheduler=None, scaler=None,
                       restore_rng: bool = True) -> dict:
    """Load the mapping ``ckpt`` (read from ``path``) into the given objects; ``ckpt``."""
    wanted = {"optimizer": optimizer, "scheduler": scheduler, "rng": restore_rng or None}
    absent = [key for key, obj in wanted.items() if obj is not None and key not in ckpt]
    if absent:
        raise CheckpointError(f"{path} holds weights only (no {', '.join(absent)}): resume from a run's last.pt")
    try:
        unwrap(model).load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: its weights do not fit this model: {str(exc)[:300]}") from None
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


def read_initial_checkpoint(path: str) -> dict:
    """The checkpoint ``init_from`` names, or :class:`CheckpointError` saying why it cannot
    start a run (not a posefast checkpoint, or its ResNet-18 encoder does not fit)."""
    from posefast.models.encoder import ResNet18Encoder

    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as exc:
        hint = (" (ImageNet weights, a torchvision state dict, go to --pretrained PATH)"
                if "not a posefast training checkpoint" in str(exc) else "")
        raise CheckpointError(f"init_from: {exc}{hint}") from None
    encoder = {f"encoder.{key}": value for key, value in ResNet18Encoder().state_dict().items()}
    source = ckpt["model"]
    misfits = [key for key, value in encoder.items()
               if not isinstance(source.get(key), torch.Tensor) or source[key].shape != value.shape]
    if misfits:
        saved = ckpt["config"]
        raise CheckpointError(f"init_from: {path}: its encoder weights (its model: {saved.get('model')}, output "
                              f"stride {saved.get('output_stride', 4)}) do not fit a ResNet-18 encoder: "
                              f"{len(misfits)} of {len(encoder)} tensors missing or of another shape, e.g. {misfits[0]}")
    return ckpt


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_initial_weights(model: nn.Module, path: str, model_name: str, ckpt: dict | None = None) -> dict:
    """Fine-tuning: copy the weights of the posefast checkpoint at ``path`` into a new run's
    ``model`` (a ``model_name`` network): the whole encoder and, when the checkpoint's run had
    the same kind of model, every decoder tensor whose name and shape match, batch-norm
    statistics included: all of them at the same output stride, most of a U-Net's at another.
    A warning names the decoder tensors that start from scratch.

    Returns the record a run keeps of where its weights came from: ``path`` (absolute),
    ``sha256``, the source's ``epoch``, ``best_pck_torso``, ``model``, ``output_stride`` and
    ``pretrained`` (whether its run started from ImageNet weights: the new run's descend from
    the same), and ``loaded`` (``"all N tensors"`` or ``"n of N tensors (the encoder and d
    decoder tensors; its model ...)"``). ``ckpt``: the mapping :func:`read_initial_checkpoint`
    already read from ``path`` (read here otherwise, raising :class:`CheckpointError` naming
    ``path`` when its encoder does not fit)."""
    ckpt = read_initial_checkpoint(path) if ckpt is None else ckpt
    source, own = ckpt["model"], unwrap(model).state_dict()
    saved = ckpt["config"]
    same_kind = saved.get("model") == model_name
    fits = {key: value for key, value in source.items()
            if key in own and (same_kind or key.startswith("encoder.")) and isinstance(value, torch.Tensor)
            and value.shape == own[key].shape}
    unwrap(model).load_state_dict(fits, strict=False)
    encoder = sum(key.startswith("encoder.") for key in own)
    theirs = f"its model: {saved.get('model')}, output stride {saved.get('output_stride', 4)}"
    loaded = (f"all {len(own)} tensors" if len(fits) == len(own) else
              f"{len(fits)} of {len(own)} tensors (the encoder and {len(fits) - encoder} decoder tensors; {theirs})")
    if len(fits) < len(own):
        fresh = [key for key in own if key not in fits]
        warnings.warn(f"init_from: {path}: {len(fresh)} decoder tensors of this {model_name} model start from scratch "
                      f"({theirs}; e.g. {fresh[0]}); give --model {saved.get('model')} --output_stride "
                      f"{saved.get('output_stride', 4)} to take them all", stacklevel=2)
    best = ckpt.get("best")
    return {"path": os.path.abspath(path), "sha256": file_sha256(path), "epoch": ckpt.get("epoch"),
            "best_pck_torso": best if best is None or best >= 0 else None, "model": saved.get("model"),
            "output_stride": saved.get("output_stride", 4), "pretrained": bool(ckpt.get("pretrained", False)),
            "loaded": loaded}
