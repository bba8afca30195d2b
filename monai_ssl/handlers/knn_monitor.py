"""kNN accuracy / balanced accuracy / AUC of the encoder on a labelled validation split, during pretraining."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch
from ignite.engine import Engine, Events

from ..metrics.knn import extract_features, knn_predict

__all__ = ["KNNMonitor"]

logger = logging.getLogger(__name__)


class KNNMonitor:
    """Every ``every`` epochs, embed a labelled train (memory bank) and validation loader with ``encoder`` and
    write cosine-kNN ``knn_accuracy``, ``knn_balanced_accuracy`` (mean recall over the classes present in the
    validation labels: on an imbalanced split, e.g. 80 % COVID-19, always answering the majority class scores
    0.8 accuracy but 0.5 balanced accuracy) and, for binary labels, ``knn_auc`` to ``engine.state.metrics``, so
    checkpoint/early-stopping handlers can select on them.

    Args:
        encoder: callable images -> features (e.g. ``model.encoder`` or ``model.forward_features``).
        train_loader: dict batches with ``image`` and ``label`` (the memory bank).
        val_loader: dict batches to classify.
        num_classes: number of classes.
        k, temperature: kNN settings (see :func:`~monai_ssl.metrics.knn_predict`).
        every: run every N epochs.
        prefix: metric name prefix.
    """

    def __init__(self, encoder: Callable, train_loader: Iterable, val_loader: Iterable, num_classes: int,
                 k: int = 20, temperature: float = 0.07, every: int = 1, prefix: str = "knn",
                 image_key: str = "image", label_key: str = "label") -> None:
        self.encoder = encoder
        self.train_loader, self.val_loader = train_loader, val_loader
        self.num_classes, self.k, self.temperature = num_classes, k, temperature
        self.every, self.prefix = every, prefix
        self.image_key, self.label_key = image_key, label_key
        self.history: list[dict[str, float]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.every), self)

    def compute(self, device: torch.device | str = "cpu") -> dict[str, float]:
        """Return the metrics now (also usable outside an engine)."""
        kw = {"device": device, "image_key": self.image_key, "label_key": self.label_key}
        bank, bank_labels = extract_features(self.encoder, self.train_loader, **kw)
        query, labels = extract_features(self.encoder, self.val_loader, **kw)
        probs = knn_predict(bank, bank_labels, query, self.num_classes, self.k, self.temperature)
        hits = (probs.argmax(1) == labels).float()
        recalls = [hits[labels == c].mean() for c in labels.unique()]
        metrics = {f"{self.prefix}_accuracy": float(hits.mean()),
                   f"{self.prefix}_balanced_accuracy": float(torch.stack(recalls).mean())}
        if self.num_classes == 2 and len(labels.unique()) == 2:
            from monai.metrics import compute_roc_auc

            metrics[f"{self.prefix}_auc"] = float(compute_roc_auc(probs[:, 1], labels))
        return metrics

    def __call__(self, engine: Engine) -> None:
        metrics = self.compute(getattr(engine.state, "device", "cpu"))
        engine.state.metrics.update(metrics)
        self.history.append({"epoch": engine.state.epoch, **metrics})
        logger.info("epoch %d: %s", engine.state.epoch, metrics)
