from __future__ import annotations

import pytest
from torch import nn

from monai_ssl.optimizers import build_optimizer, param_groups_without_decay


def test_param_groups_exclude_bias_and_norm():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    decay, no_decay = param_groups_without_decay(model, 0.1)
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer(nn.Linear(2, 2), "adam")
