"""Linear probe (LBFGS logistic regression) and kNN evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from monai_ssl.evaluation.linear_probe import LinearProbe, fit_linear_probe, knn_evaluate, linear_probe_evaluate
from monai_ssl.metrics.classification import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _separable(n=200, d=10, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * 3 + offset  # features on an arbitrary scale: the probe standardises
    w = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    y = (x @ w > offset * w.sum()).long()
    x = x + (2 * y[:, None] - 1) * w  # a margin of 2 between the classes (in raw units)
    return x, y


def test_binary_separable_auc_one_and_probe_api():
    x, y = _separable()
    probe = fit_linear_probe(x[:150], y[:150], task="binary")
    assert isinstance(probe, LinearProbe) and probe.l2 == pytest.approx(1e-3) and probe.val_score is None
    p = probe.predict_proba(x[150:])
    assert p.shape == (50,) and ((p >= 0) & (p <= 1)).all()
    assert classification_metrics(p, y[150:])["auc"] > 0.99
    logits = probe(x[150:].float())  # nn.Module forward: logits
    assert logits.shape == (50, 1)
    torch.testing.assert_close(torch.sigmoid(logits[:, 0]), p)
    with pytest.raises(ValueError, match=r"features must be \(N, 10\)"):
        probe.predict_proba(torch.zeros(3, 4))


def test_l2_selection_picks_from_grid_on_validation_auc():
    g = torch.Generator().manual_seed(1)
    # few noisy samples, many dims: a strong penalty should win on validation
    x = torch.randn(300, 50, generator=g)
    y = ((x[:, 0] + 2.0 * torch.randn(300, generator=g)) > 0).long()
    grid = (1e-4, 1e-2, 1.0, 10.0)
    probe = fit_linear_probe(x[:40], y[:40], x[40:], y[40:], l2_grid=grid)
    assert probe.l2 in grid and set(probe.scores) == set(grid)
    assert probe.val_score == pytest.approx(max(probe.scores.values()))
    assert probe.scores[probe.l2] == probe.val_score
    # the stored weights are the chosen fit's: recompute its validation AUC
    auc = classification_metrics(probe.predict_proba(x[40:]), y[40:])["auc"]
    assert auc == pytest.approx(probe.val_score)
    # a larger penalty shrinks the weights
    strong = fit_linear_probe(x[:40], y[:40], default_l2=10.0)
    weak = fit_linear_probe(x[:40], y[:40], default_l2=1e-4)
    assert strong.linear.weight.norm() < 0.5 * weak.linear.weight.norm()


def test_multiclass_and_multilabel():
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(4, 8, generator=g) * 4
    y = torch.arange(4).repeat_interleave(40)
    x = centers[y] + torch.randn(160, 8, generator=g)
    probe = fit_linear_probe(x[::2], y[::2], x[1::2], y[1::2], task="multiclass", l2_grid=(1e-1, 1.0))
    p = probe.predict_proba(x[1::2])
    assert p.shape == (80, 4)
    torch.testing.assert_close(p.sum(1), torch.ones(80, dtype=torch.float64))
    assert classification_metrics(p, y[1::2], "multiclass")["accuracy"] > 0.95
    # multi-label: label c is "feature c > 0"
    xm = torch.randn(200, 6, generator=g)
    ym = (xm[:, :3] > 0).long()
    probe = fit_linear_probe(xm[:150], ym[:150], xm[150:], ym[150:], task="multilabel", l2_grid=(1e-3,))
    pm = probe.predict_proba(xm[150:])
    assert pm.shape == (50, 3)
    assert classification_metrics(pm, ym[150:], "multilabel")["auc"] > 0.98


def test_class_balanced_weights_shift_the_decision_towards_the_minority():
    g = torch.Generator().manual_seed(3)
    # heavy overlap, 9:1 imbalance: without weights the minority is rarely predicted
    x = torch.cat([torch.randn(270, 2, generator=g), torch.randn(30, 2, generator=g) + 0.8])
    y = torch.cat([torch.zeros(270), torch.ones(30)]).long()
    plain = fit_linear_probe(x, y)
    balanced = fit_linear_probe(x, y, class_balanced=True)
    assert (balanced.predict_proba(x) >= 0.5).sum() > (plain.predict_proba(x) >= 0.5).sum()
    assert classification_metrics(balanced.predict_proba(x), y)["balanced_accuracy"] > \
        classification_metrics(plain.predict_proba(x), y)["balanced_accuracy"]


def test_bad_inputs():
    x, y = _separable(n=20)
    with pytest.raises(ValueError, match="task"):
        fit_linear_probe(x, y, task="ordinal")
    with pytest.raises(ValueError, match="drop unlabelled -1"):
        fit_linear_probe(x, torch.full((20,), -1))
    with pytest.raises(ValueError, match="20 train features but 19"):
        fit_linear_probe(x, y[:19])
    with pytest.raises(ValueError, match="both val_feats and val_labels"):
        fit_linear_probe(x, y, val_feats=x)
    with pytest.raises(ValueError, match="single class"), pytest.warns(UserWarning, match="single class"):
        fit_linear_probe(x, y, x, torch.zeros(20, dtype=torch.long))
    with pytest.raises(ValueError, match="multi-hot"):
        fit_linear_probe(x, y, task="multilabel")


def test_knn_evaluate():
    g = torch.Generator().manual_seed(4)
    centers = torch.randn(3, 16, generator=g) * 3
    y = torch.arange(3).repeat_interleave(30)
    x = centers[y] + torch.randn(90, 16, generator=g)
    m = knn_evaluate(x[::2], y[::2], x[1::2], y[1::2], task="multiclass", k=5)
    assert set(m) == {"auc", "accuracy", "balanced_accuracy", "f1"} and m["accuracy"] > 0.9
    # with random labels kNN is near chance
    yr = torch.randint(0, 2, (90,), generator=g)
    assert knn_evaluate(x[::2], yr[::2], x[1::2], yr[1::2], k=5)["auc"] < 0.8
    with pytest.raises(ValueError, match="binary' or 'multiclass"):
        knn_evaluate(x, y, x, y, task="multilabel")


def _pneumonia(data_dir, split, n, seed=0):
    d = np.load(data_dir / "pneumoniamnist.npz")
    images, labels = d[f"{split}_images"], d[f"{split}_labels"].reshape(-1)
    idx = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
    return images[idx].astype(np.float32) / 255.0, labels[idx].astype(np.int64)


def test_pneumoniamnist_raw_pixels_beat_chance(data_dir):
    xtr, ytr = _pneumonia(data_dir, "train", 400)
    xva, yva = _pneumonia(data_dir, "val", 150)
    xte, yte = _pneumonia(data_dir, "test", 300)
    flat = [torch.from_numpy(a.reshape(len(a), -1)) for a in (xtr, xva, xte)]
    probe = fit_linear_probe(flat[0], ytr, flat[1], yva, l2_grid=(1e-2, 1e-1, 1.0), class_balanced=True)
    m = classification_metrics(probe.predict_proba(flat[2]), yte)
    print("pneumoniamnist raw-pixel probe:", m, "l2", probe.l2)
    assert m["auc"] > 0.8, m
    assert m["balanced_accuracy"] > 0.65, m
    knn = knn_evaluate(flat[0], torch.from_numpy(ytr), flat[2], torch.from_numpy(yte), k=10)
    assert knn["auc"] > 0.7, knn


def test_linear_probe_evaluate_with_encoder_and_item_lists(data_dir):
    xtr, ytr = _pneumonia(data_dir, "train", 200, seed=1)
    xte, yte = _pneumonia(data_dir, "test", 100, seed=1)

    def items(x, y):
        return [{"image": torch.from_numpy(a)[None], "label": int(b)} for a, b in zip(x, y)]

    encoder = nn.Sequential(nn.AvgPool2d(2), nn.Flatten())  # a frozen "encoder": 14x14 pooled pixels
    out = linear_probe_evaluate(encoder, items(xtr[:150], ytr[:150]), items(xtr[150:], ytr[150:]),
                                items(xte, yte), l2_grid=(1e-2, 1.0), batch_size=32, n_boot=50)
    assert out["l2"] in (1e-2, 1.0) and out["val_auc"] is not None
    assert out["test_probs"].shape == (100,)
    rep = out["metrics"]
    assert rep["auc"]["low"] <= rep["auc"]["value"] <= rep["auc"]["high"] and rep["auc"]["value"] > 0.75
