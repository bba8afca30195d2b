"""Refuse to evaluate or predict with diverged weights (NaN/inf, or absurdly large values)."""

from __future__ import annotations

from collections.abc import Sequence

from ignite.engine import Engine, Events
from torch import nn

__all__ = ["WeightsCheck"]


class WeightsCheck:
    """At ``Events.STARTED`` run :func:`monai_ssl.networks.check_weights` on each network's state dict.

    Attach it after MONAI's ``CheckpointLoader`` (handlers run in attach order), so a ``model.pt`` with inf
    buffers stops the run with :class:`monai_ssl.networks.NonFiniteWeightsError` naming the tensors, instead of
    writing ``nan`` predictions.

    Args:
        networks: one network or several (an ensemble's members).
        names: what each network is called in the error (e.g. the checkpoint files).
    """

    def __init__(self, networks: nn.Module | Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        self.networks = [networks] if isinstance(networks, nn.Module) else list(networks)
        self.names = [str(n) for n in names] if names is not None else [f"network {i}" for i in
                                                                         range(len(self.networks))]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        from ..networks import check_weights

        for net, name in zip(self.networks, self.names):
            check_weights(net.state_dict(), name)
