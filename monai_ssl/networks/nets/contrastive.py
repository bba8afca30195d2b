"""Encoder + projection head for SimCLR / MICLe."""

from __future__ import annotations

import torch
from torch import nn

from ...utils.enums import SSLKeys
from ..blocks.heads import ProjectionHead

__all__ = ["ContrastiveModel", "pool_features"]


def pool_features(features: torch.Tensor) -> torch.Tensor:
    """Global-average-pool (B, C, *spatial) encoder outputs to (B, C); (B, C) passes through."""
    if features.ndim > 2:
        return features.flatten(2).mean(-1)
    return features


class ContrastiveModel(nn.Module):
    """``h = f(x)`` (pooled encoder features) and ``z = g(h)`` (projection) for contrastive pretraining.

    Any encoder works: one returning (B, C) features, such as ``monai.networks.nets.ResNet`` built with
    ``feed_forward=False``, or one returning feature maps (B, C, *spatial), which are average-pooled. After
    pretraining, ``model.encoder`` is what downstream tasks reuse; the head is dropped.

    Args:
        encoder: the backbone ``f``.
        head: the projection ``g``; defaults to a 2-layer 2048-wide MLP to 128 dims (``head_in_features`` needed).
        head_in_features: encoder feature size, used to build the default head.

    Forward: x (B, C, *spatial) -> ``{"features": (B, F), "projection": (B, D)}``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None, head_in_features: int | None = None):
        super().__init__()
        if head is None:
            if head_in_features is None:
                raise ValueError("pass a projection head, or head_in_features to build the default one")
            head = ProjectionHead(head_in_features)
        self.encoder = encoder
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features ``h`` (B, F)."""
        return pool_features(self.encoder(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.forward_features(x)
        return {SSLKeys.FEATURES.value: h, SSLKeys.PROJECTION.value: self.head(h)}
