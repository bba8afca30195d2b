"""Self-supervised losses."""

from __future__ import annotations

from .masked_reconstruction import MaskedReconstructionLoss
from .ntxent import NTXentLoss

__all__ = ["MaskedReconstructionLoss", "NTXentLoss"]
