"""Inferers (as ``monai.inferers``)."""

from __future__ import annotations

from .skip_failed import SkipFailedInferer
from .slice_or_window import SliceOrWindowInferer

__all__ = ["SkipFailedInferer", "SliceOrWindowInferer"]
