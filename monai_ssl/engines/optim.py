"""Optimisers and learning-rate schedules for SSL recipes: LARS, AdamW, warm-up + cosine."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["LARS", "build_optimizer", "param_groups_without_decay", "warmup_cosine_schedule"]


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) on top of SGD with momentum, as SimCLR uses.

    For each parameter with ``lars_adaptation`` on, the update is scaled by the trust ratio
    ``eta * ||w|| / (||g|| + weight_decay * ||w||)``. Parameter groups with ``lars_adaptation=False`` (biases and
    normalisation weights, see :func:`param_groups_without_decay`) take plain SGD steps.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 eta: float = 1e-3, lars_adaptation: bool = True) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars_adaptation=lars_adaptation)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                if group["lars_adaptation"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    grad = grad.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def param_groups_without_decay(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of >= 2 dims get ``weight_decay``; biases and norm weights get none and no LARS scaling."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0, "lars_adaptation": False},
    ]


def build_optimizer(model: nn.Module, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 1e-6,
                    momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999),
                    fused: bool | None = None) -> Optimizer:
    """``"lars"``, ``"adamw"`` or ``"sgd"`` over ``model``, with biases and norm weights excluded from decay.

    ``fused`` (AdamW/SGD): PyTorch's fused single-kernel update; ``None`` turns it on when every trainable
    parameter is on a CUDA device (build the optimizer after moving the model), off otherwise.
    """
    groups = param_groups_without_decay(model, weight_decay)
    name = name.lower()
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    for g in groups:
        g.pop("lars_adaptation", None)
    if fused is None:
        params = [p for g in groups for p in g["params"]]
        fused = bool(params) and all(p.is_cuda for p in params)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, fused=fused or None)
    raise ValueError(f"unknown optimizer '{name}'; use 'lars', 'adamw' or 'sgd'")


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
