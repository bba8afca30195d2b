"""The segmentation bundle's network: a MONAI SwinUNETR / UNETR chosen by a config key, optionally initialised
from a pretrained encoder (the ``mae_pretrain`` export) through :func:`monai_ssl.networks.load_pretrained` (the
kinds and architecture checks :func:`monai_ssl.evaluation.segmentation.build_segmentation_model` uses)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["init_segmentation_network", "segmentation_network"]

logger = logging.getLogger(__name__)


def segmentation_network(arch: str, spatial_dims: int, in_channels: int, num_classes: int,
                         roi_size: int | Sequence[int], networks: Mapping[str, Mapping[str, Any]]) -> nn.Module:
    """Randomly initialised MONAI ``SwinUNETR`` or ``UNETR`` with the keyword arguments ``networks[arch]``.

    Raises:
        ValueError: an unknown ``arch`` (naming the config key) or a ``roi_size`` the network cannot take.
    """
    from ..utils.config import choose
    from .segmentation import SEGMENTATION_ARCHS, build_segmentation_model

    kwargs = dict(choose(networks, str(arch).lower(), "arch", choices=SEGMENTATION_ARCHS))
    model, _ = build_segmentation_model(str(arch).lower(), spatial_dims, in_channels, num_classes,
                                        img_size=roi_size, **kwargs)
    return model


def init_segmentation_network(network: nn.Module, pretrained_ckpt: str | os.PathLike | None, arch: str,
                              min_loaded_fraction: float = 0.9) -> nn.Module:
    """Load a pretrained encoder into ``network`` (in place) and return it; ``""``/None keeps the random init.

    Accepts what ``bundles/mae_pretrain`` exports (``models/encoder.pt``: ``swinViT.*`` keys for Swin, MONAI ViT
    keys for ViT), a whole ``SwinMAE`` / ``MaskedAutoencoderViT`` state dict or training checkpoint, or a
    SwinUNETR / UNETR checkpoint, through :func:`monai_ssl.networks.load_pretrained` with the kind of ``arch``
    (:data:`~monai_ssl.evaluation.segmentation.SEGMENTATION_KINDS`), whose filter checks the architecture against
    ``network`` (each differing setting named); the load report is logged.

    Raises:
        FileNotFoundError: naming the config key ``pretrained_ckpt``.
        ValueError: a checkpoint of the other family or of different settings (``networks#<arch>#...``).
    """
    from ..networks.pretrained import load_pretrained
    from ..utils.config import choose, require_path
    from .segmentation import SEGMENTATION_KINDS

    if not pretrained_ckpt:
        return network
    kind = choose(SEGMENTATION_KINDS, str(arch).lower(), "arch")
    require_path(pretrained_ckpt, "pretrained_ckpt", "file")
    try:
        report = load_pretrained(network, str(pretrained_ckpt), kind, min_loaded_fraction=min_loaded_fraction,
                                 verbose=False)
    except ValueError as err:
        raise ValueError(f"config key 'pretrained_ckpt' ({pretrained_ckpt}) does not fit arch={arch}: {err}") from err
    logger.info("pretrained_ckpt %s: %s", pretrained_ckpt, report.summary(4))
    return network
