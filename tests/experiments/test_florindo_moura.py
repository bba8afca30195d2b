"""``experiments/florindo_moura.py``: the whole pipeline (member pretraining through the classification and
mae_pretrain bundles, fine-tuning, test scoring, the bundle's ensemble) at smoke size, and its seed-averaged CI."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import florindo_moura  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_smoke_run_writes_val_selected_rows_and_summary(tmp_path):
    rows = florindo_moura.main(["--smoke", "--members", "A", "B", "--data-limit", "16", "--out", str(tmp_path / "r"),
                                "--work", str(tmp_path / "w")])
    with open(tmp_path / "r" / "results.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert [r["model"] for r in saved] == ["A", "B", "A+B"] == [r["model"] for r in rows]
    assert all(r["selected_on"] == "val" for r in saved)
    # target labels used = training + validation labels; member A also used its source set's labels
    assert all(int(r["n_labels_used"]) == int(r["n_train_labels"]) + int(r["n_val_labels"]) > 0 for r in saved)
    assert int(saved[0]["source_labels"]) > 0 and int(saved[1]["source_labels"]) == 0
    for r in saved:
        assert float(r["test_auc_low"]) <= float(r["test_auc"]) <= float(r["test_auc_high"])
        assert (r["failed"] != "") == (int(r["predicted_classes"]) <= 1)
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "not ImageNet" in summary and "| A+B |" in summary and "224" in summary
    assert (tmp_path / "w" / "mae_entropy_encoder.pt").is_file()


def test_member_a_from_an_imagenet_file(tmp_path):
    """With an ImageNet ConvNeXt file (here the timm fixture's layout and weights), member A loads it by its kind."""
    import torch

    from tests.networks.pretrained_fixtures import load_fixture, source_checkpoint

    fixture = load_fixture("timm_convnext_mini")
    torch.save(source_checkpoint(fixture), tmp_path / "in1k.pth")
    arch = ["--depths", *map(str, fixture["meta"]["depths"]), "--dims", *map(str, fixture["meta"]["dims"])]
    rows = florindo_moura.main(["--smoke", "--members", "A", *arch, "--data-limit", "16", "--out", str(tmp_path / "r"),
                                "--work", str(tmp_path / "w"), "--member-a-ckpt", str(tmp_path / "in1k.pth"),
                                "--member-a-kind", "timm_convnext"])
    assert [r["model"] for r in rows] == ["A"] and rows[0]["pretraining"].startswith("ImageNet (in1k.pth")
    assert rows[0]["source_labels"] == 0 and not (tmp_path / "w" / "pretrain_A").exists()
    assert "Member A: ImageNet" in (tmp_path / "r" / "summary.md").read_text()


def test_seed_mean_ci_and_paired_difference():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    perfect, noisy = y.astype(float), rng.random(40)
    point, low, high = florindo_moura.seed_mean_ci([perfect, perfect], y, n_boot=50)
    assert point == low == high == 1.0
    diff, low, high = florindo_moura.seed_mean_ci([noisy], y, n_boot=50, minus=[noisy])
    assert diff == low == high == 0.0  # same predictions on the same resamples
    diff, low, high = florindo_moura.seed_mean_ci([perfect], y, n_boot=50, minus=[noisy])
    assert 0 < low <= diff <= high
