"""Metrics (mirrors ``monai.metrics``): classification metrics with bootstrap CIs, and kNN classification of
features. Below ``handlers`` and ``evaluation``, which both use them."""

from __future__ import annotations

from .classification import (
    METRIC_NAMES,
    TASKS,
    DefinedClassesROCAUCMetric,
    auc_score,
    bootstrap_ci,
    classification_metrics,
    classification_report,
    per_class_auc,
    quadratic_kappa,
    roc_auc,
)
from .knn import extract_features, knn_predict

__all__ = ["METRIC_NAMES", "TASKS", "DefinedClassesROCAUCMetric", "auc_score", "bootstrap_ci", "classification_metrics",
           "classification_report", "extract_features", "knn_predict", "per_class_auc", "quadratic_kappa", "roc_auc"]
