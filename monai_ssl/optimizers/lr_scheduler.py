"""Per-step learning-rate schedule: linear warm-up then half-cosine decay (Goyal et al. 2017; Loshchilov & Hutter 2017).

Why not ``monai.optimizers.WarmupCosineSchedule``: it gives different learning rates step for step (checked in
``tests/optimizers/test_lr_scheduler.py``), so switching would change every recipe's trajectory and every
result recorded with this schedule:

* its warm-up factor is ``step / warmup_steps``, so the first step runs at LR 0 and the full LR is reached one step
  later than here (``(step + 1) / warmup_steps``: ``1/W, 2/W, ..., 1``); its ``warmup_multiplier`` shifts the start
  but also the slope, so no setting reproduces this ramp;
* past ``t_total`` its cosine rises again (progress is not clamped), here the LR stays at the floor;
* its ``end_lr`` is an absolute floor applied after the decay, here ``min_factor`` scales the cosine between
  ``min_factor`` x base LR and the base LR.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine_schedule"]


def warmup_cosine_schedule(optimizer: Optimizer, warmup_steps: int, total_steps: int,
                           min_factor: float = 0.0) -> LambdaLR:
    """Per-step schedule: linear warm-up from ~0 to the base LR over ``warmup_steps``, then half-cosine to
    ``min_factor`` x base LR at ``total_steps``. Step it every iteration (e.g. MONAI's
    ``LrScheduleHandler(scheduler, epoch_level=False)``)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
