"""scripts/demo.py (`make demo`): a tiny end-to-end run, the table, the verdict sentence and the plot."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(init, seed, auc, status="ok"):
    return {"init": init, "seed": seed, "n_labelled": 48, "n_val_labelled": 6, "n_test": 624, "recipe": "probe",
            "test_auc": auc, "test_auc_low": auc - 0.05, "test_auc_high": auc + 0.04, "test_balanced_accuracy": 0.7,
            "test_accuracy": 0.75, "status": status}


def test_table_verdict_and_plot_on_made_up_rows(tmp_path):
    demo = _load("demo")
    rows = [_row("scratch", 0, 0.80), _row("scratch", 1, 0.84), _row("simclr", 0, 0.90), _row("simclr", 1, 0.92)]
    md = demo.table(rows, 0.625)
    assert "| scratch | 0 | 48 + 6 | probe | 0.800 [0.750, 0.840] | 0.700 | 0.750 | ok |" in md
    assert "| **SimCLR-pretrained, mean** | 2 seeds | | | **0.910 ± 0.014** |" in md and "accuracy 0.625" in md
    assert demo.verdict(rows, 0.01).startswith("With 1% of the labels (54 labelled images per run, validation "
                                               "included), self-supervised pretraining helped: +0.090 AUC")
    flat = [_row("scratch", 0, 0.90), _row("simclr", 0, 0.905)]
    assert "made no clear difference (+0.005 AUC)" in demo.verdict(flat, 0.01)
    worse = [_row("scratch", 0, 0.90), _row("simclr", 0, 0.80)]
    assert "did not help: -0.100 AUC" in demo.verdict(worse, 0.01)
    failed = [_row("scratch", 0, 0.5, "failed: predicts one class for every image"), _row("simclr", 0, 0.9)]
    assert "no successful run" in demo.verdict(failed, 0.01)
    demo.plot(rows, tmp_path / "demo.png", 0.01)
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_unknown_argument_is_refused_and_covid_passes_the_rest_on():
    demo = _load("demo")
    with pytest.raises(SystemExit):
        demo.parse_args(["--label-fractoin", "0.1"])
    args = demo.parse_args(["--covid", "--image-size", "32"])
    assert args.covid and args.rest == ["--image-size", "32"]
    defaults = demo.parse_args([])
    assert defaults.fraction == 0.1 and defaults.seeds == [0, 1] and defaults.pretrain_steps == 150


def test_tiny_end_to_end_run(tmp_path, capsys):
    demo = _load("demo")
    out = tmp_path / "demo"
    rows = demo.main(["--out", str(out), "--seeds", "0", "--fraction", "0.01", "--pretrain-steps", "2", "--steps", "2",
                      "--n-boot", "20", "--workers", "0", "--skip-summary"])
    assert {r["init"] for r in rows} == {"scratch", "simclr"}
    assert all(r["selected_on"] == "val" and r["n_labels_used"] == 54 for r in rows)
    printed = capsys.readouterr().out
    assert "test AUC [95% CI]" in printed and "With 1% of the labels" in printed
    assert (out / "demo.png").is_file() and (out / "demo.md").is_file() and (out / "results.csv").is_file()
    assert not (out / "simclr_encoder.pt").exists()  # the 45 MB encoder is not left behind by default
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) < 5 * 2**20
