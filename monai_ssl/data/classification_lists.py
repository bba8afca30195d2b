"""Labelled patient-level ``train`` / ``val`` / ``test`` lists for image classification (the ``classification``
bundle): the shipped COVID chest X-rays by default, a MedMNIST 2D set, a user npz, or a user CSV/JSON datalist."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["classification_datalists", "DATASETS"]

_KEEP = ("image", "label", "patient_id")
DATASETS = ("covid_cxr", "medmnist", "npz")


def _labelled(items: Iterable[Mapping]) -> list[dict[str, Any]]:
    """Items with a usable label (``-1`` = unlabelled "todo" finding and missing labels dropped)."""
    out = []
    for d in items:
        label = d.get("label")
        if label is None:
            continue
        if np.asarray(label).size > 1:  # a multi-hot vector of findings
            out.append({k: d[k] for k in _KEEP if k in d})
            continue
        if int(label) < 0:
            continue
        out.append({k: d[k] for k in _KEEP if k in d} | {"label": int(label)})
    return out


def _stratified_head(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first ``n`` items taking the classes in turn (a smoke run's tiny split keeps both classes)."""
    from .splits import _hashable_label

    by_class: dict[Any, list] = {}
    for d in items:
        by_class.setdefault(_hashable_label(d["label"]), []).append(d)
    queues = [by_class[k] for k in sorted(by_class)]
    out: list[dict[str, Any]] = []
    while len(out) < min(n, len(items)):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def classification_datalists(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    label_fraction: float = 1.0,
    seed: int = 0,
    limit: int | None = None,
    val_fraction: float | None = None,
    num_classes: int = 2,
    task: str = "binary",
    dataset: str = "covid_cxr",
    flag: str | None = None,
    medmnist_size: int = 28,
    npz_path: str | os.PathLike | None = None,
    download: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Patient-level ``train`` / ``val`` / ``test`` lists of labelled items.

    A run with ``label_fraction`` f chooses its checkpoint on validation labels, which count as labels used: by
    default the validation list is the same fraction f of the validation split (``val_fraction``; whole patients,
    stratified, nested), so a "10 % labels" run uses about 10 % of the train + validation labels.

    Without ``datalist``: every image of ``<dataset_dir>/covid_cxr_256.npz`` is split 70/15/15 by patient with
    :func:`monai_ssl.data.patient_split` (``seed``), the same split the ``micle_pretrain`` bundle draws its
    ``train`` patients from, so test patients are never pretrained on. ``train`` is the split's ``labelled``
    subset (``label_fraction`` of the training images, whole patients, nested across fractions). Label 1 = the
    finding contains COVID-19, 0 = other finding; unlabelled items (-1) are dropped after splitting. With
    ``datalist`` (CSV/JSON with ``image`` paths, ``label`` and ``patient_id``; an optional ``split`` column with
    train/val/test, in any case, fixes the split): the same, on its rows, with ``image`` left as a path. A ``split``
    column must be filled on every row or on none (:func:`monai_ssl.data.fixed_split`), each patient in one split,
    and no image listed twice (:func:`monai_ssl.data.require_unique`).

    ``dataset="medmnist"`` reads the official ``<dataset_dir>/<flag>[_<size>].npz`` (any 2D flag of
    :data:`monai_ssl.data.MEDMNIST_INFO`, 28/64/128/224 px; MD5 checked, downloaded with ``download``) and
    ``dataset="npz"`` a user's ``npz_path`` in the same layout (:mod:`monai_ssl.data.classification_npz`): their
    own train/val/test splits, ``train`` cut to ``label_fraction`` by patient; images (C, H, W) float32 in [0, 1],
    colour kept. Every route's labels are checked against ``task`` and ``num_classes`` when read
    (:func:`monai_ssl.data.check_task_labels`); a multi-label datalist gives each row's findings as a 0/1 list in
    its ``label`` cell (JSON list, or ``;``/``,``/space-separated).

    Args:
        dataset_dir: folder holding ``covid_cxr_256.npz``.
        datalist: optional table replacing the npz.
        label_fraction: share of the training labels used, in (0, 1].
        seed: split seed.
        limit: keep only the first N items of each split (smoke runs).
        val_fraction: share of the validation labels used (None: ``label_fraction``).
        num_classes: the config's ``num_classes``: every ``label`` of ``datalist`` must be an integer in
            0..num_classes-1 (or -1, unlabelled), checked when the table is read.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` (the labels must fit it).
        dataset: ``"covid_cxr"`` (default), ``"medmnist"`` or ``"npz"`` (ignored when ``datalist`` is given).
        flag: the MedMNIST flag (``dataset="medmnist"``), e.g. ``"retinamnist"``.
        medmnist_size: MedMNIST image size, 28, 64, 128 or 224.
        npz_path: the npz of ``dataset="npz"``.
        download: fetch a missing MedMNIST file (needs internet).

    Returns:
        ``{"train", "val", "test"}`` item lists (``image``, ``label``, ``patient_id``).

    Raises:
        FileNotFoundError: naming the config key (``dataset_dir`` / ``datalist``) and the missing path.
        ValueError: a bad ``label_fraction`` or ``data_limit``, an empty split, a ``datalist`` label that is not a
            class index (naming the file, row, column, value and the allowed values), a ``split`` column that is
            partly empty or holds an unknown value, a patient in two splits, or an image in two rows (all named);
            labels that do not fit ``task`` / ``num_classes`` (saying which ``--task`` / ``--num_classes`` fit them),
            an unknown ``dataset`` or MedMNIST ``flag``, a missing ``npz_path``.
        DataIntegrityError: a MedMNIST file whose MD5 differs from the published one, an unreadable npz.
    """
    from . import fixed_split, label_fraction_subset, load_covid_cxr, patient_split, require_unique
    from .classification_npz import (check_task_labels, medmnist_classification_lists, npz_classification_lists,
                                     to_unit_float)
    from ..utils.config import require_path

    if not 0 < float(label_fraction) <= 1:
        raise ValueError(f"config key 'label_fraction' must be in (0, 1], got {label_fraction}")
    val_fraction = label_fraction if val_fraction is None else val_fraction
    if not 0 < float(val_fraction) <= 1:
        raise ValueError(f"config key 'val_label_fraction' must be in (0, 1], got {val_fraction}")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    if dataset not in DATASETS:
        raise ValueError(f"config key 'dataset' must be one of {DATASETS}, got {dataset!r}")
    by_split = None
    if datalist is not None:
        require_path(datalist, "datalist", "file")
        items = _read_datalist(datalist, task, num_classes)
        src = f"datalist {datalist}"
        require_unique(items, "image", src)
        by_split = fixed_split(items, src)
    elif dataset == "medmnist":
        from .medmnist import MEDMNIST_INFO

        if flag not in MEDMNIST_INFO:
            raise ValueError(f"config key 'flag': MedMNIST 2D flag expected with --dataset medmnist, one of "
                             f"{sorted(MEDMNIST_INFO)}; got {flag!r}")
        by_split = medmnist_classification_lists(dataset_dir, flag, medmnist_size, download)
        src = f"MedMNIST {flag} ({medmnist_size} px) in dataset_dir {dataset_dir}"
    elif dataset == "npz":
        if npz_path is None:
            raise ValueError("config key 'npz_path': an .npz file is needed with --dataset npz")
        by_split = npz_classification_lists(npz_path)
        src = f"npz_path {npz_path}"
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=("covid_cxr_256.npz",))
        items = load_covid_cxr(Path(dataset_dir) / "covid_cxr_256.npz")
        src = f"dataset_dir {dataset_dir}"
    if by_split is not None:
        splits = patient_split(by_split["train"], fractions=(1.0, 0.0, 0.0), label_fraction=label_fraction,
                               seed=seed)
        splits = {"train": splits["labelled"], "val": by_split["val"], "test": by_split["test"]}
    else:
        splits = patient_split(items, fractions=(0.7, 0.15, 0.15), label_fraction=label_fraction, seed=seed)
        splits = {"train": splits["labelled"], "val": splits["val"], "test": splits["test"]}
    check_task_labels({k: _labelled(v) for k, v in splits.items()}, task, num_classes, src)
    out = {}
    for name, part in splits.items():
        part = _labelled(part)
        if name == "val" and float(val_fraction) < 1:
            part = label_fraction_subset(part, float(val_fraction), seed=seed)
        if limit is not None:
            part = _stratified_head(part, int(limit))
        if not part:
            raise ValueError(f"the '{name}' split of {src} holds no labelled item (label_fraction={label_fraction})")
        out[name] = to_unit_float(part) if datalist is None and dataset != "covid_cxr" else part
    return out


def _read_datalist(path: str | os.PathLike, task: str, num_classes: int) -> list[dict[str, Any]]:
    """The table's rows; class-index labels checked against ``num_classes`` (multi-label: parsed to 0/1 vectors)."""
    from . import load_datalist

    if task == "multilabel":
        items = load_datalist(path, required_keys=("image", "label"))
        return [{**d, "label": _multi_hot(d["label"], path, i)} for i, d in enumerate(items)]
    try:
        return load_datalist(path, required_keys=("image", "label"), num_classes=num_classes)
    except ValueError as e:
        if "not a class of num_classes" not in str(e):
            raise
        raise ValueError(f"{e}. If these labels are right, set --num_classes to the number of classes (and --task "
                         f"multiclass); multi-hot findings need --task multilabel") from None


def _multi_hot(value: Any, path: Any, row: int) -> np.ndarray | None:
    """A multi-label cell (a list, or 0/1 values in JSON-list, ``;``, ``,`` or space-separated text) as float32."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().strip("[]")
        parts = [p for p in text.replace(";", " ").replace(",", " ").split()]
    else:
        parts = list(np.asarray(value).reshape(-1))
    try:
        arr = np.asarray([float(p) for p in parts], dtype=np.float32)
    except ValueError:
        arr = None
    if arr is None or arr.size < 2 or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{path}: row {row + 1}: label {value!r} is not a multi-hot list of 0/1 findings (task "
                         f"'multilabel'; e.g. \"0;1\")")
    return arr
