"""Stop training on a non-finite loss before the bad step reaches the weights or a checkpoint, and on diverged
weights before they reach a validation, ``model.pt`` or a checkpoint."""

from __future__ import annotations

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents

from ..networks.weights import MAX_ABS_WEIGHT, NonFiniteWeightsError, check_weights
from ..utils.dist import get_rank, get_world_size
from ..utils.enums import SSLKeys

__all__ = ["NaNGuard", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NaNGuard` when the loss (or a buffer the forward pass updated) is NaN or infinite."""


class NaNGuard:
    """Raise :class:`NonFiniteLossError` as soon as the loss is NaN/inf, with the network as it was before the
    iteration; raise :class:`~monai_ssl.networks.weights.NonFiniteWeightsError` at the end of an epoch whose
    weights diverged.

    It runs on ``IterationEvents.LOSS_COMPLETED``, i.e. after the forward pass and before backward and the
    optimizer step, so the weights (and every checkpoint written so far) stay those of the last good step. Unlike
    Ignite's ``TerminateOnNan`` (which fires after the step), no gradient of the bad iteration is applied. The
    forward pass has already updated the network's buffers, though, and a NaN input makes the BatchNorm running
    statistics NaN: the buffers are snapshotted at ``ITERATION_STARTED``, and when any floating buffer is
    non-finite after the forward pass all of them are restored before raising (finite updates are kept). A forward
    pass that leaves a buffer non-finite is stopped the same way even when the loss is finite.

    A far too high learning rate can blow the weights up to 1e28 while a bounded loss (NT-Xent on normalised
    embeddings) stays finite. At ``EPOCH_COMPLETED`` (attach the guard before validation and checkpoint
    handlers, as the bundles do) the network's floating tensors are checked against NaN/inf and ``max_abs_weight``
    (:data:`~monai_ssl.networks.weights.MAX_ABS_WEIGHT`), so such a run stops with an error naming the tensors
    instead of validating, saving ``model.pt`` and exiting 0.

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
        restore_buffers: snapshot the network's buffers before every forward pass and restore them when the forward
            pass left one non-finite (one copy of the buffers per iteration: BatchNorm statistics are small).
        max_abs_weight: bound of the end-of-epoch weight check (None: finiteness only; the check is skipped when
            ``check_weights_every_epoch`` is False).
        check_weights_every_epoch: run the end-of-epoch weight check.
    """

    def __init__(self, loss_key: str = SSLKeys.LOSS.value, sync_distributed: bool | None = None,
                 restore_buffers: bool = True, max_abs_weight: float | None = MAX_ABS_WEIGHT,
                 check_weights_every_epoch: bool = True) -> None:
        self.loss_key = loss_key
        self.sync_distributed = sync_distributed
        self.restore_buffers = restore_buffers
        self.max_abs_weight = max_abs_weight
        self.check_weights_every_epoch = check_weights_every_epoch
        self._snapshot: list[tuple[torch.Tensor, torch.Tensor]] = []

    def attach(self, engine: Engine) -> None:
        if self.restore_buffers:
            engine.add_event_handler(Events.ITERATION_STARTED, self._take_snapshot)
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)
        if self.check_weights_every_epoch:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.check_network)

    @staticmethod
    def _network(engine: Engine) -> torch.nn.Module | None:
        network = getattr(engine, "network", None)
        return network if isinstance(network, torch.nn.Module) else None

    def _take_snapshot(self, engine: Engine) -> None:
        network = self._network(engine)
        with torch.no_grad():
            self._snapshot = [(b, b.detach().clone()) for b in network.buffers()] if network is not None else []

    def _restore(self) -> None:
        with torch.no_grad():
            for buffer, saved in self._snapshot:
                buffer.copy_(saved)

    def _sync(self, engine: Engine, bad: bool, device: torch.device) -> tuple[bool, str]:
        """The verdict of all processes (any bad) and, under DDP, which ranks were bad."""
        sync = self.sync_distributed
        if sync is None:
            sync = isinstance(getattr(engine, "network", None), torch.nn.parallel.DistributedDataParallel)
        if not (sync and get_world_size() > 1):
            return bad, ""
        import torch.distributed as dist

        flags = torch.zeros(get_world_size(), device=device)
        flags[get_rank()] = float(bad)
        dist.all_reduce(flags)
        ranks = [r for r, f in enumerate(flags.tolist()) if f > 0]
        return bool(ranks), f" on rank(s) {ranks} of {get_world_size()}"

    def __call__(self, engine: Engine) -> None:
        loss = torch.as_tensor(engine.state.output[self.loss_key]).detach()
        bad_loss = not bool(torch.isfinite(loss).all())
        floating = [b for b, _ in self._snapshot if b.is_floating_point() and b.numel()]
        bad_buffers = bool(floating) and not bool(torch.stack([torch.isfinite(b).all() for b in floating]).all())
        bad, where = self._sync(engine, bad_loss or bad_buffers, loss.device)
        if bad:
            if bad_buffers:
                self._restore()
            what = "non-finite network buffers after the forward pass" if bad_buffers and not bad_loss else \
                "non-finite loss"
            raise NonFiniteLossError(
                f"{what}{where} (this rank: loss {float(loss.float().mean())}) at epoch {engine.state.epoch}, "
                f"iteration {engine.state.iteration}: training stopped before this step was applied; the weights "
                "and the last checkpoint are from the last good step and the network's buffers are finite "
                "(BatchNorm statistics restored if this forward pass broke them). Lower the learning rate, check the "
                "inputs for NaN, or enable gradient clipping"
            )

    def check_network(self, engine: Engine) -> None:
        """Raise :class:`~monai_ssl.networks.weights.NonFiniteWeightsError` when the network's weights diverged."""
        network = self._network(engine)
        if network is None:
            return
        error = None
        try:
            check_weights(network.state_dict(), f"training diverged by epoch {engine.state.epoch} "
                          f"(iteration {engine.state.iteration}); the network", max_abs=self.max_abs_weight)
        except NonFiniteWeightsError as err:
            error = err
        device = next(iter(network.parameters()), torch.zeros(())).device
        bad, where = self._sync(engine, error is not None, device)
        if error is not None:
            raise error
        if bad:
            raise NonFiniteWeightsError(f"training diverged{where} by epoch {engine.state.epoch}: stopped")
