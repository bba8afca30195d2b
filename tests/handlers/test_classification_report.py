"""ClassificationReportHandler on a plain ignite engine: binary, multi-class (per-class AUC, kappa) and multi-label
(per-finding AUC) reports with CIs, and the files it writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_ssl.evaluation import classification_metrics
from monai_ssl.handlers import ClassificationReportHandler


def _run(handler, preds, labels, groups, batch=4):
    """An evaluator-like engine whose output is MONAI's decollated list of {"pred", "label"} per sample."""
    data = [(preds[i:i + batch], labels[i:i + batch], groups[i:i + batch]) for i in range(0, len(preds), batch)]

    def step(engine, b):
        engine.state.batch = {"patient_id": list(b[2])}
        return [{"pred": p, "label": y} for p, y in zip(b[0], b[1])]

    engine = Engine(step)
    handler.attach(engine)
    engine.run(data)
    return handler.result


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multiclass_report_and_files(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 30)
    probs = torch.softmax(torch.tensor(rng.normal(size=(30, 3)) + 2 * np.eye(3)[y]), 1).float()
    onehot = torch.nn.functional.one_hot(torch.tensor(y), 3).float()
    names = ["mild", "moderate", "severe"]
    h = ClassificationReportHandler(tmp_path, n_boot=50, task="multiclass", class_names=names)
    res = _run(h, probs, onehot, [f"p{i // 2}" for i in range(30)])
    rep = res["report"]
    assert {"kappa", "auc_mild", "auc_moderate", "auc_severe"} <= set(rep) and res["task"] == "multiclass"
    assert rep["auc"]["value"] == pytest.approx(classification_metrics(probs, y, "multiclass")["auc"])
    saved = json.loads((tmp_path / "metrics_test.json").read_text())
    assert saved["class_names"] == names
    rows = _rows(tmp_path / "predictions_test.csv")
    assert list(rows[0]) == ["index", "patient_id", "label", "prob_mild", "prob_moderate", "prob_severe"]
    assert [int(r["label"]) for r in rows] == y.tolist() and rows[3]["patient_id"] == "p1"
    with pytest.raises(ValueError, match="config key 'class_names'"):
        _run(ClassificationReportHandler(tmp_path, n_boot=5, task="multiclass", class_names=["a", "b"]),
             probs, onehot, [str(i) for i in range(30)])
    with pytest.raises(ValueError, match="config key 'task'"):
        ClassificationReportHandler(tmp_path, task="ordinal")


def test_multilabel_report_and_binary_unchanged(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random((24, 2)) < 0.5).astype(np.float32)
    probs = torch.tensor(0.6 * y + 0.4 * rng.random((24, 2)), dtype=torch.float32)
    h = ClassificationReportHandler(tmp_path / "ml", n_boot=50, task="multilabel", class_names=["effusion", "edema"])
    rep = _run(h, probs, torch.tensor(y), [str(i) for i in range(24)])["report"]
    assert set(rep) == {"auc", "accuracy", "balanced_accuracy", "f1", "auc_effusion", "auc_edema", "n"}
    assert rep["auc"]["value"] == pytest.approx((rep["auc_effusion"]["value"] + rep["auc_edema"]["value"]) / 2)
    rows = _rows(tmp_path / "ml" / "predictions_test.csv")
    expected = ";".join(n for n, v in zip(["effusion", "edema"], y[0]) if v)
    assert rows[0]["label"] == expected and "prob_edema" in rows[0]
    # binary: P(class 1) and the four metrics, as before
    yb = torch.tensor(y[:, 0]).long()
    pb = torch.stack([1 - probs[:, 0], probs[:, 0]], 1)
    rep = _run(ClassificationReportHandler(tmp_path / "b", n_boot=20), pb,
               torch.nn.functional.one_hot(yb, 2).float(), [str(i) for i in range(24)])["report"]
    assert set(rep) == {"auc", "accuracy", "balanced_accuracy", "f1", "n"}
    assert list(_rows(tmp_path / "b" / "predictions_test.csv")[0]) == ["index", "patient_id", "label", "prob_positive"]
