"""Networks for self-supervised pretraining."""

from __future__ import annotations

from .contrastive import ContrastiveModel, pool_features

__all__ = ["ContrastiveModel", "pool_features"]
