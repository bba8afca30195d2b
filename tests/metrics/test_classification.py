"""Classification metrics and bootstrap CIs against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.metrics import compute_roc_auc

from monai_ssl.metrics.classification import bootstrap_ci, classification_metrics, classification_report, roc_auc


def brute_force_auc(scores, labels) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie), by enumerating every positive/negative pair."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_binary_by_hand():
    probs = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    m = classification_metrics(probs, labels, "binary")
    # predicted positive (>= 0.5): 0.9 0.8 0.6 0.7 -> tp=2 (0.9, 0.8), fp=2 (0.6, 0.7), fn=2 (0.3, 0.4), tn=2
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["balanced_accuracy"] == pytest.approx(0.5 * (2 / 4 + 2 / 4))
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))
    assert m["auc"] == pytest.approx(brute_force_auc(probs, labels))
    # (N, 2) probabilities use column 1; a tensor input gives the same
    m2 = classification_metrics(torch.tensor(np.stack([1 - probs, probs], 1)), torch.tensor(labels), "binary")
    assert m2 == pytest.approx(m)
    # threshold moves the decisions: everything positive
    m3 = classification_metrics(probs, labels, "binary", threshold=0.05)
    assert m3["accuracy"] == pytest.approx(0.5) and m3["balanced_accuracy"] == pytest.approx(0.5)


def test_binary_auc_with_ties_matches_pairwise_count():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=40) / 4.0  # many ties
    labels = rng.integers(0, 2, size=40)
    assert classification_metrics(scores, labels)["auc"] == pytest.approx(brute_force_auc(scores, labels))


@pytest.mark.parametrize("levels", [4, 1000])
def test_rank_auc_equals_monai_compute_roc_auc(levels):
    rng = np.random.default_rng(levels)
    for n in (2, 7, 300):
        y = rng.integers(0, 2, size=n)
        y[:2] = [0, 1]
        s = rng.integers(0, levels, size=n) / levels  # levels=4: heavy ties
        assert roc_auc(s, y) == pytest.approx(compute_roc_auc(torch.tensor(s), torch.tensor(y)), abs=1e-12)
    # multi-class macro one-vs-rest equals MONAI's macro average on one-hot targets
    p = rng.dirichlet([1, 1, 1], size=50)
    y = np.arange(50) % 3
    expected = compute_roc_auc(torch.tensor(p), torch.tensor(np.eye(3)[y]), average="macro")
    assert classification_metrics(p, y, "multiclass")["auc"] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_multiclass_by_hand():
    probs = np.array([
        [0.7, 0.2, 0.1],  # y0 pred0
        [0.1, 0.6, 0.3],  # y0 pred1
        [0.2, 0.5, 0.3],  # y1 pred1
        [0.3, 0.3, 0.4],  # y1 pred2
        [0.1, 0.1, 0.8],  # y2 pred2
        [0.5, 0.2, 0.3],  # y2 pred0
    ])
    labels = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(probs, labels, "multiclass")
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["balanced_accuracy"] == pytest.approx(np.mean([1 / 2, 1 / 2, 1 / 2]))
    # each class: tp=1, fp=1, fn=1 -> F1 = 2/4
    assert m["f1"] == pytest.approx(0.5)
    expected_auc = np.mean([brute_force_auc(probs[:, c], (labels == c).astype(int)) for c in range(3)])
    assert m["auc"] == pytest.approx(expected_auc)


def test_multilabel_by_hand():
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.8], [0.4, 0.3]])
    labels = np.array([[1, 0], [0, 1], [0, 1], [1, 1]])
    m = classification_metrics(probs, labels, "multilabel")
    # label 0 preds [1,1,0,0] vs [1,0,0,1]: tp1 fp1 fn1 tn1; label 1 preds [0,1,1,0] vs [0,1,1,1]: tp2 tn1 fn1
    assert m["accuracy"] == pytest.approx((2 + 3) / 8)
    assert m["balanced_accuracy"] == pytest.approx(np.mean([0.5, (2 / 3 + 1) / 2]))
    assert m["f1"] == pytest.approx(np.mean([2 / 4, 4 / 5]))
    expected_auc = np.mean([brute_force_auc(probs[:, c], labels[:, c]) for c in range(2)])
    assert m["auc"] == pytest.approx(expected_auc)


def test_single_class_auc_is_nan_with_warning_and_bad_inputs():
    with pytest.warns(UserWarning, match="single class"):
        m = classification_metrics([0.2, 0.7, 0.9], [1, 1, 1])
    assert np.isnan(m["auc"]) and m["accuracy"] == pytest.approx(2 / 3)
    with pytest.warns(UserWarning, match=r"classes \[2\]"):  # class 2 absent: left out of the macro average
        m = classification_metrics(np.full((4, 3), 1 / 3) + np.eye(4, 3) * 0.1, [0, 1, 0, 1], "multiclass")
    assert np.isfinite(m["auc"])
    with pytest.raises(ValueError, match="task"):
        classification_metrics([0.5], [1], task="regression")
    with pytest.raises(ValueError, match="3 samples but labels has 2"):
        classification_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="binary labels must be 0 or 1"):
        classification_metrics([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match=r"multiclass labels must be in \[0, 2\)"):
        classification_metrics(np.full((2, 2), 0.5), [0, 2], "multiclass")
    with pytest.raises(ValueError, match="multilabel probs and labels"):
        classification_metrics(np.full((2, 2), 0.5), [0, 1], "multilabel")
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics([0.1, float("nan")], [0, 1])


def _synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    probs = 1 / (1 + np.exp(-(2.0 * labels - 1 + rng.normal(0, 1.5, size=n))))
    return probs, labels


def _auc_fn(p, y):
    return classification_metrics(p, y)["auc"]


def test_bootstrap_contains_point_narrows_and_is_deterministic():
    p_small, y_small = _synthetic(60)
    p_big, y_big = _synthetic(600)
    point, low, high = bootstrap_ci(p_small, y_small, _auc_fn, n_boot=200, seed=1)
    assert low <= point <= high and low < high
    assert point == pytest.approx(_auc_fn(p_small, y_small))
    _, low_b, high_b = bootstrap_ci(p_big, y_big, _auc_fn, n_boot=200, seed=1)
    assert high_b - low_b < 0.6 * (high - low)
    assert bootstrap_ci(p_small, y_small, _auc_fn, n_boot=200, seed=1) == (point, low, high)
    assert bootstrap_ci(p_small, y_small, _auc_fn, n_boot=200, seed=2) != (point, low, high)
    # a wider coverage gives a wider interval
    _, low90, high90 = bootstrap_ci(p_small, y_small, _auc_fn, n_boot=200, seed=1, alpha=0.1)
    assert low <= low90 and high90 <= high


def test_group_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])  # 30 images, 10 patients
    probs = np.arange(30, dtype=float)
    seen = []

    def record(p, y):  # the metric sees the resampled values: check each group comes complete
        seen.append(p.copy())
        return float(len(p))

    bootstrap_ci(probs, np.zeros(30), record, n_boot=50, seed=0, groups=groups)
    sizes = np.bincount(groups)
    for p in seen[1:]:  # seen[0] is the point estimate on all data
        idx = p.astype(int)
        counts = np.bincount(groups[idx], minlength=10)
        multiplicity = counts / sizes  # each group appears a whole number of times
        assert np.allclose(multiplicity, np.round(multiplicity))
        assert np.round(multiplicity).sum() == 10  # 10 groups drawn
    assert len({len(p) for p in seen[1:]}) > 1  # sizes vary: groups, not images, were drawn
    with pytest.raises(ValueError, match="groups has 3 entries"):
        bootstrap_ci(probs, np.zeros(30), record, n_boot=5, groups=[0, 1, 2])


def test_group_bootstrap_is_wider_for_correlated_images():
    # 20 patients x 10 near-identical images: image-level resampling badly understates the uncertainty
    rng = np.random.default_rng(0)
    patient_label = rng.integers(0, 2, size=20)
    patient_score = np.clip(0.5 + 0.3 * (2 * patient_label - 1) + rng.normal(0, 0.3, size=20), 0, 1)
    probs = np.repeat(patient_score, 10) + rng.normal(0, 1e-3, size=200)
    labels = np.repeat(patient_label, 10)
    groups = np.repeat(np.arange(20), 10)
    _, lo_i, hi_i = bootstrap_ci(probs, labels, _auc_fn, n_boot=200)
    _, lo_g, hi_g = bootstrap_ci(probs, labels, _auc_fn, n_boot=200, groups=groups)
    assert hi_g - lo_g > 1.5 * (hi_i - lo_i)


def test_classification_report():
    probs, labels = _synthetic(80, seed=3)
    rep = classification_report(probs, labels, n_boot=100, seed=0)
    assert set(rep) == {"auc", "accuracy", "balanced_accuracy", "f1", "n"}
    assert rep["n"]["value"] == 80
    point = classification_metrics(probs, labels)
    for k, v in point.items():
        assert rep[k]["value"] == pytest.approx(v)
        assert rep[k]["low"] <= v <= rep[k]["high"]
    # the AUC interval equals the one bootstrap_ci draws with the same seed (same resamples)
    _, low, high = bootstrap_ci(probs, labels, _auc_fn, n_boot=100, seed=0)
    assert (rep["auc"]["low"], rep["auc"]["high"]) == pytest.approx((low, high))
    with pytest.raises(ValueError, match="n_boot"):
        classification_report(probs, labels, n_boot=0)


def test_auc_score_matches_classification_metrics():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 1, 2, 1, 2])
    from monai_ssl.metrics.classification import auc_score

    assert auc_score(probs, labels, "multiclass") == classification_metrics(probs, labels, "multiclass")["auc"]
    assert auc_score(torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0, 1, 1])) == 1.0


def _kappa_by_hand(pred, labels, c):
    """Quadratic-weighted kappa from its definition: 1 - sum_ij w_ij O_ij / sum_ij w_ij E_ij, loops only."""
    n = len(labels)
    obs = [[sum(1 for p, y in zip(pred, labels) if y == i and p == j) for j in range(c)] for i in range(c)]
    rows = [sum(obs[i]) for i in range(c)]
    cols = [sum(obs[i][j] for i in range(c)) for j in range(c)]
    num = sum((i - j) ** 2 * obs[i][j] for i in range(c) for j in range(c))
    den = sum((i - j) ** 2 * rows[i] * cols[j] / n for i in range(c) for j in range(c))
    return 1 - num / den


def test_quadratic_kappa_and_per_class_auc_by_hand():
    from monai_ssl.metrics.classification import per_class_auc, quadratic_kappa

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 60)
    pred = np.clip(labels + rng.integers(-1, 2, 60), 0, 4)
    assert quadratic_kappa(pred, labels, 5) == pytest.approx(_kappa_by_hand(pred, labels, 5))
    assert quadratic_kappa(labels, labels, 5) == 1.0
    # an off-by-one grade costs less than an off-by-four one: the weights are ordinal
    assert quadratic_kappa(np.clip(labels + 1, 0, 4), labels, 5) > quadratic_kappa(4 - labels, labels, 5)
    probs = rng.random((60, 5))
    m = classification_metrics(probs, labels, "multiclass", per_class=True, class_names=list("abcde"))
    for c, name in enumerate("abcde"):
        assert m[f"auc_{name}"] == pytest.approx(brute_force_auc(probs[:, c], (labels == c).astype(int)))
    assert m["kappa"] == pytest.approx(_kappa_by_hand(probs.argmax(1), labels, 5))
    np.testing.assert_allclose(per_class_auc(probs, labels), [m[f"auc_{n}"] for n in "abcde"])
    with pytest.raises(ValueError, match="class_names"):
        classification_metrics(probs, labels, "multiclass", per_class=True, class_names=["a", "b"])


def test_multiclass_and_multilabel_reports_have_per_class_cis():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 90)
    probs = rng.random((90, 3)) + np.eye(3)[labels]
    probs /= probs.sum(1, keepdims=True)
    rep = classification_report(probs, labels, "multiclass", n_boot=100, class_names=["g0", "g1", "g2"],
                                groups=np.repeat(np.arange(30), 3))
    assert set(rep) == {"auc", "accuracy", "balanced_accuracy", "f1", "kappa", "auc_g0", "auc_g1", "auc_g2", "n"}
    for k in set(rep) - {"n"}:
        assert rep[k]["low"] <= rep[k]["value"] <= rep[k]["high"], k
    multi = (rng.random((90, 2)) < 0.4).astype(int)
    scores = 0.5 * rng.random((90, 2)) + 0.5 * multi
    rep = classification_report(scores, multi, "multilabel", n_boot=100, class_names=["effusion", "edema"])
    assert set(rep) == {"auc", "accuracy", "balanced_accuracy", "f1", "auc_effusion", "auc_edema", "n"}
    # the mean AUC is the mean of the per-finding AUCs
    assert rep["auc"]["value"] == pytest.approx((rep["auc_effusion"]["value"] + rep["auc_edema"]["value"]) / 2)
    assert rep["auc_edema"]["value"] == pytest.approx(brute_force_auc(scores[:, 1], multi[:, 1]))


def test_validation_auc_metric_skips_a_class_absent_from_the_split():
    from monai_ssl.metrics.classification import DefinedClassesROCAUCMetric

    rng = np.random.default_rng(6)
    labels = torch.tensor(rng.integers(0, 3, 40))
    probs = torch.softmax(torch.tensor(rng.normal(size=(40, 3))), 1)
    onehot = torch.nn.functional.one_hot(labels, 3)
    metric = DefinedClassesROCAUCMetric()
    metric(probs[:20], onehot[:20])
    metric(probs[20:], onehot[20:])  # cumulative over iterations, as MONAI's ROCAUCMetric
    assert metric.aggregate() == pytest.approx(float(compute_roc_auc(probs, onehot, average="macro")))
    # class 2 absent: MONAI's macro AUC is NaN; this one averages the two classes present, with a warning
    keep = labels != 2
    metric.reset()
    metric(probs[keep], torch.nn.functional.one_hot(labels[keep], 3))
    with pytest.warns(UserWarning, match=r"classes \[2\]"):
        value = metric.aggregate()
    expected = np.mean([brute_force_auc(probs[keep][:, c], (labels[keep] == c).int()) for c in (0, 1)])
    assert value == pytest.approx(expected)
