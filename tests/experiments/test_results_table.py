"""experiments/results_table.py: README tables from results CSVs, refusing rows not chosen on validation."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import results_table  # noqa: E402


def _write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def _row(init, fraction, seed, auc, status="ok", selected_on="val"):
    return {"init": init, "fraction": fraction, "seed": seed, "recipe": "probe", "selected_on": selected_on,
            "n_labels_used": 54 if fraction < 1 else 5232, "status": status, "test_auc": auc}


def test_table_means_failed_runs_and_recipes(tmp_path):
    folder = _write(tmp_path / "le", [_row("scratch", 0.01, 0, 0.80), _row("scratch", 0.01, 1, 0.84),
                                      _row("simclr", 0.01, 0, 0.90), _row("simclr", 0.01, 1, 0.5, "failed: x"),
                                      _row("scratch", 1.0, 0, 0.93), _row("simclr", 1.0, 0, 0.94)])
    out = results_table.table([folder])
    assert "| init | 1% labels (54 used) | 100% labels (5232 used) |" in out
    assert "| scratch | 0.820 ± 0.028 | 0.930 |" in out
    assert "| SimCLR | 0.900 (1 of 2 failed) | 0.940 |" in out
    assert "scratch 1%: probe x2" in out


def test_rows_not_selected_on_validation_are_refused(tmp_path):
    folder = _write(tmp_path / "le", [_row("scratch", 0.01, 0, 0.8, selected_on="test")])
    with pytest.raises(SystemExit, match="not selected on validation"):
        results_table.table([folder])
