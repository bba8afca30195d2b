"""Kinds that load into MONAI's ``ResNet`` (``monai.networks.nets.ResNet`` / ``resnet18`` ... ``resnet200``).

``contrastive_resnet``: the encoder of a :class:`~monai_ssl.networks.nets.ContrastiveModel` (SimCLR, Chen et al.
2020; MoCo, He et al. 2020; MICLe, Azizi et al. 2021), which *is* a MONAI ``ResNet`` built with
``feed_forward=False``, into a MONAI ``ResNet`` classifier whose ``fc`` starts fresh.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .registry import register_pretrained_kind

__all__ = ["contrastive_to_resnet"]


@register_pretrained_kind("contrastive_resnet", scope=lambda k: not k.startswith("fc."),
                          description="ContrastiveModel (encoder.*) or a bare ResNet encoder -> monai ResNet (fc fresh)")
def contrastive_to_resnet(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None, encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Map a :class:`~monai_ssl.networks.nets.ContrastiveModel` state dict onto a MONAI ``ResNet`` classifier.

    The contrastive encoder is a MONAI ``ResNet`` built with ``feed_forward=False``, so its keys (``conv1``,
    ``bn1``, ``layer1`` ... ``layer4``, BN running statistics included) equal the classifier's. The map keeps the
    ``encoder.*`` keys without the prefix and drops the projection head (``head.*``); the classifier's ``fc``
    is not in the result, so it keeps its fresh initialisation. A bare encoder state dict (no ``encoder.``
    keys, e.g. the ``stage<i>_<name>_encoder.pt`` files of the curricular runner) is used as is, minus any
    ``fc.*`` entry.

    Args:
        state_dict: source tensors.
        model: the target (unused: the names are MONAI's on both sides).
        encoder_prefix: prefix of the encoder keys in the source.

    Returns:
        ``{target key: tensor}``.

    Raises:
        ValueError: no encoder tensor in ``state_dict``.
    """
    if any(k.startswith(encoder_prefix) for k in state_dict):
        out = {k[len(encoder_prefix):]: v for k, v in state_dict.items() if k.startswith(encoder_prefix)}
    else:
        out = {k: v for k, v in state_dict.items() if not k.startswith(("head.", "fc."))}
    out = {k: v for k, v in out.items() if not k.startswith("fc.")}
    if not out:
        raise ValueError(f"state_dict holds no ResNet encoder keys ({encoder_prefix}*); keys: {list(state_dict)[:10]}.")
    return out
