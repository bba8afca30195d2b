"""Networks for self-supervised pretraining."""

from __future__ import annotations

from .contrastive import ContrastiveModel, pool_features
from .mae import MaskedAutoencoderViT, sincos_position_embedding

__all__ = ["ContrastiveModel", "MaskedAutoencoderViT", "pool_features", "sincos_position_embedding"]
