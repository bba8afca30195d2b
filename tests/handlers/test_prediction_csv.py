"""PredictionCSVWriter: one row per input with its status; skipped files keep their reason and no score."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from ignite.engine import Engine

from monai_ssl.handlers import PredictionCSVWriter


def _run(writer, batches):
    """An engine whose iterations hand the writer decollated (batch, output) pairs, as MONAI's evaluators do."""
    def step(engine, item):
        engine.state.batch = item[0]
        return item[1]

    engine = Engine(step)
    writer.attach(engine)
    engine.run(batches, max_epochs=1)


def test_rows_for_ok_skipped_and_non_finite_items(tmp_path):
    nan = float("nan")
    batch = [{"file": "a.dcm", "status": "ok", "domain": "checked"},
             {"file": "leg.dcm", "status": "out_of_domain: BodyPartExamined LEG, model trained on CHEST",
              "domain": ""},
             {"file": "b.png", "status": "ok", "domain": "unchecked: no DICOM header"}]
    output = [{"pred": torch.tensor([0.2, 0.8])}, {"pred": torch.tensor([nan, nan])},
              {"pred": torch.tensor([nan, 0.5])}]
    w = PredictionCSVWriter(tmp_path / "p.csv", ["other", "covid"])
    _run(w, [(batch, output)])
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["a.dcm", "leg.dcm", "b.png"]
    assert list(rows[0]) == ["file", "status", "domain", "prob_other", "prob_covid", "pred"]
    assert rows[0]["pred"] == "covid" and math.isclose(float(rows[0]["prob_covid"]), 0.8, rel_tol=1e-6)
    assert rows[1]["status"].startswith("out_of_domain") and rows[1]["prob_covid"] == rows[1]["pred"] == ""
    assert rows[2]["status"] == "error: non-finite prediction" and rows[2]["pred"] == ""


def test_items_without_status_are_ok_and_class_names_are_checked(tmp_path):
    w = PredictionCSVWriter(tmp_path / "p.csv", ["other", "covid"])
    _run(w, [([{"file": "a.png"}], [{"pred": torch.tensor([0.6, 0.4])}])])
    assert w.rows == [{"file": "a.png", "status": "ok", "prob_other": 0.6, "prob_covid": 0.4, "pred": "other"}]
    with pytest.raises(ValueError, match="config key 'class_names': 2 names for 3 outputs"):
        _run(PredictionCSVWriter(tmp_path / "q.csv", ["other", "covid"]),
             [([{"file": "a.png"}], [{"pred": torch.tensor([0.2, 0.4, 0.4])}])])
