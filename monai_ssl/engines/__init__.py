"""Ignite/MONAI engines for self-supervised pretraining."""

from __future__ import annotations

from .base import SSLTrainer, prepare_ssl_batch
from .contrastive import ContrastiveTrainer
from .masked_autoencoder import MaskedAutoencoderTrainer
from .optim import LARS, build_optimizer, param_groups_without_decay, warmup_cosine_schedule

__all__ = [
    "ContrastiveTrainer",
    "LARS",
    "MaskedAutoencoderTrainer",
    "SSLTrainer",
    "build_optimizer",
    "param_groups_without_decay",
    "prepare_ssl_batch",
    "warmup_cosine_schedule",
]
