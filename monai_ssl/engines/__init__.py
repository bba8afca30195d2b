"""Ignite/MONAI engines for self-supervised pretraining."""

from __future__ import annotations

from .base import SSLTrainer, prepare_ssl_batch
from .contrastive import ContrastiveTrainer
from .optim import LARS, build_optimizer, param_groups_without_decay, warmup_cosine_schedule

__all__ = [
    "ContrastiveTrainer",
    "LARS",
    "SSLTrainer",
    "build_optimizer",
    "param_groups_without_decay",
    "prepare_ssl_batch",
    "warmup_cosine_schedule",
]
