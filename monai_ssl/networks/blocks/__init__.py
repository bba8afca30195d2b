"""Network building blocks."""

from __future__ import annotations

from .heads import ProjectionHead

__all__ = ["ProjectionHead"]
