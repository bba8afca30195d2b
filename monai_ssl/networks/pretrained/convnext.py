"""Kinds that load into :class:`~monai_ssl.networks.nets.ConvNeXt` (Liu et al., "A ConvNet for the 2020s", 2022).

``convnext_mae``: the encoder of a :class:`~monai_ssl.networks.nets.ConvNeXtMAE` (masked-image pretraining of
ConvNeXt as in ConvNeXt V2's FCMAE, Woo et al. 2023), through that model's own export map
:func:`~monai_ssl.networks.nets.convnext_mae.convnext_mae_to_convnext`; the classifier ``head.*`` starts fresh.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..nets.convnext_mae import convnext_mae_to_convnext
from .registry import register_pretrained_kind

__all__ = ["convnext_mae_filter"]


@register_pretrained_kind("convnext_mae", scope=lambda k: not k.startswith("head."),
                          description="ConvNeXtMAE (encoder.*) -> monai_ssl ConvNeXt (head fresh)")
def convnext_mae_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``convnext_mae`` kind: :func:`convnext_mae_to_convnext` (``model`` unused, the names match)."""
    return convnext_mae_to_convnext(state_dict)
