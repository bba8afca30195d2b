"""Linear probe (logistic regression on frozen, standardised features) and kNN evaluation of an encoder.

The probe is fitted full-batch with ``torch.optim.LBFGS`` in double precision: binary logistic regression
(one logit, sigmoid), softmax regression (multi-class) or one sigmoid per label (multi-label), with an L2
penalty ``l2 / 2 * ||W||^2`` on the weights (not the bias) added to the mean (optionally class-balanced)
log-loss. With validation data the L2 strength is chosen from a grid by validation AUC.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.classification import TASKS, classification_metrics, classification_report
from ..metrics.knn import extract_features, knn_predict

__all__ = ["DEFAULT_L2_GRID", "LinearProbe", "fit_linear_probe", "knn_evaluate", "linear_probe_evaluate"]

logger = logging.getLogger(__name__)

DEFAULT_L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class LinearProbe(nn.Module):
    """A fitted linear classifier on standardised features; ``forward`` returns logits.

    Args:
        mean: ``(D,)`` feature means of the training set.
        scale: ``(D,)`` feature standard deviations (1 where a feature is constant).
        num_outputs: 1 (binary) or C (multi-class / multi-label).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.

    Attributes (set by :func:`fit_linear_probe`): ``l2`` (chosen L2 strength), ``val_score`` (validation AUC of
    that choice, ``None`` without validation data) and ``scores`` (``{l2: validation AUC}`` over the grid).
    """

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, num_outputs: int, task: str) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        self.task = task
        self.register_buffer("mean", mean.double())
        self.register_buffer("scale", scale.double())
        self.linear = nn.Linear(mean.numel(), num_outputs, dtype=torch.float64)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.l2: float | None = None
        self.val_score: float | None = None
        self.scores: dict[float, float] = {}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (N, num_outputs) logits (float64)."""
        if features.ndim != 2 or features.shape[1] != self.mean.numel():
            raise ValueError(f"features must be (N, {self.mean.numel()}), got {tuple(features.shape)}.")
        x = (features.to(self.mean) - self.mean) / self.scale
        return self.linear(x)

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, D) features -> probabilities: ``(N,)`` positive-class (binary) or ``(N, C)``."""
        logits = self(torch.as_tensor(features))
        if self.task == "binary":
            return torch.sigmoid(logits[:, 0])
        if self.task == "multiclass":
            return torch.softmax(logits, dim=1)
        return torch.sigmoid(logits)


def _prepare_labels(labels, task: str, num_classes: int | None) -> tuple[torch.Tensor, int]:
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if task == "multilabel":
        if y.ndim != 2:
            raise ValueError(f"multilabel labels must be (N, C) multi-hot, got {tuple(y.shape)}.")
        if not torch.isin(y, torch.tensor([0, 1], dtype=y.dtype)).all():
            raise ValueError("multilabel labels must be multi-hot 0/1.")
        return y.double(), y.shape[1]
    y = y.reshape(-1).long()
    if y.min() < 0:
        raise ValueError(f"labels must be >= 0 (drop unlabelled -1 items first), got min {int(y.min())}.")
    if task == "binary":
        if y.max() > 1:
            raise ValueError(f"binary labels must be 0 or 1, got max {int(y.max())}.")
        return y, 1
    n = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if y.max() >= n:
        raise ValueError(f"labels must be < num_classes={n}, got max {int(y.max())}.")
    return y, n


def _class_weights(y: torch.Tensor, task: str, num_outputs: int) -> torch.Tensor:
    """Per-sample weights n / (K * count[class]) (binary/multi-class) or per-label positive weights."""
    if task == "multilabel":
        pos = y.sum(0).clamp(min=1.0)
        return ((y.shape[0] - pos) / pos).clamp(min=1e-3)
    k = 2 if task == "binary" else num_outputs
    counts = torch.bincount(y, minlength=k).double()
    per_class = y.numel() / (counts.clamp(min=1.0) * (counts > 0).sum())
    return per_class[y]


def _loss(probe: LinearProbe, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None, l2: float):
    logits = probe.linear(x)
    if probe.task == "binary":
        per = F.binary_cross_entropy_with_logits(logits[:, 0], y.double(), reduction="none")
        data = (per * weights).sum() / weights.sum() if weights is not None else per.mean()
    elif probe.task == "multiclass":
        per = F.cross_entropy(logits, y, reduction="none")
        data = (per * weights).sum() / weights.sum() if weights is not None else per.mean()
    else:
        data = F.binary_cross_entropy_with_logits(logits, y, pos_weight=weights, reduction="mean")
    return data + 0.5 * l2 * probe.linear.weight.pow(2).sum()


def _fit_one(probe: LinearProbe, x: torch.Tensor, y: torch.Tensor, weights, l2: float, max_iter: int) -> None:
    opt = torch.optim.LBFGS(probe.linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _loss(probe, x, y, weights, l2)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)


def fit_linear_probe(
    train_feats: torch.Tensor | np.ndarray,
    train_labels,
    val_feats: torch.Tensor | np.ndarray | None = None,
    val_labels=None,
    task: str = "binary",
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    default_l2: float = 1e-3,
    class_balanced: bool = False,
    num_classes: int | None = None,
    max_iter: int = 200,
) -> LinearProbe:
    """Fit a logistic-regression probe on frozen features.

    Args:
        train_feats: ``(N, D)`` training features (standardised with their own mean/std inside the probe).
        train_labels: ``(N,)`` class indices (binary / multi-class) or ``(N, C)`` multi-hot (multi-label).
        val_feats: optional ``(M, D)`` validation features; with ``val_labels`` the L2 strength is chosen from
            ``l2_grid`` by validation AUC (ties go to the stronger penalty) and the probe of that strength is
            returned.
        val_labels: ``(M,)`` or ``(M, C)`` validation labels.
        task: ``"binary"`` (one logit), ``"multiclass"`` (softmax) or ``"multilabel"`` (one sigmoid per label).
        l2_grid: candidate L2 strengths (searched with validation data).
        default_l2: the L2 strength used without validation data (nothing to choose on).
        class_balanced: weight samples by ``N / (K * count[class])`` (multi-label: positive weight
            ``negatives / positives`` per label).
        num_classes: number of classes for multi-class (default: ``max(label) + 1``).
        max_iter: L-BFGS iterations per fit.

    Returns:
        the fitted :class:`LinearProbe` (``.l2``, ``.val_score``, ``.scores`` set).

    Raises:
        ValueError: bad task, shapes or labels.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    x = torch.as_tensor(train_feats).double()
    if x.ndim != 2:
        raise ValueError(f"train_feats must be (N, D), got {tuple(x.shape)}.")
    y, num_outputs = _prepare_labels(train_labels, task, num_classes)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} train features but {y.shape[0]} train labels.")
    has_val = val_feats is not None and val_labels is not None
    if (val_feats is None) != (val_labels is None):
        raise ValueError("pass both val_feats and val_labels, or neither.")
    mean = x.mean(0)
    scale = x.std(0, unbiased=False)
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
    probe = LinearProbe(mean, scale, num_outputs, task)
    xs = (x - mean) / scale
    weights = _class_weights(y, task, num_outputs) if class_balanced else None
    if not has_val:
        _fit_one(probe, xs, y, weights, default_l2, max_iter)
        probe.l2 = float(default_l2)
        return probe
    if not len(l2_grid):
        raise ValueError("l2_grid is empty.")
    yv, _ = _prepare_labels(val_labels, task, num_outputs if task == "multiclass" else None)
    yv_np = yv.cpu().numpy().astype(np.int64)
    best_state, best_score = None, -math.inf
    # strongest penalty first: warm starts move from the simple solution outwards, ties keep the simpler model
    for l2 in sorted((float(v) for v in l2_grid), reverse=True):
        _fit_one(probe, xs, y, weights, l2, max_iter)
        probs = probe.predict_proba(torch.as_tensor(val_feats)).numpy()
        score = classification_metrics(probs, yv_np, task)["auc"]
        score = -math.inf if math.isnan(score) else score
        probe.scores[l2] = score
        if score > best_score:
            best_score = score
            best_state = (l2, {k: v.clone() for k, v in probe.linear.state_dict().items()})
    if best_state is None:
        raise ValueError("validation AUC is undefined for every l2 (validation labels hold a single class).")
    probe.l2, state = best_state
    probe.linear.load_state_dict(state)
    probe.val_score = best_score
    logger.info("linear probe: l2=%g chosen, val AUC %.4f (grid %s)", probe.l2, best_score, probe.scores)
    return probe


def _as_loader(data, batch_size: int):
    """A list of item dicts becomes a MONAI DataLoader; anything else is used as a loader of dict batches."""
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], dict):
        from monai.data import DataLoader

        return DataLoader(data, batch_size=batch_size, shuffle=False)
    return data


def _features(encoder, data, device, image_key, label_key, batch_size, task):
    feats, labels = extract_features(encoder, _as_loader(data, batch_size), device, image_key, label_key)
    if task == "multilabel":  # extract_features flattens labels: restore (N, C)
        labels = labels.reshape(feats.shape[0], -1)
    return feats, labels


def linear_probe_evaluate(
    encoder: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    train: Iterable,
    val: Iterable | None,
    test: Iterable,
    task: str = "binary",
    device: torch.device | str = "cpu",
    image_key: str = "image",
    label_key: str = "label",
    batch_size: int = 64,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    class_balanced: bool = False,
    n_boot: int = 0,
    seed: int = 0,
) -> dict:
    """Extract frozen features of ``encoder`` on train/val/test, fit a probe, return test metrics.

    Args:
        encoder: maps ``(B, C, *spatial)`` images to ``(B, F)`` features or ``(B, F, *spatial)`` maps (pooled).
        train, val, test: loaders of dict batches or lists of item dicts (``image_key``/``label_key``);
            ``val`` may be ``None`` (then ``l2_grid`` is not searched, see :func:`fit_linear_probe`).
        task, l2_grid, class_balanced: see :func:`fit_linear_probe`.
        device: where the encoder runs.
        batch_size: batch size when item lists are given.
        n_boot: when > 0, the test metrics come with bootstrap CIs (:func:`classification_report`).
        seed: bootstrap seed.

    Returns:
        ``{"metrics": {name: float} or report, "probe": LinearProbe, "l2": float, "val_auc": float | None,
        "test_probs": tensor}``.
    """
    xtr, ytr = _features(encoder, train, device, image_key, label_key, batch_size, task)
    xva = yva = None
    if val is not None:
        xva, yva = _features(encoder, val, device, image_key, label_key, batch_size, task)
    xte, yte = _features(encoder, test, device, image_key, label_key, batch_size, task)
    probe = fit_linear_probe(xtr, ytr, xva, yva, task=task, l2_grid=l2_grid, class_balanced=class_balanced)
    probs = probe.predict_proba(xte)
    if n_boot > 0:
        metrics = classification_report(probs, yte, task, n_boot=n_boot, seed=seed)
    else:
        metrics = classification_metrics(probs, yte, task)
    return {"metrics": metrics, "probe": probe, "l2": probe.l2, "val_auc": probe.val_score, "test_probs": probs}


def knn_evaluate(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    task: str = "binary",
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Cosine kNN (``exp(sim / T)``-weighted votes, :func:`knn_predict`) on frozen features -> metrics dict.

    Args:
        train_feats: ``(N, D)`` memory bank; train_labels: ``(N,)`` class indices.
        test_feats: ``(M, D)``; test_labels: ``(M,)``.
        task: ``"binary"`` or ``"multiclass"`` (kNN votes need single-label targets).
        k: neighbours; temperature: vote temperature.
        num_classes: default ``max(train, test labels) + 1`` (at least 2).

    Returns:
        :func:`classification_metrics` of the kNN class probabilities on the test set.
    """
    if task not in ("binary", "multiclass"):
        raise ValueError(f"knn_evaluate supports task 'binary' or 'multiclass', got {task!r}.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    ytr = torch.as_tensor(train_labels).reshape(-1).long()
    yte = torch.as_tensor(test_labels).reshape(-1).long()
    if num_classes is None:
        num_classes = max(2, int(max(ytr.max(), yte.max())) + 1)
    probs = knn_predict(torch.as_tensor(train_feats), ytr, torch.as_tensor(test_feats), num_classes, k, temperature)
    return classification_metrics(probs.double().numpy(), yte.numpy(), task)
