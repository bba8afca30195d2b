"""Experiment orchestration over the library's components (as ``monai.apps`` sits over ``monai``): curricular
pretraining (order by hand, probe ranking or exhaustive search), label-efficiency sweeps, and running a bundle
from Python (:func:`run_bundle`). Nothing in the other subpackages imports ``apps``."""

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
from .workflow import bundle_workflow, run_bundle

__all__ = ["bundle_workflow", "failed_reason", "plot_results", "rank_by_probe", "read_results", "run_bundle",
           "run_curriculum", "run_label_efficiency", "search_order", "seed_splits", "select_recipe",
           "summarise_results"]
