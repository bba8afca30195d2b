from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_ssl.engines import LARS, build_optimizer, param_groups_without_decay, warmup_cosine_schedule


def test_param_groups_exclude_bias_and_norm():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    decay, no_decay = param_groups_without_decay(model, 0.1)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0


def test_lars_trust_ratio_scales_update():
    w = nn.Parameter(torch.full((10,), 2.0))
    w.grad = torch.full((10,), 0.5)
    LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.01).step()
    # update = lr * eta * ||w|| / ||g|| * g = 0.01 * 4 * 0.5 = 0.02 per element
    torch.testing.assert_close(w.detach(), torch.full((10,), 1.98))


def test_lars_minimises_quadratic():
    w = nn.Parameter(torch.tensor([[3.0, -2.0]]))  # 2-D: LARS-adapted group
    opt = build_optimizer(nn.ParameterList([w]), "lars", lr=50.0)
    for _ in range(200):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert w.norm() < 0.5


def test_warmup_cosine_values():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine_schedule(opt, warmup_steps=4, total_steps=14)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.5) and lrs[-1] < 0.03


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer(nn.Linear(2, 2), "adam")
