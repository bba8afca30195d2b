"""Ignite handlers for SSL training: exact-resume checkpoints, NaN guard, kNN monitor, logging."""

from __future__ import annotations

from .checkpoint import RNGState, SSLCheckpointHandler, latest_checkpoint, load_checkpoint
from .knn_monitor import KNNMonitor
from .logging import attach_default_handlers, loss_from_output
from .nan_guard import NaNGuard, NonFiniteLossError
from .pair_schedule import PairModeSchedule
from .reconstruction_images import ReconstructionImageHandler, reconstruction_grid

__all__ = [
    "KNNMonitor",
    "NaNGuard",
    "NonFiniteLossError",
    "PairModeSchedule",
    "RNGState",
    "ReconstructionImageHandler",
    "SSLCheckpointHandler",
    "attach_default_handlers",
    "latest_checkpoint",
    "load_checkpoint",
    "loss_from_output",
    "reconstruction_grid",
]
