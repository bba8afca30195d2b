"""Ignite/MONAI engines for self-supervised pretraining."""

from __future__ import annotations

from .base import SSLTrainer, prepare_ssl_batch
from .contrastive import ContrastiveTrainer
from .curriculum import CurriculumStage, PretextTrainer, run_stage
from .device_views import DeviceViews
from .masked_autoencoder import MaskedAutoencoderTrainer
from .speed import speed_up_network

__all__ = [
    "ContrastiveTrainer",
    "CurriculumStage",
    "DeviceViews",
    "MaskedAutoencoderTrainer",
    "PretextTrainer",
    "SSLTrainer",
    "prepare_ssl_batch",
    "run_stage",
    "speed_up_network",
]
