"""Continuing a run: its ``last.pt`` checked against the command, whether anything is left to
do, and its ``metrics.jsonl`` trimmed to the epochs the checkpoint holds."""
from __future__ import annotations

import json
import os

from posefast.checkpoint import read_checkpoint
from posefast.config import ConfigError, TrainConfig, resume_conflicts


def trim_metrics_log(path: str, epochs_done: int) -> None:
    """Keep the log's lines of the epochs ``last.pt`` holds: none for a fresh run; on resume,
    none past the checkpoint (a run stopped between logging an epoch and its checkpoint
    landing would otherwise log that epoch twice)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line).get("epoch", 0) <= epochs_done]
    with open(path, "w") as f:
        f.writelines(kept)


def resume_checkpoint(cfg: TrainConfig, last_path: str, world_size: int) -> dict:
    """The run's ``last.pt``, read onto the CPU, or ConfigError where it is missing or was
    trained with a configuration ``cfg`` changes (see ``config.RESUME_MAY_CHANGE``) or by
    another number of processes (the steps per epoch, and so the schedule, would change).

    On the CPU: load_state_dict moves the weights and moments to the parameters' device, while
    Adam's ``step`` counters stay on the CPU as the optimizer keeps them (loaded onto the GPU
    they stay there, and every step then reads each with ``.item()``)."""
    if not os.path.isfile(last_path):
        raise ConfigError(f"resume: no checkpoint at {last_path}")
    ckpt = read_checkpoint(last_path, map_location="cpu")
    conflicts = resume_conflicts(cfg, ckpt["config"])
    if conflicts:
        run_dir = os.path.dirname(last_path)
        if os.path.isfile(os.path.join(run_dir, "config.yaml")):
            how = f"--out_dir {run_dir} --resume, changing only epochs, time or hardware keys"
        else:  # load_config had no run config.yaml to start from: the defaults filled the rest
            how = (f"{run_dir}/config.yaml is missing, so this command started from the defaults: give the run's "
                   "settings with --config FILE or --key value")
        raise ConfigError(f"resume: {last_path} was trained with another configuration ({'; '.join(conflicts)}). "
                          f"Resume it as it was ({how}), or train the new configuration into a new out_dir")
    trained_by = (ckpt.get("metrics") or {}).get("world_size", world_size)
    if trained_by != world_size:
        raise ConfigError(f"resume: {last_path} was trained by {trained_by} process(es), this run has {world_size}: "
                          "resume it with the same torchrun --nproc_per_node")
    return ckpt


def run_is_finished(ckpt: dict, cfg: TrainConfig) -> bool:
    """Whether ``last.pt`` ends its run's plan: all of ``cfg.epochs``, or the epochs its time
    budget kept (its schedule then ended there, decayed) unless ``--epochs`` was raised since."""
    configured = ckpt["config"]["epochs"]
    planned = (ckpt.get("metrics") or {}).get("epochs", configured)
    return ckpt["epoch"] >= cfg.epochs or (ckpt["epoch"] >= planned and cfg.epochs <= configured)
