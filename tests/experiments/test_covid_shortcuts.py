"""``experiments/covid_shortcuts.py`` on the shipped COVID CXR: the view-only rule and the probe table."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import covid_shortcuts  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _pairwise_auc(scores: list[float], labels: list[int]) -> float:
    """AUC by counting (positive, negative) pairs: ties count a half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_view_rule_and_probe_rows(tmp_path, capsys):
    rows = covid_shortcuts.main(["--fractions", "0.1", "--seeds", "0", "--threads", "1", "--out", str(tmp_path)])
    held_out = covid_shortcuts.load_splits(covid_shortcuts.parse_args([]))["test"]
    rule = _pairwise_auc([float(d["view"] in covid_shortcuts.AP_VIEWS) for d in held_out],
                         [d["label"] for d in held_out])
    assert f"view-only rule, held-out AUC for COVID-19: {rule:.3f}" in capsys.readouterr().out
    assert 0.55 < rule < 0.7  # the shipped split: AP/AP supine is 51 % of COVID-19 but 29 % of "other"
    assert [(r["encoder"], r["fraction"]) for r in rows] == [("random", 1.0), ("random", 0.1)]
    full, few = rows
    assert full["n_labelled"] == 374 and few["n_labelled"] in (38, 39, 40)
    assert all(0.0 <= full[k] <= 1.0 for k in ("finding_auc", "view_auc", "finding_auc_pa_only"))
    assert math.isnan(few["view_auc"])
    with open(tmp_path / "shortcuts.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    table = (tmp_path / "shortcuts.md").read_text()
    assert f"View-only rule (no image): AUC {rule:.3f}" in table and "| random | 10% |" in table


def test_bad_encoder_path_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        covid_shortcuts.parse_args(["--encoder", f"x={tmp_path / 'missing.pt'}"])
    assert "expected NAME=PATH to an existing file" in capsys.readouterr().err
