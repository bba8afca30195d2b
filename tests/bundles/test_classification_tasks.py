"""bundles/classification beyond binary, by overrides only: a RetinaMNIST-style 5-grade colour task and a
CheXpert-style multi-label task (two findings) train, evaluate (bootstrap CIs) and infer; the data are SYNTHETIC
labels on real images (shipped PneumoniaMNIST: grades = quintile of the mean intensity, random colour tints;
findings = the real pneumonia label and "brighter than the median")."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from .conftest import REPO, error_chain, make_workflow, run_workflow

NAME = "classification"
TINY = {"image_size": 32, "batch_size": 4, "max_epochs": 1, "epoch_length": 2, "data_limit": 8, "progress_bar": False}
GRADES = [f"grade{i}" for i in range(5)]
FINDINGS = ["pneumonia", "bright"]


def _make_npz(path, kind: str, n=(24, 12, 12), seed=0):
    src = np.load(REPO / "data" / "pneumoniamnist.npz")
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        imgs, real = src[f"{split}_images"][:k], src[f"{split}_labels"][:k, 0]
        mean = imgs.reshape(k, -1).mean(1)
        if kind == "grades":
            grade = np.digitize(mean, np.quantile(mean, [0.2, 0.4, 0.6, 0.8]))
            tint = rng.uniform(0.6, 1.0, size=(k, 1, 1, 3))
            arrays[f"{split}_images"] = (imgs[..., None] * tint).astype(np.uint8)  # (N, H, W, 3), as RetinaMNIST
            arrays[f"{split}_labels"] = grade[:, None].astype(np.uint8)
        else:
            arrays[f"{split}_images"] = imgs
            arrays[f"{split}_labels"] = np.stack([real, mean > np.median(mean)], 1).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


def _png_folder(folder, images):
    from PIL import Image

    folder.mkdir()
    for i, img in enumerate(images[:3]):
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _train_evaluate_infer(tmp_path, kind, overrides):
    arrays = _make_npz(tmp_path / f"{kind}.npz", kind)
    ov = {"dataset": "npz", "npz_path": str(tmp_path / f"{kind}.npz"), **overrides}
    out = tmp_path / "out"
    train = run_workflow(NAME, output_dir=str(out), **TINY, **ov)
    run_workflow(NAME, "train", "evaluate", output_dir=str(out), n_boot=50, eval_dir=str(tmp_path / "eval"),
                 **TINY, **ov)
    folder = _png_folder(tmp_path / "inputs", arrays["test_images"])
    infer = run_workflow(NAME, "train", "inference", output_dir=str(out), input_path=str(folder),
                         output_csv=str(tmp_path / "pred.csv"), image_size=TINY["image_size"], progress_bar=False,
                         **ov)
    saved = json.loads((tmp_path / "eval" / "metrics_test.json").read_text())
    return train, saved, _read_csv(tmp_path / "eval" / "predictions_test.csv"), _read_csv(tmp_path / "pred.csv"), infer


def test_five_grade_colour_task(tmp_path):
    train, saved, preds, rows, _ = _train_evaluate_infer(
        tmp_path, "grades", {"task": "multiclass", "num_classes": 5, "channels": 3, "class_names": GRADES})
    net = train.parser.get_parsed_content("network_def")
    assert net.conv1.in_channels == 3 and net.fc.out_features == 5
    batch = next(iter(train.parser.get_parsed_content("train#dataloader")))
    assert batch["image"].shape[1] == 3 and not np.allclose(batch["image"][:, 0], batch["image"][:, 1])  # colour kept
    report = saved["report"]
    assert saved["task"] == "multiclass" and report["n"]["value"] == 8
    assert {"auc", "accuracy", "balanced_accuracy", "f1", "kappa"} | {f"auc_{g}" for g in GRADES} <= set(report)
    for k, v in report.items():
        if k != "n" and np.isfinite(v["value"]):
            assert v["low"] <= v["value"] <= v["high"], k
    assert len(preds) == 8 and {r["label"] for r in preds} <= {str(i) for i in range(5)}
    assert abs(sum(float(preds[0][f"prob_{g}"]) for g in GRADES) - 1) < 1e-4
    assert len(rows) == 3
    for r in rows:
        assert abs(sum(float(r[f"prob_{g}"]) for g in GRADES) - 1) < 1e-4 and r["pred"] in GRADES


def test_multilabel_task(tmp_path):
    train, saved, preds, rows, _ = _train_evaluate_infer(
        tmp_path, "findings", {"task": "multilabel", "num_classes": 2, "class_names": FINDINGS})
    assert isinstance(train.parser.get_parsed_content("loss"), __import__("torch").nn.BCEWithLogitsLoss)
    report = saved["report"]
    assert saved["task"] == "multilabel"
    assert set(report) == {"auc", "accuracy", "balanced_accuracy", "f1", "auc_pneumonia", "auc_bright", "n"}
    per_finding = [report[f"auc_{f}"]["value"] for f in FINDINGS]
    assert report["auc"]["value"] == pytest.approx(np.nanmean(per_finding))
    assert report["auc"]["low"] <= report["auc"]["value"] <= report["auc"]["high"]
    assert {r["label"] for r in preds} <= {"", "pneumonia", "bright", "pneumonia;bright"}
    assert len(rows) == 3
    for r in rows:  # independent sigmoid probabilities; pred lists the findings at >= 0.5
        probs = {f: float(r[f"prob_{f}"]) for f in FINDINGS}
        assert all(0 <= p <= 1 for p in probs.values())
        assert r["pred"] == (";".join(f for f in FINDINGS if probs[f] >= 0.5) or "none")


def test_grades_with_the_default_task_or_num_classes_say_what_to_set(tmp_path):
    _make_npz(tmp_path / "grades.npz", "grades")
    base = {"dataset": "npz", "npz_path": str(tmp_path / "grades.npz"), "output_dir": str(tmp_path / "o"), **TINY}
    for overrides, fix in [({}, "set --task multiclass --num_classes 5"),  # task defaults to binary at 2 classes
                           ({"task": "multiclass"}, "set --num_classes 5")]:
        wf = make_workflow(NAME, **base, **overrides)
        wf.initialize()
        with pytest.raises(Exception) as err:
            wf.run()
        assert any(fix in str(e) for e in error_chain(err.value)), fix
    wf = make_workflow(NAME, **base, task="multiclass", num_classes=5, class_names=["other", "covid"])
    with pytest.raises(Exception) as err:
        wf.initialize()
    assert any("config key 'class_names': 2 names" in str(e) for e in error_chain(err.value))


def test_medmnist_route_by_overrides(tmp_path):
    """``--dataset medmnist --flag breastmnist`` reads the shipped official file (MD5 checked) with its own splits."""
    wf = make_workflow(NAME, dataset="medmnist", flag="breastmnist", output_dir=str(tmp_path), **TINY)
    wf.initialize()
    lists = wf.parser.get_parsed_content("datalists")
    assert {k: len(v) for k, v in lists.items()} == {"train": 8, "val": 8, "test": 8}
    item = wf.parser.get_parsed_content("train#dataset")[0]
    assert item["image"].shape == (1, TINY["image_size"], TINY["image_size"]) and item["label"] in (0, 1)
    wf = make_workflow(NAME, dataset="medmnist", flag="retinamnist", output_dir=str(tmp_path), **TINY)
    wf.initialize()
    with pytest.raises(Exception) as err:
        wf.parser.get_parsed_content("datalists")
    assert any("retinamnist.npz not found" in str(e) and "--download true" in str(e) for e in error_chain(err.value))
