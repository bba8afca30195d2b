"""Ignite handlers for SSL training: exact-resume checkpoints (locked folder, best-metric state, settings check),
NaN guard, kNN monitor, logging."""

from __future__ import annotations

from .checkpoint import LOCK_NAME, BestMetricState, ResumeConfigError, RNGState, RunLockError, SSLCheckpointHandler
from .checkpoint import checkpoint_files, latest_checkpoint, load_checkpoint
from .knn_monitor import KNNMonitor
from .logging import attach_default_handlers, loss_from_output
from .nan_guard import NaNGuard, NonFiniteLossError
from .pair_schedule import PairModeSchedule
from .reconstruction_images import ReconstructionImageHandler, reconstruction_grid

__all__ = [
    "LOCK_NAME",
    "BestMetricState",
    "KNNMonitor",
    "NaNGuard",
    "NonFiniteLossError",
    "PairModeSchedule",
    "RNGState",
    "ReconstructionImageHandler",
    "ResumeConfigError",
    "RunLockError",
    "SSLCheckpointHandler",
    "attach_default_handlers",
    "checkpoint_files",
    "latest_checkpoint",
    "load_checkpoint",
    "loss_from_output",
    "reconstruction_grid",
]
