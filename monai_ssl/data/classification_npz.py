"""Labelled ``train`` / ``val`` / ``test`` item lists from an ``.npz`` file in MedMNIST's layout (any MedMNIST 2D
flag and size, or a user's own npz), and the check of their labels against the bundle's ``task`` / ``num_classes``.

The npz layout (MedMNIST's): ``<split>_images`` ``(N, H, W)`` or ``(N, H, W, C)`` (uint8 0-255, or floats in
[0, 1]) and ``<split>_labels`` ``(N,)`` / ``(N, 1)`` class indices or ``(N, K)`` multi-hot findings, for each split
``train``, ``val``, ``test``; optional ``<split>_patient_ids`` ``(N,)`` group images of one patient (the bootstrap
and the label-fraction subsets then take whole patients; without them every image is its own patient).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["npz_classification_lists", "medmnist_classification_lists", "check_task_labels", "check_task_config",
           "to_unit_float"]

SPLITS = ("train", "val", "test")


def npz_classification_lists(path: str | os.PathLike, key: str = "npz_path") -> dict[str, list[dict[str, Any]]]:
    """``{"train", "val", "test"}`` lists of ``{"image": (C, H, W) array, "label", "patient_id"}`` from ``path``.

    ``image`` is a view into the file's array (uint8 or float; :func:`to_unit_float` converts the items kept);
    ``label`` is an ``int`` for ``(N,)`` / ``(N, 1)`` labels and a float32 multi-hot vector for ``(N, K > 1)``.

    Raises:
        FileNotFoundError / DataIntegrityError: naming the config ``key`` and the file (missing, unreadable,
            missing arrays).
        ValueError: images and labels of different lengths, images of an unsupported shape, non-integer labels.
    """
    from .paths import load_npz

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config key '{key}': {path} not found (an .npz with train/val/test_images and "
                                f"train/val/test_labels arrays)")
    required = [f"{s}_{a}" for s in SPLITS for a in ("images", "labels")]
    arrays = load_npz(path, required_keys=required)
    out = {}
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        ids = arrays.get(f"{split}_patient_ids")
        where = f"{path} ({split}_images {images.shape}, {split}_labels {labels.shape})"
        if len(images) != len(labels) or (ids is not None and len(ids) != len(images)):
            raise ValueError(f"{where}: images, labels and patient ids must have one entry per image")
        if images.ndim == 3:
            images = images[:, None]
        elif images.ndim == 4 and images.shape[-1] in (1, 3, 4):
            images = np.moveaxis(images, -1, 1)
        else:
            raise ValueError(f"{where}: images must be (N, H, W) or (N, H, W, C) with C in 1, 3, 4")
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise ValueError(f"{where}: labels must be integer class indices or 0/1 multi-hot findings")
        labels = labels.reshape(len(labels), -1)
        multi = labels.shape[1] > 1
        out[split] = [{"image": images[i],
                       "label": labels[i].astype(np.float32) if multi else int(labels[i, 0]),
                       "patient_id": str(ids[i]) if ids is not None else f"{split}_{i}"}
                      for i in range(len(images))]
    return out


def medmnist_classification_lists(dataset_dir: str | os.PathLike, flag: str, size: int = 28,
                                  download: bool = False) -> dict[str, list[dict[str, Any]]]:
    """:func:`npz_classification_lists` of the official MedMNIST file ``<dataset_dir>/<flag>[_<size>].npz``,
    downloaded when absent and ``download`` (needs internet), its MD5 checked against the published one."""
    from .medmnist import download_medmnist, medmnist_filename, medmnist_md5
    from .paths import verify_file

    name = medmnist_filename(flag, size)
    path = Path(dataset_dir) / name
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"config key 'dataset_dir': {path} not found; place the official {name} there "
                                    f"or add --download true (needs internet)")
        download_medmnist(flag, dataset_dir, size)
    verify_file(path, medmnist_md5(flag, size), "md5")
    return npz_classification_lists(path, key="dataset_dir")


def to_unit_float(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items with ``image`` as float32 in [0, 1] (uint8 / uint16 divided by their maximum code)."""
    out = []
    for d in items:
        img = np.asarray(d["image"])
        scale = float(np.iinfo(img.dtype).max) if img.dtype.kind in "ui" else 1.0
        out.append({**d, "image": img.astype(np.float32) / scale})
    return out


def _describe(values: set) -> str:
    shown = sorted(values)[:10]
    return ", ".join(str(v) for v in shown) + (" ..." if len(values) > 10 else "")


def check_task_labels(splits: Mapping[str, Sequence[Mapping[str, Any]]], task: str, num_classes: int,
                      src: str) -> None:
    """Refuse labels that do not fit ``task`` and ``num_classes``, saying which overrides fit them.

    binary: class indices 0/1 and ``num_classes`` 2 (two softmax outputs); multiclass: class indices in
    ``[0, num_classes)``; multilabel: 0/1 vectors of length ``num_classes``.

    Raises:
        ValueError: naming ``src``, what the labels hold, and the ``--task`` / ``--num_classes`` that fit them.
    """
    from ..metrics.classification import TASKS

    if task not in TASKS:
        raise ValueError(f"config key 'task' must be one of {TASKS}, got {task!r}")
    num_classes = int(num_classes)
    vectors, indices, lengths = False, set(), set()
    for items in splits.values():
        for d in items:
            label = np.asarray(d["label"])
            if label.size > 1:
                vectors = True
                lengths.add(label.size)
                indices.update(np.unique(label).tolist())
            else:
                indices.add(label.reshape(-1)[0].item())
    if vectors:
        k = max(lengths)
        if task != "multilabel":
            raise ValueError(f"{src}: the labels are multi-hot vectors of {k} findings, but task={task!r}; "
                             f"set --task multilabel --num_classes {k}")
        if lengths != {num_classes} or not indices <= {0, 1}:
            raise ValueError(f"{src}: multilabel labels must be 0/1 vectors of num_classes={num_classes} findings; "
                             f"found lengths {sorted(lengths)} and values {_describe(indices)}"
                             + (f"; set --num_classes {k}" if indices <= {0, 1} and len(lengths) == 1 else ""))
        return
    n = int(max(indices)) + 1 if indices else 0
    if task == "multilabel":
        raise ValueError(f"{src}: the labels are class indices ({_describe(indices)}), but task='multilabel' needs "
                         f"multi-hot vectors; set --task {'binary' if n <= 2 else 'multiclass'} --num_classes "
                         f"{max(n, 2)}")
    if min(indices, default=0) < 0:
        raise ValueError(f"{src}: labels must be class indices >= 0, found {_describe(indices)}")
    if task == "binary" and (n > 2 or num_classes != 2):
        fix = f"--task multiclass --num_classes {n}" if n > 2 else "--num_classes 2"
        raise ValueError(f"{src}: task='binary' needs labels 0/1 and num_classes=2; the labels hold "
                         f"{_describe(indices)} and num_classes={num_classes}: set {fix}")
    if n > num_classes:
        raise ValueError(f"{src}: the labels hold classes {_describe(indices)} ({n} classes) but "
                         f"num_classes={num_classes}; set --num_classes {n}")


def check_task_config(task: str, num_classes: int, class_names: Sequence[str], channels: int) -> None:
    """The bundle's ``task``, ``num_classes``, ``class_names`` and ``channels`` agree (checked before any data is
    read).

    Raises:
        ValueError: naming the config key, the values and the fix.
    """
    from ..metrics.classification import TASKS

    if task not in TASKS:
        raise ValueError(f"config key 'task' must be one of {TASKS}, got {task!r}")
    if task == "binary" and int(num_classes) != 2:
        raise ValueError(f"config key 'num_classes': task='binary' has 2 outputs (softmax), got num_classes="
                         f"{num_classes}; for more classes set --task multiclass")
    if int(num_classes) < 2 and task == "multiclass":
        raise ValueError(f"config key 'num_classes': multiclass needs at least 2 classes, got {num_classes}")
    if int(num_classes) < 1:
        raise ValueError(f"config key 'num_classes' must be a positive integer, got {num_classes}")
    if len(class_names) != int(num_classes):
        raise ValueError(f"config key 'class_names': {len(class_names)} names {list(class_names)} for num_classes="
                         f"{num_classes} outputs; pass one name per output, e.g. --class_names "
                         f"\"{[f'class{i}' for i in range(int(num_classes))]}\"")
    if int(channels) not in (1, 3):
        raise ValueError(f"config key 'channels' must be 1 (grey) or 3 (colour RGB), got {channels}")
