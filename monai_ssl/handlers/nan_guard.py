"""Stop training on a non-finite loss before the bad step reaches the weights or a checkpoint."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

from ..utils.enums import SSLKeys

__all__ = ["NaNGuard", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NaNGuard` when the loss is NaN or infinite."""


class NaNGuard:
    """Raise :class:`NonFiniteLossError` as soon as the loss is NaN/inf.

    It runs on ``IterationEvents.LOSS_COMPLETED``, i.e. after the forward pass and before backward and the
    optimizer step, so the weights (and every checkpoint written so far) stay those of the last good step. Unlike
    Ignite's ``TerminateOnNan`` (which fires after the step), nothing of the bad iteration is applied.

    Args:
        loss_key: key of the loss in ``engine.state.output``.
    """

    def __init__(self, loss_key: str = SSLKeys.LOSS.value) -> None:
        self.loss_key = loss_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        loss = engine.state.output[self.loss_key]
        if not bool(torch.isfinite(torch.as_tensor(loss)).all()):
            raise NonFiniteLossError(
                f"non-finite loss ({float(torch.as_tensor(loss).float().mean())}) at epoch {engine.state.epoch}, "
                f"iteration {engine.state.iteration}: training stopped before this step was applied; the weights "
                "and the last checkpoint are from the last good step (lower the learning rate, check the inputs "
                "for NaN, or enable gradient clipping)"
            )
