"""Probability-averaging ensembles of classifiers, on MONAI's ``EnsembleEvaluator``: the two-branch ensemble of
Florindo & Moura (arXiv:2605.21970), generalised to K members.

``p_ens(c | x) = sum_k w_k softmax(logits_k(x))_c`` with equal weights ``w_k = 1/K`` by default: members'
logits are turned into probabilities first (softmax; sigmoid for a one-logit binary or a multi-label model)
and the probabilities are averaged, never the logits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..metrics.classification import TASKS, classification_metrics

__all__ = ["ensemble_evaluate", "ensemble_probabilities", "logits_to_probabilities"]


def logits_to_probabilities(logits: torch.Tensor, task: str = "multiclass") -> torch.Tensor:
    """Class probabilities from a classifier's logits.

    Args:
        logits: ``(N, C)`` logits, or ``(N,)`` / ``(N, 1)`` for a one-logit binary classifier.
        task: ``"multiclass"`` / ``"binary"`` (softmax over ``C >= 2`` logits, sigmoid for one logit) or
            ``"multilabel"`` (sigmoid per label).

    Returns:
        ``(N,)`` positive-class probabilities for one logit, else ``(N, C)``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    logits = logits.float()
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        return torch.sigmoid(logits.reshape(-1))
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N,), (N, 1) or (N, C), got {tuple(logits.shape)}.")
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def _check_weights(weights: Sequence[float] | None, k: int) -> np.ndarray:
    if weights is None:
        return np.full(k, 1.0 / k)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != k:
        raise ValueError(f"got {w.shape[0]} weights for {k} ensemble members.")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"ensemble weights must be finite and non-negative, got {w.tolist()}.")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"ensemble weights must sum to 1, got sum {w.sum():.6g} ({w.tolist()}).")
    return w


def ensemble_probabilities(
    prob_list: Sequence[torch.Tensor | np.ndarray], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Weighted average of the members' class probabilities.

    Args:
        prob_list: K tensors/arrays of identical shape, ``(N,)`` or ``(N, C)`` probabilities.
        weights: K non-negative weights summing to 1 (default: equal weights ``1/K``).

    Returns:
        ``(N,)`` or ``(N, C)`` float tensor.

    Raises:
        ValueError: empty list, differing shapes, values outside [0, 1], or bad weights.
    """
    if len(prob_list) == 0:
        raise ValueError("prob_list is empty: need at least one member's probabilities.")
    probs = [torch.as_tensor(p).double() for p in prob_list]
    shape = probs[0].shape
    for i, p in enumerate(probs):
        if p.shape != shape:
            raise ValueError(f"member {i} has probabilities of shape {tuple(p.shape)}, member 0 {tuple(shape)}.")
        if p.numel() and (p.min() < 0 or p.max() > 1):
            raise ValueError(f"member {i} holds values outside [0, 1]: pass probabilities, not logits.")
    w = _check_weights(weights, len(probs))
    return sum(float(wk) * p for wk, p in zip(w, probs))


def _metrics_task(task: str, probs: torch.Tensor) -> str:
    if task == "multilabel":
        return task
    return "binary" if probs.ndim == 1 or probs.shape[1] == 2 else "multiclass"


def ensemble_evaluate(
    models: Sequence[nn.Module],
    loader: Iterable,
    device: torch.device | str = "cpu",
    weights: Sequence[float] | None = None,
    task: str = "multiclass",
    image_key: str = "image",
    label_key: str = "label",
    compute_metrics: bool = True,
) -> dict:
    """Run K classifiers over ``loader`` with ``monai.engines.EnsembleEvaluator`` and average probabilities.

    Each member's logits are stored under ``pred_k``, turned into probabilities by
    ``monai.transforms.Activationsd`` (softmax, or sigmoid for one logit / multi-label) and averaged by
    ``monai.transforms.MeanEnsembled`` into ``pred`` (per-sample post-processing after decollation).

    Args:
        models: K networks mapping ``(B, C_in, *spatial)`` images to ``(B, C)`` or ``(B, 1)`` logits.
        loader: iterable of dict batches with ``image_key`` and ``label_key``.
        device: where the models run (they are moved there).
        weights: K non-negative weights summing to 1 (default equal).
        task: ``"multiclass"`` (softmax; also for a 2-logit binary model), ``"binary"`` (one logit or two) or
            ``"multilabel"`` (sigmoid per label).
        image_key, label_key: batch keys.
        compute_metrics: also return :func:`classification_metrics` of each member and the ensemble.

    Returns:
        ``{"members": [K x (N,) or (N, C) probabilities], "ensemble": probabilities, "labels": (N,) or (N, C),
        "member_metrics": [K dicts], "ensemble_metrics": dict}`` (CPU float tensors; metrics when requested).
    """
    from monai.engines import EnsembleEvaluator
    from monai.transforms import Activationsd, Compose, CopyItemsd, MeanEnsembled

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if len(models) == 0:
        raise ValueError("models is empty: need at least one ensemble member.")
    w = _check_weights(weights, len(models))
    device = torch.device(device)
    models = [m.to(device) for m in models]
    pred_keys = [f"pred_{i}" for i in range(len(models))]

    def prepare_batch(batch, dev, non_blocking=False, **kwargs):
        for key in (image_key, label_key):
            if key not in batch:
                raise KeyError(f"ensemble_evaluate: batch has no key {key!r} (keys: {sorted(batch)}).")
        return batch[image_key].to(dev, non_blocking=non_blocking), torch.as_tensor(batch[label_key]).to(dev)

    def to_probs(key: str):
        # per-sample (decollated) logits (C,): sigmoid for one logit or multi-label, else softmax over classes
        return Activationsd(keys=key, other=lambda x: logits_to_probabilities(x.reshape(1, -1), task)[0])

    # MONAI's MeanEnsembled reads a single key as members already stacked on dim 0, so one member would be
    # averaged over its class axis: a one-model "ensemble" copies its probabilities instead
    average = (MeanEnsembled(keys=pred_keys, output_key="pred", weights=w) if len(models) > 1
               else CopyItemsd(keys=pred_keys[0], names="pred"))
    post = Compose([*(to_probs(k) for k in pred_keys), average])
    epoch_length = len(loader) if hasattr(loader, "__len__") else None
    evaluator = EnsembleEvaluator(device=device, val_data_loader=loader, networks=models, pred_keys=pred_keys,
                                  epoch_length=epoch_length, prepare_batch=prepare_batch, postprocessing=post)
    collected: dict[str, list[torch.Tensor]] = {k: [] for k in [*pred_keys, "pred", "label"]}

    def collect(engine) -> None:
        for item in engine.state.output:  # decollated: one dict per sample
            for k in collected:
                collected[k].append(torch.as_tensor(item[k]).detach().float().cpu().reshape(-1))

    from ignite.engine import Events

    evaluator.add_event_handler(Events.ITERATION_COMPLETED, collect)
    evaluator.run()
    if not collected["pred"]:
        raise ValueError("ensemble_evaluate: the loader is empty.")

    def stack(key: str) -> torch.Tensor:
        out = torch.stack(collected[key])
        return out[:, 0] if out.shape[1] == 1 else out

    members = [stack(k) for k in pred_keys]
    result = {"members": members, "ensemble": stack("pred"), "labels": stack("label")}
    if compute_metrics:
        labels = result["labels"] if task == "multilabel" else result["labels"].long()
        mtask = _metrics_task(task, result["ensemble"])
        result["member_metrics"] = [classification_metrics(p, labels, mtask) for p in members]
        result["ensemble_metrics"] = classification_metrics(result["ensemble"], labels, mtask)
    return result
