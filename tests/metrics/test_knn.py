from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from torch import nn

from monai_ssl.handlers import KNNMonitor
from monai_ssl.metrics import extract_features, knn_predict


def _clusters(n, seed, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(3)
    features = centres.repeat_interleave(n, 0) + noise * torch.randn(3 * n, 3, generator=g)
    return features, torch.arange(3).repeat_interleave(n)


def test_knn_separates_clusters_and_is_label_sensitive():
    xtr, ytr = _clusters(20, 0)
    xte, yte = _clusters(10, 1)
    probs = knn_predict(xtr, ytr, xte, num_classes=3, k=5)
    assert probs.shape == (30, 3) and torch.allclose(probs.sum(1), torch.ones(30))
    assert (probs.argmax(1) == yte).float().mean() > 0.9
    shuffled = ytr[torch.randperm(60, generator=torch.Generator().manual_seed(0))]
    assert (knn_predict(xtr, shuffled, xte, 3, k=5).argmax(1) == yte).float().mean() < 0.7


def test_weighted_vote_by_hand():
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    probs = knn_predict(bank, labels, torch.tensor([[0.6, 0.8]]), num_classes=2, k=3, temperature=0.5)
    w = (torch.tensor([0.6, 0.96, 0.8]) / 0.5).exp()  # neighbours 0 (label 0), 1 and 2 (label 1)
    torch.testing.assert_close(probs[0], torch.stack([w[0], w[1] + w[2]]) / w.sum())


def test_bad_labels():
    with pytest.raises(ValueError, match="labels must be in"):
        knn_predict(torch.randn(3, 2), torch.tensor([0, 1, 5]), torch.randn(1, 2), num_classes=2)
    with pytest.raises(ValueError, match="3 train features but 2 labels"):
        knn_predict(torch.randn(3, 2), torch.tensor([0, 1]), torch.randn(1, 2), num_classes=2)


def test_monitor_writes_metrics():
    xtr, ytr = _clusters(10, 0)
    xte, yte = _clusters(5, 1)
    binary_tr, binary_te = (ytr > 0).long(), (yte > 0).long()
    tr = DataLoader([{"image": x, "label": y} for x, y in zip(xtr, binary_tr)], batch_size=8)
    va = DataLoader([{"image": x, "label": y} for x, y in zip(xte, binary_te)], batch_size=8)
    monitor = KNNMonitor(nn.Identity(), tr, va, num_classes=2, k=3)
    metrics = monitor.compute()
    assert metrics["knn_accuracy"] > 0.8 and metrics["knn_auc"] > 0.8 and metrics["knn_balanced_accuracy"] > 0.8
    feats, labels = extract_features(nn.Identity(), va)
    assert feats.shape == (15, 3) and labels.tolist() == binary_te.tolist()


def test_monitor_balanced_accuracy_exposes_majority_vote():
    """9 validation images of class 0 and 1 of class 1, a bank where every neighbour is class 0: accuracy 0.9,
    balanced accuracy 0.5 (class-0 recall 1, class-1 recall 0)."""
    bank = [{"image": torch.tensor([1.0, 0.0]), "label": torch.tensor(0)} for _ in range(4)]
    val = [{"image": torch.tensor([1.0, 0.1 * i]), "label": torch.tensor(int(i == 9))} for i in range(10)]
    metrics = KNNMonitor(nn.Identity(), DataLoader(bank, batch_size=4), DataLoader(val, batch_size=4),
                         num_classes=2, k=3).compute()
    assert metrics["knn_accuracy"] == pytest.approx(0.9)
    assert metrics["knn_balanced_accuracy"] == pytest.approx(0.5)
