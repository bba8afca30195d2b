"""Optimiser construction for SSL recipes: parameter groups without decay on biases / norm weights, LARS, AdamW, SGD."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import Optimizer

from .lars import LARS

__all__ = ["build_optimizer", "param_groups_without_decay"]


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
