"""Inferers (as ``monai.inferers``)."""

from __future__ import annotations

from .slice_or_window import SliceOrWindowInferer

__all__ = ["SliceOrWindowInferer"]
