"""Downstream evaluation: kNN, linear probe, metrics."""

from __future__ import annotations

from ..metrics.classification import (bootstrap_ci, classification_metrics, classification_report, per_class_auc,
                                      quadratic_kappa)
from ..metrics.knn import extract_features, knn_predict
from .ensemble import ensemble_evaluate, ensemble_probabilities, logits_to_probabilities
from .finetune import balanced_class_weights, compute_auc, finetune_classifier, layerwise_lr_decay_groups, predict_proba
from .linear_probe import LinearProbe, fit_linear_probe, knn_evaluate, linear_probe_evaluate
from .saliency import cam_fraction_in_roi, gradcam_maps, gradcam_overlays, save_overlay, vit_attention_map
from .segmentation import (
    build_segmentation_evaluator,
    build_segmentation_model,
    build_segmentation_trainer,
    mean_dice_per_class,
    segmentation_loss,
)
from .segmentation_network import init_segmentation_network, segmentation_network

__all__ = ["extract_features", "knn_predict"]
__all__ += ["bootstrap_ci", "classification_metrics", "classification_report", "per_class_auc", "quadratic_kappa"]
__all__ += ["LinearProbe", "fit_linear_probe", "knn_evaluate", "linear_probe_evaluate"]
__all__ += ["ensemble_evaluate", "ensemble_probabilities", "logits_to_probabilities"]
__all__ += ["cam_fraction_in_roi", "gradcam_maps", "gradcam_overlays", "save_overlay", "vit_attention_map"]

__all__ += ["balanced_class_weights", "compute_auc", "finetune_classifier", "layerwise_lr_decay_groups",
            "predict_proba"]
__all__ += ["build_segmentation_evaluator", "build_segmentation_model", "build_segmentation_trainer"]
__all__ += ["mean_dice_per_class", "segmentation_loss"]
__all__ += ["init_segmentation_network", "segmentation_network"]
