"""GPU-throughput switches, checked on CPU: fused optimisers, channels-last batches and networks, torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from monai_ssl.engines import prepare_ssl_batch, speed_up_network
from monai_ssl.optimizers import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    # no conv bias before BatchNorm: its gradient is ~0 (rounding noise), which Adam would blow up to +-lr
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def _steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, n: int = 3) -> None:
    for _ in range(n):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_fused_update_equals_plain(name):
    x = torch.rand(4, 1, 8, 8)
    plain, fused = _net(), _net()
    opt_plain = build_optimizer(plain, name, lr=1e-2, weight_decay=0.1)
    opt_fused = build_optimizer(fused, name, lr=1e-2, weight_decay=0.1, fused=True)
    assert not opt_plain.defaults.get("fused") and opt_fused.defaults["fused"]
    start = [p.detach().clone() for p in plain.parameters()]
    _steps(plain, opt_plain, x)
    _steps(fused, opt_fused, x)
    # same updates up to float rounding (the fused kernel orders operations differently); a missing weight decay
    # (1e-3 of a weight per step here) or momentum term would exceed the tolerance
    for w0, a, b in zip(start, plain.parameters(), fused.parameters()):
        torch.testing.assert_close(b - w0, a - w0, rtol=1e-3, atol=1e-4)


def test_fused_defaults_off_on_cpu():
    assert not build_optimizer(_net(), "adamw").defaults.get("fused")


def test_channels_last_batch_and_network_match_contiguous():
    batch = {"image": torch.rand(2, 1, 8, 8), "label": torch.tensor([0, 1]), "vol": torch.rand(1, 1, 4, 4, 4),
             "id": ["a", "b"]}
    out = prepare_ssl_batch(batch, "cpu", memory_format=torch.channels_last)
    assert out["image"].is_contiguous(memory_format=torch.channels_last)
    assert out["vol"].is_contiguous(memory_format=torch.channels_last_3d)
    assert out["label"].shape == (2,) and out["id"] == ["a", "b"]
    net = _net().eval()
    fast = speed_up_network(copy.deepcopy(net), channels_last=True)
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(out["image"]), net(batch["image"]), rtol=1e-5, atol=1e-6)


def test_compile_wraps_and_shares_parameters():
    net = _net().eval()
    compiled = speed_up_network(net, compile=True, compile_backend="eager")  # dynamo trace, no code generation
    assert compiled is not net and compiled._orig_mod is net
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(compiled(x), net(x))
    from monai_ssl.handlers import unwrap_model

    assert unwrap_model(compiled) is net
