"""``experiments/combine_label_efficiency.py``: merges runs with tagged init names and refuses mixed test sets."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import combine_label_efficiency as combine  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _run_dir(root: Path, name: str, test_set: str, aucs: dict[str, list[float]]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "summary.md").write_text(f"# Label efficiency: COVID CXR 64 px ({test_set})\n\nrest\n")
    with open(folder / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["init", "fraction", "seed", "n_labelled", "test_auc",
                                          "test_balanced_accuracy"])
        w.writeheader()
        for init, values in aucs.items():
            for seed, v in enumerate(values):
                w.writerow({"init": init, "fraction": 0.1, "seed": seed, "n_labelled": 40, "test_auc": v,
                            "test_balanced_accuracy": 0.5})
    return folder


def test_merges_with_tags(tmp_path):
    base = _run_dir(tmp_path, "base", "test: 82 images", {"scratch": [0.5, 0.7], "micle": [0.6, 0.8]})
    crop = _run_dir(tmp_path, "crop", "test: 82 images", {"micle": [0.9, 0.7]})
    out = tmp_path / "merged"
    rows = combine.main(["--run", f"={base}", "--run", f"crops 60-100 %={crop}", "--out", str(out)])
    assert [r["init"] for r in rows] == ["scratch"] * 2 + ["micle"] * 2 + ["micle (crops 60-100 %)"] * 2
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# Label efficiency: COVID CXR 64 px (test: 82 images)")
    assert "| micle (crops 60-100 %) | 0.1 | 40 | 2 / 0 | 0.800 ± 0.141 | 0.500 ± 0.000 |" in summary
    assert "| scratch | 0.1 | 40 | 2 / 0 | 0.600 ± 0.141 |" in summary
    assert (out / "label_efficiency.png").stat().st_size > 0


def test_refuses_different_test_sets(tmp_path):
    a = _run_dir(tmp_path, "a", "test: 82 images", {"scratch": [0.5]})
    b = _run_dir(tmp_path, "b", "val + test: 157 images", {"micle": [0.6]})
    with pytest.raises(SystemExit, match="different test sets"):
        combine.main(["--run", f"={a}", "--run", f"x={b}", "--out", str(tmp_path / "m")])


def test_missing_results_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        combine.main(["--run", f"x={tmp_path}", "--out", str(tmp_path / "m")])
    assert "DIR/results.csv" in capsys.readouterr().err
