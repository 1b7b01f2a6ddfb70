"""Train a pose network: ``python -m posefast.train [--config X.yaml] [--key value ...]``.

One readable loop. Per epoch it logs the training loss parts, learning rate and
throughput, then validates: predictions are decoded by soft-argmax from the heatmaps
(heatmap px -> input px), mapped back to ORIGINAL image px with ``invert_keypoints``
(``eval_space: original``, the default; ``input`` keeps everything in network-input px,
with the bbox normaliser scaled by the crop's zoom) and scored with PCK@``pck_threshold``
normalised by torso size (the original study's metric) and by bbox size (as mmpose
reports it). Each epoch appends one JSON line to ``<out_dir>/metrics.jsonl`` and writes
``last.pt`` (and ``best.pt`` when torso PCK improves) and the pictures of
``posefast.plots.write_training_pictures`` (``val_overlay.png``, ``per_joint_pck.png``,
``curves.png``). Under ``torchrun`` every rank trains on its shard with DDP and only
rank 0 writes.
"""
from __future__ import annotations

import functools
import json
import math
import os
import pickle
import random
import sys
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch
import yaml
from tqdm import tqdm

from posefast import metrics
from posefast.checkpoint import (BackgroundCheckpointer, CheckpointError, load_initial_weights,
                                 read_initial_checkpoint, restore_checkpoint)
from posefast.config import (ConfigError, TrainConfig, check_output_dir, coco_paths, config_help, load_config,
                             resolve_path, to_dict)
from posefast.data.bad_input import BadInputError
from posefast.distributed import (DistContext, all_reduce_sum, barrier, broadcast_buffers, gather_to_main,
                                  init_distributed, shutdown)
from posefast.losses import PoseLoss
from posefast.models import build_model
from posefast.models.decode import decode_heatmaps
from posefast.plots import write_training_pictures
from posefast.resume import resume_checkpoint, run_is_finished, trim_metrics_log
from posefast.schedule import TimeBudget, WarmupCosine
from posefast.skeleton import KEYPOINT_NAMES


def dataset_files(cfg: TrainConfig) -> dict:
    """``{train_json, train_images, val_json, val_images}``; the synthetic set is generated on first use."""
    if cfg.dataset == "coco":
        return coco_paths(cfg)
    from posefast.data.synthetic import default_synthetic_root

    files = synthetic_files(cfg.synthetic_root or default_synthetic_root(), cfg.synthetic_train, cfg.synthetic_val,
                            cfg.seed, cfg.synthetic_image_size)
    return {"train_json": files["train_json"], "train_images": files["image_dir"],
            "val_json": files["val_json"], "val_images": files["image_dir"]}


def synthetic_files(root: str, num_train: int, num_val: int, seed: int, image_size: int) -> dict:
    """The synthetic set in its own sub-folder of ``root`` per parameter set (so runs of
    different sizes never regenerate each other's images), generated on first use."""
    from posefast.data.synthetic import make_synthetic_dataset

    folder = os.path.join(root, f"train{num_train}_val{num_val}_seed{seed}_size{image_size}")
    return make_synthetic_dataset(folder, num_train=num_train, num_val=num_val, seed=seed, image_size=image_size)


def build_loaders(cfg: TrainConfig, files: dict, stride: int, ctx: DistContext):
    """Train and validation ``PoseLoader``s (rank 0 builds the crop caches first)."""
    from posefast.data import AugmentConfig, CocoKeypoints, PoseLoader

    def dataset(split, subset):
        return CocoKeypoints(files[f"{split}_json"], files[f"{split}_images"], mode=cfg.mode,
                             input_size=cfg.input_size, subset=subset, seed=cfg.seed, cache_dir=cfg.cache_dir or None,
                             skip_bad=cfg.skip_bad, progress=cfg.progress and ctx.is_main)

    if not ctx.is_main:
        barrier(ctx)
    train_set, val_set = dataset("train", cfg.train_subset), dataset("val", cfg.val_subset)
    if ctx.is_main:
        barrier(ctx)
    common = dict(device=ctx.device, output_stride=stride, sigma=cfg.sigma, seed=cfg.seed, rank=ctx.rank,
                  world_size=ctx.world_size, render_targets=not cfg.fused_loss)  # the fused loss needs no targets
    augment = AugmentConfig(**cfg.augment_options) if cfg.augment else None
    train = PoseLoader(train_set, cfg.batch_size, shuffle=True, drop_last=len(train_set) >= cfg.batch_size * ctx.world_size,
                       augment=augment, **common)
    val = PoseLoader(val_set, cfg.batch_size, shuffle=False, drop_last=False, augment=None, **common)
    return train, val


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW; no weight decay on biases and normalisation parameters."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg.lr)


def build_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """Per-step LambdaLR: linear warm-up, then cosine to ``min_lr_ratio`` at the last epoch."""
    schedule = WarmupCosine(round(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch, cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(amp: bool, device: torch.device):
    """bf16 autocast on ``device`` (CUDA or CPU) when ``amp`` is on; nothing otherwise."""
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether this run computes the network in bf16: ``amp`` on CUDA, ``cpu_amp`` on the CPU."""
    if device.type == "cpu" and cfg.cpu_amp and not cpu_has_native_bf16():
        warn_bf16_without_native_support()
    return cfg.amp if device.type == "cuda" else cfg.cpu_amp and device.type == "cpu"


@functools.cache
def warn_bf16_without_native_support() -> None:
    """Once per process (``use_amp`` is asked at the start, in every epoch and evaluation)."""
    warnings.warn("cpu_amp: this CPU has no native bf16 (AVX512-BF16/AMX): bf16 autocast runs, "
                  "but likely slower than float32", stacklevel=3)


def cpu_has_native_bf16() -> bool:
    """oneDNN's own check for bf16 instructions (AVX512-BF16 or AMX) on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train_step(model, loss_fn, optimizer, batch, *, amp: bool, channels_last: bool, grad_clip: float):
    """Forward (bf16 autocast if ``amp``), dual loss, backward, clip, optimiser step."""
    device = batch.images.device
    images = batch.images.contiguous(memory_format=torch.channels_last) if channels_last else batch.images
    with autocast(amp, device):
        logits = model(images)
    out = loss_fn(logits, batch.heatmap_keypoints, batch.visible, batch.targets)
    optimizer.zero_grad(set_to_none=True)
    out.total.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return out


def loss_sums(out, n: int, like: torch.Tensor) -> torch.Tensor:
    """``(total, heatmap, coord, samples)`` of a batch of ``n``, summed over its samples, as
    ``like`` (dtype, device): built on the device, so the loops never wait for it (a host
    tensor copied over would wait for the whole step)."""
    return torch.stack([out.total.detach(), out.heatmap, out.coord, torch.ones_like(out.coord)]).to(like) * n


def train_one_epoch(model, loss_fn, loader, optimizer, scheduler, cfg, ctx, epoch) -> dict:
    """One pass over this rank's shard; mean loss parts over all ranks, lr, samples/s."""
    model.train()
    loader.set_epoch(epoch)
    sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)  # total, heatmap, coord, samples
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and ctx.is_main),
               leave=False, dynamic_ncols=True)
    amp = use_amp(cfg, ctx.device)
    start = time.perf_counter()
    for step, batch in enumerate(bar):
        out = train_step(model, loss_fn, optimizer, batch, amp=amp, channels_last=use_channels_last(cfg, ctx),
                         grad_clip=cfg.grad_clip)
        scheduler.step()
        sums += loss_sums(out, len(batch), sums)
        # .item() waits for the device: every 10th step only (not bar.n: tqdm refreshes it only
        # every mininterval, so it holds a multiple of 10 for many steps in a row)
        if not bar.disable and step % 10 == 0:
            bar.set_postfix(loss=f"{out.total.item():.4f}")
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    elapsed = time.perf_counter() - start
    all_reduce_sum(ctx, sums)
    total, heatmap, coord, samples = sums.tolist()
    return {"loss": total / samples, "loss_heatmap": heatmap / samples, "loss_coord": coord / samples,
            "lr": scheduler.get_last_lr()[0], "samples_per_s": samples / elapsed, "train_time_s": elapsed}


def use_channels_last(cfg: TrainConfig, ctx: DistContext) -> bool:
    return cfg.channels_last and (ctx.device.type == "cuda" or (ctx.device.type == "cpu" and cfg.cpu_amp))


def eval_points(batch, pred_input_px: torch.Tensor, space: str):
    """(pred, gt, visible, bbox normaliser) of a batch in the evaluation space.

    ``original``: predictions mapped back through ``invert_keypoints`` and compared with
    the unaugmented annotation (all labelled joints) and the person box, in original
    image px. ``input``: everything in network-input px (joints inside the input only),
    the box size scaled by the crop's zoom.
    """
    if space == "original":
        from posefast.data import invert_keypoints

        pred = invert_keypoints(pred_input_px, batch.affine, batch.flipped)
        return pred, batch.gt_keypoints_orig, batch.gt_visible_orig, metrics.bbox_size(batch.bbox)
    zoom = torch.linalg.det(batch.affine[:, :, :2].double()).abs().sqrt().float()
    return pred_input_px, batch.keypoints, batch.visible, metrics.bbox_size(batch.bbox) * zoom


@torch.no_grad()
def evaluate(model, loss_fn, loader, cfg: TrainConfig, ctx: DistContext) -> dict | None:
    """Validation loss and PCK (torso- and bbox-normalised) on rank 0; ``None`` elsewhere.

    Every rank scores its shard; rank 0 gathers the points, drops the duplicates that
    DDP's wrap-around padding adds, and computes PCK with ``posefast.metrics.pck``.
    """
    model.eval()
    keys = ("index", "pred", "gt", "vis", "torso", "bbox")
    parts, sums = [], torch.zeros(4, dtype=torch.float64, device=ctx.device)
    amp = use_amp(cfg, ctx.device)
    for batch in loader:
        with autocast(amp, ctx.device):
            logits = model(batch.images)
        out = loss_fn(logits, batch.heatmap_keypoints, batch.visible, batch.targets)
        sums += loss_sums(out, len(batch), sums)
        pred, gt, vis, box = eval_points(batch, decode_heatmaps(logits, model.output_stride, cfg.beta), cfg.eval_space)
        values = (batch.indices, pred, gt, vis, metrics.torso_size(gt, vis), box)
        parts.append({k: v if k == "index" else v.float() for k, v in zip(keys, values)})
    # one move to the host after the loop: no device synchronisation per batch
    parts = [{k: v.cpu() for k, v in part.items()} for part in parts]
    gathered = gather_to_main(ctx, {"parts": parts, "sums": sums.cpu()})
    if not ctx.is_main:
        return None
    merged = {k: torch.cat([p[k] for g in gathered for p in g["parts"]]) for k in keys}
    _, first = np.unique(merged["index"].numpy(), return_index=True)
    merged = {k: v[torch.from_numpy(first)] for k, v in merged.items()}
    total, heatmap, coord, samples = sum(g["sums"] for g in gathered).tolist()
    result = {"loss": total / samples, "loss_heatmap": heatmap / samples, "loss_coord": coord / samples,
              "samples": len(first)}
    for name in ("torso", "bbox"):
        pck = metrics.pck(merged["pred"], merged["gt"], merged["vis"], merged[name], (cfg.pck_threshold,))
        mean, per_joint = pck.at(cfg.pck_threshold)
        result[f"pck_{name}"] = None if math.isnan(mean) else mean
        result[f"pck_{name}_per_joint"] = {j: (None if math.isnan(v) else v) for j, v in zip(KEYPOINT_NAMES, per_joint.tolist())}
    return result


def log_line(epoch: int, epochs: int, cfg: TrainConfig, train: dict, val: dict) -> str:
    """One human-readable summary line per epoch (``epochs``: the planned number)."""
    pck = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"epoch {epoch}/{epochs}  loss {train['loss']:.4f} (heatmap {train['loss_heatmap']:.4f}, "
            f"coord {train['loss_coord']:.3f})  lr {train['lr']:.2e}  {train['samples_per_s']:.1f} samples/s  "
            f"val loss {val['loss']:.4f}  PCK@{cfg.pck_threshold} torso {pck(val['pck_torso'])} bbox {pck(val['pck_bbox'])}")


def fit_epochs_to_budget(budget: TimeBudget, done: int, planned: int, last_epoch_s: float, scheduler,
                         steps_per_epoch: int, ctx: DistContext) -> int:
    """The number of epochs that still fits the time budget (rank 0 decides for every rank);
    when it is fewer than ``planned``, the cosine schedule is shortened to end on the last."""
    fits = budget.epochs_that_fit(done, planned, last_epoch_s, time.perf_counter()) if ctx.is_main else 0
    fits = int(all_reduce_sum(ctx, torch.tensor([fits], device=ctx.device)).item())
    if fits < planned:
        scheduler.lr_lambdas[0].total_steps = fits * steps_per_epoch
        if ctx.is_main:
            tqdm.write(f"time_limit_min {budget.limit_s / 60:g}: {fits} of {planned} epochs fit "
                       f"(the last took {last_epoch_s:.1f} s); the schedule now ends at epoch {fits}")
    return fits


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def check_device_and_weights(cfg: TrainConfig) -> None:
    """ConfigError, before any work, for a CUDA device this machine lacks or a ``pretrained``
    weights file that is not there (a resumed or fine-tuned run takes its weights from a
    checkpoint: ``last.pt``, or ``init_from``'s, see :func:`check_initial_checkpoint`)."""
    if cfg.device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(cfg.device.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(f"device {cfg.device!r}: this machine has {count} CUDA device(s); use --device "
                              f"{'cpu' if count == 0 else 'cuda:0'} (or auto)")
    if cfg.resume:
        return
    weights_file = cfg.pretrained not in ("auto", "none", "download") and not cfg.init_from
    if weights_file and not os.path.isfile(cfg.pretrained):
        raise ConfigError(f"pretrained: no weights file at {cfg.pretrained!r} (a torchvision resnet18 state dict; "
                          "or auto, none, download)")


def check_initial_checkpoint(cfg: TrainConfig) -> dict:
    """``init_from``'s checkpoint, read once, before any work; ConfigError or CheckpointError
    for one that is missing, not a posefast checkpoint, without a fitting encoder, or the
    ``last.pt`` / ``best.pt`` of the run's own ``out_dir`` (training would overwrite it)."""
    path = resolve_path(cfg.init_from)
    if not os.path.isfile(path):
        inside = [name for name in ("best.pt", "last.pt") if os.path.isfile(os.path.join(path, name))]
        hint = f"; did you mean {os.path.join(cfg.init_from, inside[0])}?" if inside else ""
        raise ConfigError(f"init_from: no checkpoint file at {cfg.init_from!r} (another run's best.pt or last.pt)"
                          + hint)
    same_dir = os.path.realpath(os.path.dirname(path)) == os.path.realpath(cfg.out_dir)
    if same_dir and os.path.basename(path) in ("last.pt", "best.pt"):
        raise ConfigError(f"init_from {cfg.init_from!r} is this run's own {os.path.basename(path)} in out_dir "
                          f"{cfg.out_dir!r}, which training overwrites: give the fine-tuned run another --out_dir")
    return read_initial_checkpoint(path)


def train(cfg: TrainConfig, stop_after: int | None = None) -> dict | None:
    """Run (or resume) training as configured; the last epoch's metrics record on rank 0.

    ``stop_after``: return after this many epochs of this invocation, leaving ``last.pt``
    as an interrupted run would (``resume: true`` then continues exactly).
    """
    if cfg.dataset == "coco":
        coco_paths(cfg)  # a missing dataset is a ConfigError before anything starts
    check_device_and_weights(cfg)
    initial = check_initial_checkpoint(cfg) if cfg.init_from and not cfg.resume else None
    if int(os.environ.get("RANK", "0")) == 0:
        check_output_dir(cfg.out_dir)
    ctx = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, stop_after, initial)
    finally:
        shutdown(ctx)


def _train(cfg: TrainConfig, ctx: DistContext, stop_after: int | None, initial: dict | None) -> dict | None:
    started = time.perf_counter()  # a time budget counts the data preparation (crop caches) too
    out_dir = os.path.abspath(cfg.out_dir)
    last_path, best_path = os.path.join(out_dir, "last.pt"), os.path.join(out_dir, "best.pt")
    ckpt = resume_checkpoint(cfg, last_path, ctx.world_size) if cfg.resume else None
    if ckpt is not None and run_is_finished(ckpt, cfg):
        if ctx.is_main:
            cut = " (its time budget ended the plan there)" if ckpt["epoch"] < cfg.epochs else ""
            print(f"posefast.train: nothing to do: {last_path} holds {ckpt['epoch']} epochs, all of its plan{cut}; "
                  f"raise --epochs above {max(ckpt['epoch'], ckpt['config']['epochs'])} to train on", flush=True)
        return ckpt["metrics"]
    files = dataset_files(cfg) if ctx.is_main else None
    if ctx.enabled:
        holder = [files]
        torch.distributed.broadcast_object_list(holder, src=0)
        files = holder[0]
    seed_everything(cfg.seed + ctx.rank)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    # resumed: the weights come from last.pt (and whether they started pretrained with them);
    # fine-tuned: from init_from's checkpoint
    fine_tune = bool(cfg.init_from) and ckpt is None
    try:
        model = build_model(cfg.model, pretrained="none" if ckpt is not None or fine_tune else cfg.pretrained,
                            output_stride=cfg.output_stride, head_bias=cfg.head_bias)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:  # unreadable or foreign weights, offline
        raise ConfigError(f"pretrained {cfg.pretrained!r}: {exc}") from exc
    pretrained = model.pretrained
    init_source = ckpt.get("init_source") if ckpt is not None else None  # where a fine-tuned run started
    if fine_tune:
        init_source = load_initial_weights(model, resolve_path(cfg.init_from), cfg.model, ckpt=initial)
        pretrained = init_source["pretrained"]
    model = model.to(ctx.device)
    if use_channels_last(cfg, ctx):
        model = model.to(memory_format=torch.channels_last)
    stride = model.output_stride
    loss_fn = PoseLoss(cfg.loss, cfg.coord_weight, cfg.sigma, cfg.beta, cfg.joint_weights,
                       fused=cfg.fused_loss).to(ctx.device)
    train_loader, val_loader = build_loaders(cfg, files, stride, ctx)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, len(train_loader))
    scaler = torch.amp.GradScaler(enabled=False)  # bf16 needs no loss scaling; kept for the checkpoint format
    start_epoch, best, record = 0, -1.0, None
    if ckpt is not None:
        restore_checkpoint(ckpt, last_path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        start_epoch, best, pretrained, record = ckpt["epoch"], ckpt["best"], ckpt["pretrained"], ckpt["metrics"]
        ckpt = None  # its tensors are copied into the model and optimizer
        scheduler.lr_lambdas[0].total_steps = cfg.epochs * len(train_loader)  # the plan is the config's again
        if ctx.rank:
            seed_everything(cfg.seed + ctx.rank + 1000 * start_epoch)
    if ctx.is_main:
        trim_metrics_log(os.path.join(out_dir, "metrics.jsonl"), start_epoch)
        skipped = {name: dict(loader.dataset.skipped) for name, loader in (("train", train_loader), ("val", val_loader))}
        with open(os.path.join(out_dir, "config.yaml"), "w") as f:
            found = {"pretrained_loaded": pretrained, "init_source": init_source,  # config.RUN_RECORD_KEYS
                     "data_skipped": skipped}
            yaml.safe_dump({**to_dict(cfg), **found}, f, sort_keys=False)
        print(f"posefast.train: {cfg.model} (output stride {stride}, pretrained: {str(pretrained).lower()}, "
              f"{'bf16' if use_amp(cfg, ctx.device) else 'float32'}) on "
              f"{ctx.device} x{ctx.world_size}, {len(train_loader.dataset)} train / {len(val_loader.dataset)} val "
              f"samples, {cfg.input_size[0]}x{cfg.input_size[1]} input -> {out_dir}", flush=True)
        if fine_tune:
            ignored = f"; pretrained {cfg.pretrained!r} not used" if cfg.pretrained not in ("auto", "none") else ""
            print(f"posefast.train: fine-tuning from {init_source['path']} (epoch {init_source['epoch']}, sha256 "
                  f"{init_source['sha256'][:12]}): {init_source['loaded']}; a fresh optimiser and schedule{ignored}",
                  flush=True)
    net = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    epochs = cfg.epochs  # the plan; a time budget may shorten it (and the schedule with it)
    budget = TimeBudget(cfg.time_limit_min, started) if cfg.time_limit_min else None
    mark = time.perf_counter()  # from one budget check to the next: an epoch plus the saving before it
    pictures_at = -math.inf  # when the training pictures were last written
    # rank 0 writes last.pt / best.pt on a background thread while training goes on; leaving
    # this block waits for the last write
    with BackgroundCheckpointer() as checkpoints:
        for epoch in range(start_epoch, cfg.epochs):
            train_stats = train_one_epoch(net, loss_fn, train_loader, optimizer, scheduler, cfg, ctx, epoch)
            if not math.isfinite(train_stats["loss"]):  # the same on every rank (all-reduced)
                raise TrainingDivergedError(
                    f"the training loss of epoch {epoch + 1} is {train_stats['loss']}; nothing of it was saved "
                    f"({'last.pt holds epoch ' + str(epoch) if epoch else 'no checkpoint was written'}). "
                    f"Train again into a new out_dir with a lower lr (now {cfg.lr:g}) or a "
                    f"{'smaller grad_clip (now ' + format(cfg.grad_clip, 'g') + ')' if cfg.grad_clip else 'grad_clip (now off)'}")
            broadcast_buffers(ctx, model)
            val_stats = evaluate(model, loss_fn, val_loader, cfg, ctx)
            if budget is not None:
                now = time.perf_counter()
                epochs = fit_epochs_to_budget(budget, epoch + 1, epochs, now - mark, scheduler, len(train_loader), ctx)
                mark = now
            if ctx.is_main:
                record = {"epoch": epoch + 1, "epochs": epochs, "step": scheduler.last_epoch, **train_stats,
                          "world_size": ctx.world_size, "pretrained": pretrained, "val": val_stats}
                with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
                score = val_stats["pck_torso"] if val_stats["pck_torso"] is not None else -1.0
                improved = score > best
                best = max(best, score)
                state = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, epoch=epoch + 1,
                             config=to_dict(cfg), metrics=record, best=best, pretrained=pretrained,
                             init_source=init_source)
                checkpoints.save({last_path: False, **({best_path: True} if improved else {})}, **state)
                tqdm.write(log_line(epoch + 1, epochs, cfg, train_stats, val_stats))
            last = epoch + 1 >= epochs or (stop_after is not None and epoch + 1 - start_epoch >= stop_after)
            if ctx.is_main and (last or time.perf_counter() - pictures_at >= cfg.pictures_interval_s):
                write_training_pictures(out_dir, model, val_loader, val_stats, cfg, epoch=epoch + 1)
                pictures_at = time.perf_counter()
            barrier(ctx)
            if last:
                break
    return record


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; a bad configuration exits with status 2 before any work."""
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        usage = (__doc__ or "python -m posefast.train").split("\n\n")[0]
        print(f"{usage}\n\nEvery config key (in a --config YAML file or as --key value, later ones winning):\n\n"
              + config_help())
        return 0
    try:
        cfg = load_config(argv)
        train(cfg)
    except ConfigError as exc:
        print(f"posefast.train: configuration error: {exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"posefast.train: checkpoint error: {exc}", file=sys.stderr)
        return 2
    except TrainingDivergedError as exc:
        print(f"posefast.train: training diverged: {exc}", file=sys.stderr)
        return 1
    except BadInputError as exc:
        # an item's error reaches here only with skip_bad off; a whole file's (unreadable JSON,
        # nothing usable left) stops the run either way
        whole_file = exc.reason in ("missing_annotation_file", "malformed_json", "empty_dataset")
        hint = "" if whole_file else " (--skip_bad true skips and counts such items)"
        print(f"posefast.train: bad input: {exc}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
