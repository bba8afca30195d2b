"""Ignite handlers for SSL training: exact-resume checkpoints (locked folder, best-metric state, settings check),
NaN guard, kNN monitor, logging, encoder export, evaluation reports (bootstrap CIs, Dice), prediction CSVs and a
weights check."""

from __future__ import annotations

from .checkpoint import (
    LOCK_NAME,
    BestMetricState,
    ResumeConfigError,
    RNGState,
    RunLockError,
    SSLCheckpointHandler,
    checkpoint_files,
    latest_checkpoint,
    load_checkpoint,
)
from .classification_report import ClassificationReportHandler
from .encoder_export import EncoderExportHandler, atomic_write, export_encoder, unwrap_model
from .knn_monitor import KNNMonitor
from .logging import attach_default_handlers, loss_from_output
from .model_contract import ModelContractWriter
from .nan_guard import NaNGuard, NonFiniteLossError
from .pair_schedule import PairModeSchedule
from .prediction_csv import PredictionCSVWriter
from .reconstruction_images import ReconstructionImageHandler, reconstruction_grid
from .segmentation_report import SegmentationReportHandler
from .weights_check import WeightsCheck

__all__ = [
    "LOCK_NAME",
    "BestMetricState",
    "ClassificationReportHandler",
    "EncoderExportHandler",
    "KNNMonitor",
    "ModelContractWriter",
    "NaNGuard",
    "NonFiniteLossError",
    "PairModeSchedule",
    "PredictionCSVWriter",
    "RNGState",
    "ReconstructionImageHandler",
    "ResumeConfigError",
    "RunLockError",
    "SSLCheckpointHandler",
    "SegmentationReportHandler",
    "WeightsCheck",
    "atomic_write",
    "attach_default_handlers",
    "checkpoint_files",
    "export_encoder",
    "latest_checkpoint",
    "load_checkpoint",
    "loss_from_output",
    "reconstruction_grid",
    "unwrap_model",
]
