"""Stop training on a non-finite loss before the bad step reaches the weights or a checkpoint."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

from ..utils.dist import get_rank, get_world_size
from ..utils.enums import SSLKeys

__all__ = ["NaNGuard", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NaNGuard` when the loss is NaN or infinite."""


class NaNGuard:
    """Raise :class:`NonFiniteLossError` as soon as the loss is NaN/inf.

    It runs on ``IterationEvents.LOSS_COMPLETED``, i.e. after the forward pass and before backward and the
    optimizer step, so the weights (and every checkpoint written so far) stay those of the last good step. Unlike
    Ignite's ``TerminateOnNan`` (which fires after the step), nothing of the bad iteration is applied.

    Under ``torch.distributed`` (DDP) every process checks its own loss and the verdicts are all-reduced, so all
    processes stop at the same iteration: a process stopping alone would leave the others blocked for ever in the
    gradient all-reduce of ``backward``. The error names the ranks whose loss was non-finite.

    Args:
        loss_key: key of the loss in ``engine.state.output``.
        sync_distributed: share the verdict across processes (one all-reduce of ``world_size`` flags per iteration)
            when ``torch.distributed`` is initialised with more than one process. ``None`` (default): only when the
            engine's ``network`` is a ``DistributedDataParallel`` model, i.e. when every process runs this engine
            in lock-step (an engine that runs on one rank only, e.g. a rank-0 linear probe, must not wait for the
            others); True/False force it on/off (then the same on every rank).
    """

    def __init__(self, loss_key: str = SSLKeys.LOSS.value, sync_distributed: bool | None = None) -> None:
        self.loss_key = loss_key
        self.sync_distributed = sync_distributed

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        loss = torch.as_tensor(engine.state.output[self.loss_key]).detach()
        bad = not bool(torch.isfinite(loss).all())
        where = ""
        sync = self.sync_distributed
        if sync is None:
            sync = isinstance(getattr(engine, "network", None), torch.nn.parallel.DistributedDataParallel)
        if sync and get_world_size() > 1:
            import torch.distributed as dist

            flags = torch.zeros(get_world_size(), device=loss.device)
            flags[get_rank()] = float(bad)
            dist.all_reduce(flags)
            ranks = [r for r, f in enumerate(flags.tolist()) if f > 0]
            bad = bool(ranks)
            where = f" on rank(s) {ranks} of {get_world_size()}"
        if bad:
            raise NonFiniteLossError(
                f"non-finite loss{where} (this rank: {float(loss.float().mean())}) at epoch {engine.state.epoch}, "
                f"iteration {engine.state.iteration}: training stopped before this step was applied; the weights "
                "and the last checkpoint are from the last good step (lower the learning rate, check the inputs "
                "for NaN, or enable gradient clipping)"
            )
