"""The segmentation bundle's network: a MONAI SwinUNETR / UNETR chosen by a config key, optionally initialised
from a pretrained encoder (the ``mae_pretrain`` export) with the architecture checks of
:func:`monai_ssl.evaluation.segmentation.build_segmentation_model`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

__all__ = ["init_segmentation_network", "segmentation_network"]

logger = logging.getLogger(__name__)


def segmentation_network(arch: str, spatial_dims: int, in_channels: int, num_classes: int, roi_size: int | Sequence[int],
                  networks: Mapping[str, Mapping[str, Any]]) -> nn.Module:
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


def init_segmentation_network(network: nn.Module, pretrained_ckpt: str | os.PathLike | None, arch: str, spatial_dims: int,
                 in_channels: int, num_classes: int, roi_size: int | Sequence[int],
                 networks: Mapping[str, Mapping[str, Any]], min_loaded_fraction: float = 0.9) -> nn.Module:
    """Load a pretrained encoder into ``network`` (in place) and return it; ``""``/None keeps the random init.

    Accepts what ``bundles/mae_pretrain`` exports (``models/encoder.pt``: ``swinViT.*`` keys for Swin, MONAI ViT
    keys for ViT), a whole ``SwinMAE`` / ``MaskedAutoencoderViT`` state dict or training checkpoint, or a
    SwinUNETR / UNETR checkpoint; the key maps and the architecture checks are those of
    :func:`monai_ssl.evaluation.segmentation.build_segmentation_model`, whose load report is logged.

    Raises:
        FileNotFoundError: naming the config key ``pretrained_ckpt``.
        ValueError: a checkpoint of the other family or of different settings (``networks#<arch>#...``).
    """
    from ..utils.config import require_path
    from .segmentation import build_segmentation_model

    if not pretrained_ckpt:
        return network
    require_path(pretrained_ckpt, "pretrained_ckpt", "file")
    try:
        loaded, report = build_segmentation_model(str(arch).lower(), spatial_dims, in_channels, num_classes,
                                                  img_size=roi_size, pretrained=str(pretrained_ckpt),
                                                  min_loaded_fraction=min_loaded_fraction, **dict(networks[arch]))
    except ValueError as err:
        raise ValueError(f"config key 'pretrained_ckpt' ({pretrained_ckpt}) does not fit arch={arch}: {err}") from err
    network.load_state_dict(loaded.state_dict())
    logger.info("pretrained_ckpt %s: %s", pretrained_ckpt, report.summary(4))
    return network
