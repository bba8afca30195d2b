from __future__ import annotations

import torch
from torch import nn

from monai_ssl.optimizers import LARS, build_optimizer


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
