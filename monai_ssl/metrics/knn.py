"""Weighted k-nearest-neighbour classification on embeddings (the standard SSL kNN monitor)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

__all__ = ["extract_features", "knn_predict"]


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class probabilities of queries by cosine kNN with ``exp(sim / T)`` weighted votes (Wu et al. 2018).

    Args:
        train_features: (N, D) memory bank.
        train_labels: (N,) integer labels in ``[0, num_classes)``.
        query_features: (M, D) features to classify.
        num_classes: number of classes.
        k: neighbours (clipped to N).
        temperature: vote temperature; ``None``-like large values approach uniform votes.
        chunk_size: queries processed per block (bounds memory to chunk_size x N).

    Returns:
        (M, num_classes) probabilities (rows sum to 1).
    """
    if train_features.shape[0] != train_labels.shape[0]:
        raise ValueError(f"{train_features.shape[0]} train features but {train_labels.shape[0]} labels")
    if train_labels.min() < 0 or train_labels.max() >= num_classes:
        raise ValueError(f"train labels must be in [0, {num_classes}), "
                         f"got [{train_labels.min()}, {train_labels.max()}]")
    bank = F.normalize(train_features.float(), dim=1)
    k = min(k, bank.shape[0])
    out = []
    for start in range(0, query_features.shape[0], chunk_size):
        q = F.normalize(query_features[start : start + chunk_size].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, train_labels[idx].long(), weights)
        out.append(votes / votes.sum(1, keepdim=True))
    return torch.cat(out)


@torch.no_grad()
def extract_features(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    loader: Iterable,
    device: torch.device | str = "cpu",
    image_key: str = "image",
    label_key: str = "label",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``encoder`` over a loader of dict batches; returns pooled (N, F) features and (N,) labels."""
    from ..networks.nets.contrastive import pool_features

    was_training = getattr(encoder, "training", False)
    if hasattr(encoder, "eval"):
        encoder.eval()
    feats, labels = [], []
    try:
        for batch in loader:
            feats.append(pool_features(encoder(batch[image_key].to(device))).float().cpu())
            labels.append(torch.as_tensor(batch[label_key]).reshape(-1).cpu())
    finally:
        if was_training:
            encoder.train()
    if not feats:
        raise ValueError("extract_features: the loader is empty")
    return torch.cat(feats), torch.cat(labels)
