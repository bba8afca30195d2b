"""Downstream evaluation: kNN, linear probe, metrics."""

from __future__ import annotations

from .knn import extract_features, knn_predict

__all__ = ["extract_features", "knn_predict"]
