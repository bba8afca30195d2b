"""Ignite/MONAI engines for self-supervised pretraining."""

from __future__ import annotations

from .base import SSLTrainer, prepare_ssl_batch
from .contrastive import ContrastiveTrainer
from .curriculum import CurriculumStage, PretextTrainer, rank_by_probe, run_curriculum, run_stage, search_order
from .masked_autoencoder import MaskedAutoencoderTrainer
from .speed import speed_up_network

__all__ = [
    "ContrastiveTrainer",
    "CurriculumStage",
    "PretextTrainer",
    "MaskedAutoencoderTrainer",
    "SSLTrainer",
    "prepare_ssl_batch",
    "rank_by_probe",
    "run_curriculum",
    "run_stage",
    "search_order",
    "speed_up_network",
]
