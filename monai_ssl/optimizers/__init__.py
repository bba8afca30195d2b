"""Optimisers and learning-rate schedules for SSL recipes (mirrors ``monai.optimizers``)."""

from __future__ import annotations

from .lars import LARS
from .lr_scheduler import warmup_cosine_schedule
from .utils import build_optimizer, param_groups_without_decay

__all__ = ["LARS", "build_optimizer", "param_groups_without_decay", "warmup_cosine_schedule"]
