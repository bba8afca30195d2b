"""Task heads for classification-style pretext tasks, each wrapping the shared backbone.

Sirotkin et al. 2021, arXiv:2112.12086; de Andrés Tamé et al. 2023, arXiv:2301.10687.

Every head holds the backbone as ``.encoder`` (so a curriculum can hand it from stage to stage and drop the
head) and returns logits; the loss (cross-entropy on the pretext label) lives outside the network. The
encoder may return pooled features ``(N, F)`` (e.g. ``monai.networks.nets.ResNet(..., feed_forward=False)``)
or feature maps ``(N, F, *spatial)``, which are global-average-pooled.

Inputs match :mod:`monai_ssl.transforms.pretext`: rotation ``(B, C, H, W)``, jigsaw ``(B, T, C, t, t)``,
relative location ``(B, 2, C, p, p)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["RotationHead", "JigsawHead", "RelativeLocationHead", "PRETEXT_HEADS", "build_pretext_head"]


def _pooled(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    feats = encoder(x)
    if isinstance(feats, (tuple, list)):
        feats = feats[0]
    return feats.flatten(2).mean(-1) if feats.ndim > 2 else feats


def _mlp(in_features: int, hidden_features: int | None, out_features: int, dropout: float) -> nn.Module:
    if not hidden_features:
        return nn.Linear(in_features, out_features)
    return nn.Sequential(
        nn.Linear(in_features, hidden_features),
        nn.BatchNorm1d(hidden_features),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden_features, out_features),
    )


def _check(x: torch.Tensor, ndim: int, name: str, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected input {layout}, got shape {tuple(x.shape)}.")


class RotationHead(nn.Module):
    """Rotation prediction: pooled backbone features -> linear layer -> 4 logits (k * 90 degrees).

    Args:
        encoder: backbone mapping ``(B, C, H, W)`` to ``(B, F)`` or ``(B, F, h, w)``.
        in_features: F.
        num_classes: number of rotation classes.
        hidden_features: optional hidden width (None: a single linear layer, the usual rotation-prediction head).
        dropout: dropout before the last layer when ``hidden_features`` is set.

    Forward: ``(B, C, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_features: int,
        num_classes: int = 4,
        hidden_features: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = _mlp(in_features, hidden_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, 4, type(self).__name__, "(B, C, H, W)")
        return self.classifier(_pooled(self.encoder, x))


class JigsawHead(nn.Module):
    """Jigsaw (Noroozi & Favaro): the shared backbone embeds each tile, the T embeddings are concatenated in slot
    order, and an MLP predicts which of the P permutations shuffled them.

    Args:
        encoder: backbone applied to every tile (tiles are folded into the batch: ``(B * T, C, t, t)``).
        in_features: F, the backbone's feature size.
        num_tiles: T (9 for a 3x3 puzzle).
        num_classes: P, the number of permutations.
        tile_features: optional shared linear reduction of each tile's features before concatenation (None: use
            the F features directly).
        hidden_features: hidden width of the MLP.
        dropout: dropout in the MLP.

    Forward: ``(B, T, C, t, t)`` -> logits ``(B, P)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_features: int,
        num_tiles: int = 9,
        num_classes: int = 100,
        tile_features: int | None = None,
        hidden_features: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_tiles = num_tiles
        self.tile_proj = nn.Linear(in_features, tile_features) if tile_features else nn.Identity()
        width = tile_features or in_features
        self.classifier = _mlp(num_tiles * width, hidden_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        _check(x, 5, name, "(B, T, C, t, t)")
        b, t = x.shape[:2]
        if t != self.num_tiles:
            raise ValueError(f"{name}: expected {self.num_tiles} tiles, got {t} (shape {tuple(x.shape)}).")
        feats = self.tile_proj(_pooled(self.encoder, x.flatten(0, 1)))  # (B * T, F')
        return self.classifier(feats.reshape(b, -1))


class RelativeLocationHead(nn.Module):
    """Relative patch location (Doersch et al.): embed the centre patch and the neighbour with the shared
    backbone, concatenate, and predict which of the 8 neighbours it was.

    Args:
        encoder: backbone applied to both patches (folded into the batch: ``(B * 2, C, p, p)``).
        in_features: F.
        num_classes: 8 neighbour positions.
        hidden_features: hidden width of the MLP.
        dropout: dropout in the MLP.

    Forward: ``(B, 2, C, p, p)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        in_features: int,
        num_classes: int = 8,
        hidden_features: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = _mlp(2 * in_features, hidden_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        _check(x, 5, name, "(B, 2, C, p, p)")
        if x.shape[1] != 2:
            raise ValueError(f"{name}: expected a (centre, neighbour) pair on dim 1, got shape {tuple(x.shape)}.")
        feats = _pooled(self.encoder, x.flatten(0, 1))
        return self.classifier(feats.reshape(x.shape[0], -1))


PRETEXT_HEADS: dict[str, type[nn.Module]] = {
    "rotation": RotationHead,
    "jigsaw": JigsawHead,
    "relative_location": RelativeLocationHead,
}


def build_pretext_head(task: str, encoder: nn.Module, in_features: int, **kwargs: Any) -> nn.Module:
    """Head for ``task`` (``"rotation"``, ``"jigsaw"``, ``"relative_location"``) around ``encoder``."""
    if task not in PRETEXT_HEADS:
        raise ValueError(f"unknown pretext task '{task}'; choose from {sorted(PRETEXT_HEADS)}.")
    return PRETEXT_HEADS[task](encoder, in_features, **kwargs)
