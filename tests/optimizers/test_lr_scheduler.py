from __future__ import annotations

import pytest
import torch
from monai.optimizers import WarmupCosineSchedule
from torch import nn

from monai_ssl.optimizers import warmup_cosine_schedule


def _lrs(make_scheduler, steps: int) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_cosine_values():
    lrs = _lrs(lambda opt: warmup_cosine_schedule(opt, warmup_steps=4, total_steps=14), 14)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.5) and lrs[-1] < 0.03


def test_warmup_cosine_stays_at_floor_past_total():
    lrs = _lrs(lambda opt: warmup_cosine_schedule(opt, warmup_steps=4, total_steps=14, min_factor=0.1), 20)
    assert lrs[14:] == pytest.approx([0.1] * 6)


def test_monai_schedule_is_not_the_same_schedule():
    """Why ours is kept (module docstring): MONAI's schedule starts at LR 0 and rises again after t_total; the
    cosine part in between is the same. If MONAI ever matches step for step, switch to it."""
    ours = _lrs(lambda opt: warmup_cosine_schedule(opt, warmup_steps=4, total_steps=14), 16)
    for multiplier in (0.0, 0.25):
        theirs = _lrs(lambda opt, m=multiplier: WarmupCosineSchedule(opt, warmup_steps=4, t_total=14,
                                                                 warmup_multiplier=m), 16)
        assert theirs[4:14] == pytest.approx(ours[4:14])  # the decay agrees
        assert theirs[:4] != pytest.approx(ours[:4])  # the warm-up does not
        assert theirs[15] > ours[15]  # past t_total MONAI's cosine comes back up
