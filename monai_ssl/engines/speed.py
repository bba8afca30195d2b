"""Optional GPU-throughput switches for a network (channels-last memory format, ``torch.compile``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["speed_up_network"]


def speed_up_network(network: nn.Module, channels_last: bool = False, compile: bool | str = False,
                     compile_backend: str = "inductor") -> nn.Module:
    """Optional GPU-throughput switches for a network, both off by default.

    Args:
        network: the model (already on its device).
        channels_last: convert conv weights to ``torch.channels_last`` (4-D) / ``channels_last_3d`` (5-D) memory
            format; pair it with ``to_kwargs={"memory_format": torch.channels_last}`` on the trainer so batches
            arrive in the same format (pays off for convolutional nets under AMP on tensor-core GPUs).
        compile: ``True`` or a ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``):
            wrap the network in ``torch.compile``. The wrapper shares parameters with ``network``, so optimisers
            and checkpoints may use either; :func:`monai_ssl.handlers.unwrap_model` recovers the module.
        compile_backend: ``torch.compile`` backend (``"eager"`` traces without generating code: a cheap check).

    Returns:
        the network (converted in place) or its compiled wrapper.
    """
    if channels_last:
        dims = {p.ndim for p in network.parameters()}
        if 5 in dims:
            network = network.to(memory_format=torch.channels_last_3d)
        elif 4 in dims:
            network = network.to(memory_format=torch.channels_last)
    if compile:
        mode = None if compile is True else str(compile)
        network = torch.compile(network, mode=mode, backend=compile_backend)
    return network
