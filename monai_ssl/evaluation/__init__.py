"""Downstream evaluation: kNN, linear probe, metrics."""

from __future__ import annotations

from .knn import extract_features, knn_predict
from .linear_probe import LinearProbe, fit_linear_probe, knn_evaluate, linear_probe_evaluate
from .metrics import bootstrap_ci, classification_metrics, classification_report

__all__ = ["extract_features", "knn_predict"]
__all__ += ["bootstrap_ci", "classification_metrics", "classification_report"]
__all__ += ["LinearProbe", "fit_linear_probe", "knn_evaluate", "linear_probe_evaluate"]
