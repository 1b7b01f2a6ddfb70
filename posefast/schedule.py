"""The learning-rate schedule (linear warm-up, then cosine) and the wall-clock budget that can
shorten it: with ``time_limit_min`` a run keeps as many of its configured epochs as fit in the
budget and ends its cosine on the last of them, instead of being cut off at a high rate."""
from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine:
    """``lr_factor`` as a LambdaLR callable. Its attributes are what LambdaLR's state_dict
    keeps, so a resumed run continues a shortened schedule where it left off."""

    def __init__(self, warmup_steps: int, total_steps: int, floor: float):
        self.warmup_steps, self.total_steps, self.floor = warmup_steps, total_steps, floor

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.warmup_steps, self.total_steps, self.floor)


class TimeBudget:
    """How many epochs fit in ``minutes`` of wall time, judged after each epoch from the
    duration of the latest one. The first judgement of a process keeps the plan while at least
    two more epochs of that length fit: the first epoch also builds caches and warms up
    kernels (on an H200, coco_best's first epoch took 6.5 s and the later ones about 2.4 s),
    so it would cut the plan, and the schedule with it, to a fraction of what fits. With room
    for only one more, that one becomes the last, so the run still ends decayed; with none,
    the first epoch is the last."""

    def __init__(self, minutes: float, start_s: float):
        if not minutes > 0:
            raise ValueError(f"time_limit_min: expected a positive number of minutes, got {minutes!r}")
        self.limit_s, self.start_s = 60.0 * minutes, start_s
        self.judged = 0

    def epochs_that_fit(self, epochs_done: int, planned: int, last_epoch_s: float, now_s: float) -> int:
        """``planned``, or fewer (never fewer than ``epochs_done``) when the rest would overrun."""
        self.judged += 1
        left_s = self.limit_s - (now_s - self.start_s)
        more = math.floor(left_s / last_epoch_s) if last_epoch_s > 0 else planned
        if self.judged == 1 and more >= 2:
            return planned  # judged again after the next epoch, from its time
        return max(epochs_done, min(planned, epochs_done + max(0, more)))
