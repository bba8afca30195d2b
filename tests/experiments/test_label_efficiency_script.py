"""Smoke runs of ``experiments/label_efficiency.py`` on the shipped data (both datasets, every init): the script
pretrains, fine-tunes, writes results.csv / summary.md / the plot, and a rerun resumes instead of retraining.
The ``--arch vit`` (scratch / MAE) smoke run, the init-vs-network argparse errors and the COVID ``--test-split
val+test`` checks run in-process in ``test_label_efficiency_vit.py``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "label_efficiency.py"
TINY = ["--fractions", "0.1", "1.0", "--seeds", "0", "--steps", "2", "--pretrain-steps", "2", "--batch-size", "8",
        "--pretrain-batch-size", "8", "--threads", "1"]


def _run(args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("dataset, inits", [("pneumoniamnist", {"scratch", "simclr"}),
                                            ("covid", {"scratch", "simclr", "micle"})])
def test_script_runs_every_init_and_resumes(tmp_path, dataset, inits):
    out = tmp_path / dataset
    _run(["--dataset", dataset, *TINY, "--out", str(out)])
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["init"] for r in rows} == inits
    assert len(rows) == 2 * len(inits)  # 2 fractions x 1 seed
    assert all(0.0 <= float(r["test_auc"]) <= 1.0 for r in rows)
    for init in inits - {"scratch"}:
        assert (out / f"{init}_encoder.pt").is_file() and "pretraining" in (out / f"{init}_pretrain.txt").read_text()
    summary = (out / "summary.md").read_text()
    assert ("COVID CXR" if dataset == "covid" else "PneumoniaMNIST") in summary and "| init |" in summary
    assert (out / "label_efficiency.png").stat().st_size > 0
    # a rerun keeps every row and neither pretrains nor fine-tunes again
    again = _run(["--dataset", dataset, *TINY, "--out", str(out)])
    assert "pretraining:" not in again and "[label-efficiency]" not in again, again[-2000:]
    with open(out / "results.csv") as f:
        assert list(csv.DictReader(f)) == rows


def test_micle_needs_patient_ids():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--inits", "micle", "--out", "/nonexistent"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "micle needs patient ids" in proc.stderr
