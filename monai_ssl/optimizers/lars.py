"""Layer-wise adaptive rate scaling (You et al. 2017, "Large Batch Training of Convolutional Networks")."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer

__all__ = ["LARS"]


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
