"""Probability-averaging ensembles: plain function and the MONAI EnsembleEvaluator path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from monai_ssl.evaluation.ensemble import ensemble_evaluate, ensemble_probabilities, logits_to_probabilities
from monai_ssl.metrics.classification import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, out))


def _loader(n=10, batch=4, seed=0, num_classes=3, multilabel=False):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, 4, 4, generator=g)
    if multilabel:
        labels = torch.randint(0, 2, (n, num_classes), generator=g)
    else:
        labels = torch.arange(n) % num_classes
    batches = [{"image": images[i:i + batch], "label": labels[i:i + batch]} for i in range(0, n, batch)]
    return batches, images, labels


def test_ensemble_probabilities_equal_and_weighted():
    a = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    b = torch.tensor([[0.5, 0.5], [0.6, 0.4]])
    torch.testing.assert_close(ensemble_probabilities([a, b]), ((a + b) / 2).double())
    torch.testing.assert_close(ensemble_probabilities([a, b], weights=[0.25, 0.75]), (0.25 * a + 0.75 * b).double())
    torch.testing.assert_close(ensemble_probabilities([a.numpy()]), a.double())  # K = 1, numpy input
    with pytest.raises(ValueError, match="sum to 1"):
        ensemble_probabilities([a, b], weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="2 weights for 3"):
        ensemble_probabilities([a, b, a], weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        ensemble_probabilities([a, b], weights=[1.5, -0.5])
    with pytest.raises(ValueError, match="member 1 has probabilities of shape"):
        ensemble_probabilities([a, b[:1]])
    with pytest.raises(ValueError, match="not logits"):
        ensemble_probabilities([a, b * 5])
    with pytest.raises(ValueError, match="empty"):
        ensemble_probabilities([])


def test_probabilities_not_logits_are_averaged():
    # averaging logits and averaging softmax give different argmax here: the rule is probabilities
    la = torch.tensor([[3.0, 0.0, 0.0]])
    lb = torch.tensor([[-20.0, 0.5, 0.0]])  # B is very sure it is not class 0: that dominates a logit average
    p = ensemble_probabilities([logits_to_probabilities(la), logits_to_probabilities(lb)])
    by_logits = torch.softmax((la + lb) / 2, dim=1)
    assert p.argmax(1).item() == 0 and by_logits.argmax(1).item() == 1
    # one logit -> sigmoid (N,), multi-label -> sigmoid per label
    one_logit = torch.tensor([[0.0], [2.0]])
    torch.testing.assert_close(logits_to_probabilities(one_logit), torch.sigmoid(one_logit[:, 0]))
    torch.testing.assert_close(logits_to_probabilities(la, "multilabel"), torch.sigmoid(la))


def test_evaluator_matches_hand_average_of_softmax():
    models = [_model(3, 0), _model(3, 1)]
    batches, images, labels = _loader()
    out = ensemble_evaluate(models, batches)
    with torch.no_grad():
        pa, pb = (torch.softmax(m(images), dim=1) for m in models)
    torch.testing.assert_close(out["members"][0], pa)
    torch.testing.assert_close(out["members"][1], pb)
    torch.testing.assert_close(out["ensemble"], (pa + pb) / 2)
    torch.testing.assert_close(out["labels"].long(), labels)
    # the evaluator path equals the plain function
    torch.testing.assert_close(out["ensemble"].double(), ensemble_probabilities(out["members"]))
    assert out["ensemble_metrics"] == pytest.approx(classification_metrics((pa + pb) / 2, labels, "multiclass"))
    assert out["member_metrics"][1] == pytest.approx(classification_metrics(pb, labels, "multiclass"))


def test_evaluator_weights_and_one_logit_binary():
    models = [_model(1, 2), _model(1, 3), _model(1, 4)]
    batches, images, labels = _loader(n=12, num_classes=2)
    w = [0.5, 0.3, 0.2]
    out = ensemble_evaluate(models, batches, weights=w, task="binary")
    with torch.no_grad():
        probs = [torch.sigmoid(m(images)[:, 0]) for m in models]
    assert out["ensemble"].shape == (12,)
    torch.testing.assert_close(out["ensemble"], sum(wi * p for wi, p in zip(w, probs)))
    torch.testing.assert_close(out["ensemble"].double(), ensemble_probabilities(out["members"], w))
    assert set(out["ensemble_metrics"]) == {"auc", "accuracy", "balanced_accuracy", "f1"}
    with pytest.raises(ValueError, match="sum to 1"):
        ensemble_evaluate(models, batches, weights=[0.5, 0.5, 0.5])


def test_evaluator_multilabel_and_bad_batch():
    models = [_model(3, 5), _model(3, 6)]
    batches, images, labels = _loader(n=8, multilabel=True)
    out = ensemble_evaluate(models, batches, task="multilabel")
    with torch.no_grad():
        expected = (torch.sigmoid(models[0](images)) + torch.sigmoid(models[1](images))) / 2
    torch.testing.assert_close(out["ensemble"], expected)
    assert out["labels"].shape == (8, 3)
    assert np.isfinite(out["ensemble_metrics"]["accuracy"])
    with pytest.raises(KeyError, match="no key 'img'"):
        ensemble_evaluate(models, batches, image_key="img")


def test_evaluator_one_member_is_that_member():
    # MONAI's MeanEnsembled reads one key as pre-stacked members (it would average over the class axis -> 0.5)
    model = _model(2, 7)
    batches, images, labels = _loader(n=10, num_classes=2)
    out = ensemble_evaluate([model], batches, task="binary")
    with torch.no_grad():
        expected = torch.softmax(model(images), dim=1)
    torch.testing.assert_close(out["ensemble"], expected)
    torch.testing.assert_close(out["members"][0], expected)
    assert out["ensemble_metrics"] == pytest.approx(out["member_metrics"][0])
