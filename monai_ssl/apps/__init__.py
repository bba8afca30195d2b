"""Experiment orchestration over the library's components (as ``monai.apps`` sits over ``monai``): curricular
pretraining (order by hand, probe ranking or exhaustive search) and label-efficiency sweeps. Nothing in the other
subpackages imports ``apps``."""

from __future__ import annotations

from .curriculum import rank_by_probe, run_curriculum, search_order
from .label_efficiency import (
    failed_reason,
    plot_results,
    read_results,
    run_label_efficiency,
    seed_splits,
    select_recipe,
    summarise_results,
)

__all__ = ["failed_reason", "plot_results", "rank_by_probe", "read_results", "run_curriculum", "run_label_efficiency",
           "search_order", "seed_splits", "select_recipe", "summarise_results"]
