"""Self-supervised losses."""

from __future__ import annotations

from .ntxent import NTXentLoss

__all__ = ["NTXentLoss"]
