"""Ignite/MONAI engines for self-supervised pretraining."""

from __future__ import annotations

from .base import SSLTrainer, prepare_ssl_batch
from .contrastive import ContrastiveTrainer
from .device_views import DeviceViews
from .curriculum import CurriculumStage, PretextTrainer, rank_by_probe, run_curriculum, run_stage, search_order
from .masked_autoencoder import MaskedAutoencoderTrainer
from .optim import LARS, build_optimizer, param_groups_without_decay, warmup_cosine_schedule
from .speed import speed_up_network

__all__ = [
    "ContrastiveTrainer",
    "CurriculumStage",
    "DeviceViews",
    "PretextTrainer",
    "LARS",
    "MaskedAutoencoderTrainer",
    "SSLTrainer",
    "build_optimizer",
    "param_groups_without_decay",
    "prepare_ssl_batch",
    "rank_by_probe",
    "run_curriculum",
    "run_stage",
    "search_order",
    "speed_up_network",
    "warmup_cosine_schedule",
]
