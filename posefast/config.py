"""Training configuration: one dataclass, YAML files, and ``--key value`` overrides.

``load_config(argv)`` reads ``--config FILE.yaml`` (if given), then applies every other
``--key value`` (or ``--key=value``; ``-`` and ``_`` are interchangeable; a bare
``--flag`` sets a boolean to true) on top of the dataclass defaults. Every key is checked
against the dataclass fields and every value against the field's type, so a typo or a
wrong type is a :class:`ConfigError` before any work starts. ``check_paths`` then
resolves the dataset folder and proves the output folder writable.

The dataclass defaults are the built-in synthetic run (``configs/synthetic_simple.yaml``).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Optional

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHOICES = {
    "dataset": ("synthetic", "coco"),
    "mode": ("topdown", "image"),
    "model": ("simple", "unet"),
    "loss": ("bce", "mse"),
    "optimizer": ("adam", "adamw"),
    "eval_space": ("original", "input"),
}


class ConfigError(ValueError):
    """A configuration that cannot run: unknown key, wrong type or value, bad path."""


@dataclass
class TrainConfig:
    """Every knob of ``python -m posefast.train`` (see ``configs/*.yaml``)."""

    # data
    dataset: str = "synthetic"  # synthetic (generated on first use) | coco
    data_dir: str = ""  # coco: folder with train.json, val.json, images/ (relative: cwd, then repo root)
    train_json: str = ""  # coco: training annotations ("" = data_dir/train.json)
    train_images: str = ""  # coco: their image folder ("" = data_dir/images)
    val_json: str = ""  # coco: validation annotations ("" = data_dir/val.json)
    val_images: str = ""  # coco: their image folder ("" = data_dir/images)
    skip_bad: bool = False  # coco: skip (and count) missing/corrupt images and bad annotations instead of failing
    cache_dir: str = ""  # crop caches ("" = posefast default)
    synthetic_root: str = ""  # where the synthetic set is generated ("" = posefast default)
    synthetic_train: int = 600  # images in the synthetic training split
    synthetic_val: int = 100  # images in the synthetic validation split
    synthetic_image_size: int = 160  # square synthetic images, px
    mode: str = "topdown"  # topdown (one crop per person) | image (whole image, original study)
    input_size: tuple[int, int] = (96, 64)  # (H, W), multiples of 32
    train_subset: Optional[int] = None  # this many training images, picked from seed (none: all)
    val_subset: Optional[int] = None  # this many validation images, picked from seed (none: all)
    # random scale, rotation and flip of the training crops (augment_options); off by default:
    # the synthetic val split matches the train distribution, and off converges faster in a short run
    augment: bool = False
    augment_options: dict = field(default_factory=lambda: {"rotation": 15.0, "scale": 0.2})  # AugmentConfig fields
    # model
    model: str = "simple"  # simple | unet
    output_stride: int = 4  # unet: 4, 2 or 1
    pretrained: str = "auto"  # auto | none | download | PATH
    # fine-tune: start from this posefast checkpoint's weights (another run's best.pt or last.pt)
    # with a fresh optimiser and schedule: the encoder's and every decoder tensor of the same name
    # and shape (all when model and output_stride match); relative: to the cwd, else the repo root
    init_from: str = ""
    head_bias: float = -4.0  # initial bias of the heatmap conv (a low prior suits BCE)
    # loss
    loss: str = "bce"  # bce | mse
    coord_weight: float = 0.1  # weight of the L1 loss on soft-argmax coordinates (0: heatmap loss only)
    sigma: float = 2.0  # Gaussian target sigma, heatmap px
    beta: float = 2.0  # soft-argmax inverse temperature (loss and decoding)
    joint_weights: Optional[list[float]] = None  # None = posefast.skeleton.DEFAULT_JOINT_WEIGHTS
    fused_loss: bool = True  # fused posefast.ops.pose_loss, no target maps; false: render targets + unfused loss
    # optimisation
    optimizer: str = "adamw"  # adam | adamw (no weight decay on biases and norms)
    lr: float = 5e-3  # peak learning rate, reached after the warm-up
    weight_decay: float = 1e-4  # of the conv and linear weights
    warmup_epochs: float = 0.5  # linear warm-up from 0, in epochs (fractions allowed)
    min_lr_ratio: float = 0.01  # cosine floor, as a fraction of lr
    epochs: int = 10  # planned epochs: the cosine schedule ends on the last
    # wall-clock budget from the run's start (data preparation included): keep the epochs that
    # fit, the schedule ending on the last
    time_limit_min: Optional[float] = None
    batch_size: int = 16  # per process
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    # system
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA
    cpu_amp: bool = False  # bf16 autocast on the CPU too (~1.7x faster steps on CPUs with AVX512-BF16 or AMX)
    channels_last: bool = True  # on CUDA, and on the CPU with cpu_amp
    # CUDA: cuDNN times its convolution algorithms for each new input shape once and keeps the
    # fastest (the input size is fixed here); false: its heuristics pick, as PyTorch's default
    cudnn_benchmark: bool = True
    compile: bool = False  # torch.compile the model
    seed: int = 0  # initialisation, augmentation, subsets and the synthetic set
    # evaluation and output
    pck_threshold: float = 0.2  # PCK@threshold, a fraction of torso (and bbox) size
    eval_space: str = "original"  # PCK in original image px (or in network-input px)
    out_dir: str = "runs/synthetic_simple"  # run folder: config, metrics.jsonl, checkpoints, pictures
    resume: bool = False  # continue from out_dir/last.pt
    progress: bool = True  # tqdm bars
    # val_overlay / per_joint_pck / curves PNGs: after the last epoch, and after any epoch that
    # ends this many seconds after the previous pictures (0: every epoch). They cost about a
    # second per write, which on a GPU is longer than a training epoch of the COCO subset.
    pictures_interval_s: float = 30.0


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# What a run records in its config.yaml beside the fields (what it found, not what it was told):
# read back with --config (to retrain a run as it was), they are skipped.
RUN_RECORD_KEYS = ("pretrained_loaded", "init_source", "data_skipped")
HINTS = typing.get_type_hints(TrainConfig)


def coerce(name: str, value, hint):
    """``value`` checked against (and converted to) the type ``hint``, or ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(name, value, next(a for a in args if a is not type(None)))
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.strip("[]()").split(",") if v.strip()]
            value = [yaml.safe_load(v) for v in value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if origin is tuple and len(value) != len(args):
            raise ConfigError(f"{name}: expected {len(args)} values, got {value!r}")
        items = [coerce(name, v, args[i] if origin is tuple else args[0]) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
        return value
    if hint is int:
        return _number(name, value, int, (int,), "an integer")
    if hint is float:
        return float(_number(name, value, float, (int, float), "a number"))
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config type {hint} for {name}")


def _number(name: str, value, parse, accepted: tuple, what: str):
    """``value`` (or the string parsed by ``parse``) as one of ``accepted`` (never a bool)."""
    if isinstance(value, str):
        try:
            value = parse(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ConfigError(f"{name}: expected {what}, got {value!r}")
    return value


def check_key(key: str, source: str) -> str:
    """The field name for ``key`` (``-`` read as ``_``), or a ConfigError with suggestions."""
    name = key.replace("-", "_")
    if name not in FIELDS:
        close = difflib.get_close_matches(name, FIELDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r} in {source}{hint}")
    return name


def parse_overrides(argv: list[str]) -> tuple[Optional[str], dict]:
    """``--config`` path and the raw ``{field: value}`` overrides from a command line."""
    config_path, raw, i = None, {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            after = f" after {argv[i - 2]} {argv[i - 1]}" if i >= 2 and argv[i - 2].startswith("--") else ""
            raise ConfigError(f"unexpected argument {arg!r}{after}; use --key value (a list is one argument: "
                              "--input_size 128,96)")
        key, eq, value = arg[2:].partition("=")
        next_is_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if not eq and next_is_value:
            value, i = argv[i + 1], i + 1
        elif not eq:
            value = None  # bare flag
        i += 1
        if key == "config":
            if value is None:
                raise ConfigError("--config needs a file")
            config_path = value
            continue
        name = check_key(key, "the command line")
        if value is None:
            if HINTS[name] is not bool:
                raise ConfigError(f"--{key} needs a value")
            value = True
        else:
            value = value if HINTS[name] in (str, Optional[str]) else yaml.safe_load(value)
        raw[name] = value
    return config_path, raw


def config_help() -> str:
    """Every field of :class:`TrainConfig` with its type, default and the comment beside it
    (or above it) in this file, grouped by the one-word section comments: ``--help``."""
    lines, block, out = inspect.getsource(TrainConfig).splitlines(), [], []
    for line in lines:
        text = line.strip()
        if not text:
            block = []
        elif text.startswith("#"):
            words = text.lstrip("#").strip()
            if re.fullmatch(r"[a-z ]+", words) and len(words.split()) <= 3:  # a section: "# data"
                out.append(f"\n{words}:")
                block = []
            else:
                block.append(words)
        else:
            match = re.match(r"(\w+): [^=]+?= (.*)$", text)
            if match and match.group(1) in FIELDS:
                name, rest = match.groups()
                inline = rest.split("  # ", 1)[1] if "  # " in rest else ""
                comment = " ".join(block + [inline]).strip()  # a block comment is the next field's
                block = []
                hint = str(HINTS[name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
                default = to_dict(TrainConfig())[name]
                out.append(f"  --{name} ({hint}, default {default!r})" + (f": {comment}" if comment else ""))
    return "\n".join(out).lstrip("\n")


def read_yaml(path: str) -> dict:
    """The mapping in a YAML config file (ConfigError if absent, not YAML or not a mapping)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    return data


def validate(cfg: TrainConfig) -> TrainConfig:
    """Value checks that need no file system access."""
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{name}: {getattr(cfg, name)!r} is not one of {choices}")
    for name in ("epochs", "batch_size", "synthetic_train", "synthetic_val", "synthetic_image_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if any(s <= 0 or s % 32 for s in cfg.input_size):
        raise ConfigError(f"input_size must be positive multiples of 32, got {cfg.input_size}")
    if cfg.model == "simple" and cfg.output_stride != 4:
        raise ConfigError("model simple has output_stride 4; use model unet for 2 or 1")
    if cfg.output_stride not in (4, 2, 1):
        raise ConfigError(f"output_stride must be 4, 2 or 1, got {cfg.output_stride}")
    if cfg.joint_weights is not None and len(cfg.joint_weights) != 17:
        raise ConfigError(f"joint_weights needs 17 values, got {len(cfg.joint_weights)}")
    for name in ("lr", "sigma", "beta", "pck_threshold"):
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)}")
    from posefast.ops.validation import FLOAT32_MAX, MIN_SIGMA  # the ranges the loss's ops accept

    if not MIN_SIGMA <= cfg.sigma <= FLOAT32_MAX or not cfg.beta <= FLOAT32_MAX:
        raise ConfigError(f"sigma must be in [{MIN_SIGMA:g}, {FLOAT32_MAX:g}] and beta at most {FLOAT32_MAX:g} "
                          f"(the kernels' float32 range), got sigma {cfg.sigma}, beta {cfg.beta}")
    if not abs(cfg.coord_weight) <= FLOAT32_MAX:
        raise ConfigError(f"coord_weight must be a finite number, got {cfg.coord_weight}")
    if not cfg.pictures_interval_s >= 0:
        raise ConfigError(f"pictures_interval_s must be >= 0 seconds, got {cfg.pictures_interval_s}")
    if cfg.time_limit_min is not None and not cfg.time_limit_min > 0:
        raise ConfigError(f"time_limit_min must be > 0 minutes (or none), got {cfg.time_limit_min}")
    named = [name for name in ("data_dir", *COCO_FILES) if getattr(cfg, name)]
    if named and cfg.dataset != "coco":
        raise ConfigError(f"{', '.join(named)} name a COCO keypoints dataset: add --dataset coco "
                          f"(dataset is {cfg.dataset!r}, which would ignore them)")
    if cfg.warmup_epochs < 0 or cfg.grad_clip < 0 or not 0 <= cfg.min_lr_ratio <= 1:
        raise ConfigError("warmup_epochs and grad_clip must be >= 0, min_lr_ratio in [0, 1]")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", cfg.device):
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {cfg.device!r}")
    if cfg.augment:  # (unused otherwise; saved configs of older runs may hold anything there)
        cfg.augment_options = checked_augment_options(cfg.augment_options)
    return cfg


def checked_augment_options(options: dict) -> dict:
    """``augment_options`` with every key an :class:`~posefast.data.AugmentConfig` field and
    every value of that field's type and range (ConfigError otherwise)."""
    from posefast.data.augment import AugmentConfig

    hints = typing.get_type_hints(AugmentConfig)
    fields = [f.name for f in dataclasses.fields(AugmentConfig)]
    checked = {}
    for key, value in options.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            colon = " (write 'key: value', with a space after the colon)" if ":" in str(key) else ""
            raise ConfigError(f"augment_options: unknown key {key!r}{colon}{hint}; the keys are {', '.join(fields)}")
        checked[key] = coerce(f"augment_options.{key}", value, hints[key])
        high = 1.0 if key.endswith("_prob") or key == "scale" else math.inf
        if not 0 <= checked[key] <= high or (key == "scale" and checked[key] >= 1):
            bounds = "in [0, 1)" if key == "scale" else "in [0, 1]" if high == 1 else ">= 0"
            raise ConfigError(f"augment_options.{key} must be {bounds}, got {value!r}")
    return checked


def yaml_values(path: str) -> dict:
    """The config keys of a YAML file (a run's recorded findings left out), names checked."""
    return {check_key(key, path): value for key, value in read_yaml(path).items() if key not in RUN_RECORD_KEYS}


def load_config(argv: list[str] | None = None, **overrides) -> TrainConfig:
    """Defaults <- ``--config`` YAML <- command-line ``--key value`` <- ``overrides``.

    Resuming (``resume: true``) without ``--config`` starts from the run's own
    ``out_dir/config.yaml`` instead of the defaults: ``--out_dir RUN --resume`` continues RUN
    as it was configured (the training loop then checks that against ``last.pt``)."""
    config_path, cli = parse_overrides(list(argv or []))
    values = yaml_values(config_path) if config_path else {}
    values.update(cli)
    for key, value in overrides.items():
        values[check_key(key, "overrides")] = value
    if not config_path and coerce("resume", values.get("resume", False), bool):
        run_dir = str(values.get("out_dir", FIELDS["out_dir"].default))
        run_config = os.path.join(run_dir, "config.yaml")
        if os.path.isfile(run_config):  # (its out_dir may be relative to another cwd: this one is the run)
            values = {**yaml_values(run_config), "out_dir": run_dir, **values}
    checked = {name: coerce(name, value, HINTS[name]) for name, value in values.items()}
    return validate(TrainConfig(**checked))


# What a resumed run may change: how long it runs, where its files are, how it shows progress
# and what hardware runs it (the fused and unfused losses compute the same thing; the encoder's
# ImageNet weights are replaced by the checkpoint's). Every other key, init_from included (the
# run records where its weights came from), is part of what the checkpoint was trained with.
RESUME_MAY_CHANGE = frozenset({
    "epochs", "time_limit_min", "resume", "progress", "pictures_interval_s", "out_dir", "cache_dir",
    "data_dir", "train_json", "train_images", "val_json", "val_images", "synthetic_root", "skip_bad",
    "device", "amp", "cpu_amp", "channels_last", "cudnn_benchmark", "compile", "fused_loss", "pretrained"})


def resume_conflicts(cfg: TrainConfig, saved: dict) -> list[str]:
    """``"key: saved -> now"`` for each key outside :data:`RESUME_MAY_CHANGE` where ``cfg``
    differs from a checkpoint's saved config."""
    theirs, ours = to_dict(config_from_dict(saved)), to_dict(cfg)
    return [f"{key}: {theirs[key]!r} -> {ours[key]!r}" for key in ours
            if key not in RESUME_MAY_CHANGE and ours[key] != theirs[key]]


def config_from_dict(data: dict) -> TrainConfig:
    """A TrainConfig from a saved mapping (e.g. a checkpoint's), checked like a YAML file.

    Dataset paths saved beside a non-coco dataset are dropped: that run ignored them (older
    versions accepted them silently), and its checkpoint must still load."""
    data = {k: v for k, v in data.items() if k not in RUN_RECORD_KEYS}
    if data.get("dataset", FIELDS["dataset"].default) != "coco":
        data = {k: v for k, v in data.items() if k not in ("data_dir", *COCO_FILES)}
    return validate(TrainConfig(**{check_key(k, "saved config"): coerce(k, v, HINTS[k]) for k, v in data.items()}))


def resolve_path(path: str) -> str:
    """An existing path: absolute as is; relative to the cwd, else to the repo root."""
    if os.path.isabs(path):
        return path
    for base in (os.getcwd(), REPO_ROOT):
        candidate = os.path.normpath(os.path.join(base, path))
        if os.path.exists(candidate):
            return candidate
    return os.path.abspath(path)


COCO_FILES = {"train_json": "train.json", "train_images": "images", "val_json": "val.json", "val_images": "images"}


def coco_paths(cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> dict:
    """``{train_json, train_images, val_json, val_images}`` of a COCO keypoints dataset (only
    the keys of ``splits``), or ConfigError: each from its own config field when set, else from
    the ``data_dir`` layout (``train.json``, ``val.json``, ``images/``)."""
    data_dir = cfg.data_dir or os.environ.get("POSEFAST_COCO_DIR", "")
    keys = [key for key in COCO_FILES if key.split("_")[0] in splits]
    paths, defaulted = {}, []
    for key in keys:
        if getattr(cfg, key):
            paths[key] = resolve_path(getattr(cfg, key))
        elif data_dir:
            paths[key] = os.path.join(resolve_path(data_dir), COCO_FILES[key])
            defaulted.append(key)
        else:
            raise ConfigError(f"dataset coco needs data_dir (or POSEFAST_COCO_DIR), or {key} set explicitly")
    problems = []
    for key in keys:
        is_kind, kind = (os.path.isfile, "a file") if key.endswith("_json") else (os.path.isdir, "a folder")
        if not is_kind(paths[key]):
            problem = "not found" if not os.path.exists(paths[key]) else f"not {kind}"
            origin = f", from data_dir {data_dir!r}" if key in defaulted else ""
            problems.append(f"{key}={paths[key]} ({problem}{origin})")
    if problems:
        raise ConfigError(f"dataset coco: {'; '.join(problems)}")
    return paths


def check_output_dir(out_dir: str) -> str:
    """Create ``out_dir`` and prove it writable (ConfigError otherwise); its absolute path."""
    path = os.path.abspath(out_dir)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_probe_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise ConfigError(f"output folder {out_dir!r} is not writable: {exc}") from exc
    return path


def to_dict(cfg: TrainConfig) -> dict:
    """Plain YAML-safe mapping of a config (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
