"""Network building blocks."""

from __future__ import annotations

from .heads import ProjectionHead
from .pretext_heads import PRETEXT_HEADS, JigsawHead, RelativeLocationHead, RotationHead, build_pretext_head

__all__ = [
    "ProjectionHead",
    "PRETEXT_HEADS", "JigsawHead", "RelativeLocationHead", "RotationHead", "build_pretext_head",
]
