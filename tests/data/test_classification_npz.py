"""Classification data routes (MedMNIST flag, user npz, multi-label datalist) and the labels' check against
``task`` / ``num_classes``: RetinaMNIST-style grades under the default binary task, a forgotten num_classes."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import DATA_DIR
from monai_ssl.data import check_task_config, check_task_labels, classification_datalists, npz_classification_lists


def _npz(path, labels_fn, rgb=False, n=(12, 6, 6), ids=False):
    """Shipped PneumoniaMNIST images with labels from ``labels_fn(images, real_labels)`` (synthetic labels)."""
    src = np.load(DATA_DIR / "pneumoniamnist.npz")
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        imgs = src[f"{split}_images"][:k]
        arrays[f"{split}_images"] = np.repeat(imgs[..., None], 3, -1) if rgb else imgs
        arrays[f"{split}_labels"] = labels_fn(imgs, src[f"{split}_labels"][:k])
        if ids:
            arrays[f"{split}_patient_ids"] = np.array([f"{split}-p{i // 2}" for i in range(k)])
    np.savez(path, **arrays)
    return path


def _grades(imgs, _):
    mean = imgs.reshape(len(imgs), -1).mean(1)
    return np.digitize(mean, np.quantile(mean, [0.2, 0.4, 0.6, 0.8]))[:, None].astype(np.uint8)


def _two_findings(imgs, real):
    mean = imgs.reshape(len(imgs), -1).mean(1)
    return np.stack([real[:, 0], mean > np.median(mean)], 1).astype(np.uint8)


def test_npz_route_keeps_colour_grades_and_patients(tmp_path):
    path = _npz(tmp_path / "grades.npz", _grades, rgb=True, ids=True)
    raw = npz_classification_lists(path)
    assert raw["train"][0]["image"].shape == (3, 28, 28) and raw["train"][0]["patient_id"] == "train-p0"
    lists = classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multiclass", num_classes=5)
    assert [len(lists[s]) for s in ("train", "val", "test")] == [12, 6, 6]
    img = lists["test"][0]["image"]
    assert img.dtype == np.float32 and img.shape == (3, 28, 28) and 0 <= img.min() and img.max() <= 1
    assert {d["label"] for d in lists["train"]} == set(range(5))
    half = classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multiclass", num_classes=5,
                                    label_fraction=0.5)
    assert len(half["train"]) < 12 and len({d["patient_id"] for d in half["train"]}) * 2 == len(half["train"])


def test_grades_under_a_binary_task_name_the_fix(tmp_path):
    """The user's two mistakes with RetinaMNIST-style grades: the default binary task, a forgotten num_classes."""
    path = _npz(tmp_path / "grades.npz", _grades)
    with pytest.raises(ValueError, match=r"task='binary' needs labels 0/1.*set --task multiclass --num_classes 5"):
        classification_datalists(tmp_path, dataset="npz", npz_path=path)
    with pytest.raises(ValueError, match=r"\(5 classes\) but num_classes=3; set --num_classes 5"):
        classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multiclass", num_classes=3)
    with pytest.raises(ValueError, match="set --task multiclass --num_classes 5"):
        classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multilabel", num_classes=5)


def test_multilabel_npz_and_datalist(tmp_path):
    path = _npz(tmp_path / "ml.npz", _two_findings)
    lists = classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multilabel", num_classes=2)
    label = lists["train"][0]["label"]
    assert label.dtype == np.float32 and label.shape == (2,)
    msg = "multi-hot vectors of 2 findings, but task='multiclass'; set --task multilabel"
    with pytest.raises(ValueError, match=msg):
        classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multiclass", num_classes=2)
    with pytest.raises(ValueError, match="num_classes=3 findings.*set --num_classes 2"):
        classification_datalists(tmp_path, dataset="npz", npz_path=path, task="multilabel", num_classes=3)
    # a CSV datalist with the findings of each row in its label cell
    rows = ["image,label,patient_id,split"]
    for i, (split, lab) in enumerate([("train", "1;0"), ("train", "0;1"), ("val", "1;1"), ("test", "[0, 1]")]):
        (tmp_path / f"{i}.png").write_bytes(b"x")
        rows.append(f"{tmp_path / f'{i}.png'},\"{lab}\",p{i},{split}")
    table = tmp_path / "ml.csv"
    table.write_text("\n".join(rows) + "\n")
    lists = classification_datalists(tmp_path, datalist=table, task="multilabel", num_classes=2)
    assert lists["test"][0]["label"].tolist() == [0.0, 1.0]
    table.write_text(table.read_text().replace("1;1", "2;1"))
    with pytest.raises(ValueError, match=r"row 3: label '2;1' is not a multi-hot list"):
        classification_datalists(tmp_path, datalist=table, task="multilabel", num_classes=2)


def test_medmnist_route_on_the_shipped_file(data_dir, tmp_path):
    lists = classification_datalists(data_dir, dataset="medmnist", flag="breastmnist", limit=4)
    assert [len(v) for v in lists.values()] == [4, 4, 4] and lists["val"][0]["image"].shape == (1, 28, 28)
    with pytest.raises(ValueError, match="config key 'flag'"):
        classification_datalists(data_dir, dataset="medmnist", flag="retina")
    with pytest.raises(FileNotFoundError, match=r"retinamnist_64.npz not found.*--download true"):
        classification_datalists(tmp_path, dataset="medmnist", flag="retinamnist", medmnist_size=64)
    with pytest.raises(ValueError, match="config key 'dataset'"):
        classification_datalists(data_dir, dataset="mnist")


def test_task_config_checks():
    check_task_config("multiclass", 5, [f"g{i}" for i in range(5)], 3)
    with pytest.raises(ValueError, match=r"config key 'class_names': 2 names .* num_classes=5"):
        check_task_config("multiclass", 5, ["other", "covid"], 1)
    with pytest.raises(ValueError, match="config key 'num_classes': task='binary' has 2 outputs"):
        check_task_config("binary", 5, list("abcde"), 1)
    with pytest.raises(ValueError, match="config key 'channels'"):
        check_task_config("binary", 2, ["a", "b"], 4)
    with pytest.raises(ValueError, match="config key 'task'"):
        check_task_config("regression", 2, ["a", "b"], 1)
    check_task_labels({"train": [{"label": 0}, {"label": 1}]}, "binary", 2, "x")
