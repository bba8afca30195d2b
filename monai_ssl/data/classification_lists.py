"""Labelled patient-level ``train`` / ``val`` / ``test`` lists for image classification (the ``classification``
bundle): the shipped COVID chest X-rays by default, or a user CSV/JSON datalist."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["classification_datalists"]

_KEEP = ("image", "label", "patient_id")


def _labelled(items: Iterable[Mapping]) -> list[dict[str, Any]]:
    """Items with a usable label (``-1`` = unlabelled "todo" finding and missing labels dropped)."""
    out = []
    for d in items:
        label = d.get("label")
        if label is None or int(label) < 0:
            continue
        out.append({k: d[k] for k in _KEEP if k in d} | {"label": int(label)})
    return out


def _stratified_head(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first ``n`` items taking the classes in turn (a smoke run's tiny split keeps both classes)."""
    by_class: dict[int, list] = {}
    for d in items:
        by_class.setdefault(d["label"], []).append(d)
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

    Args:
        dataset_dir: folder holding ``covid_cxr_256.npz``.
        datalist: optional table replacing the npz.
        label_fraction: share of the training labels used, in (0, 1].
        seed: split seed.
        limit: keep only the first N items of each split (smoke runs).
        val_fraction: share of the validation labels used (None: ``label_fraction``).
        num_classes: the config's ``num_classes``: every ``label`` of ``datalist`` must be an integer in
            0..num_classes-1 (or -1, unlabelled), checked when the table is read.

    Returns:
        ``{"train", "val", "test"}`` item lists (``image``, ``label``, ``patient_id``).

    Raises:
        FileNotFoundError: naming the config key (``dataset_dir`` / ``datalist``) and the missing path.
        ValueError: a bad ``label_fraction`` or ``data_limit``, an empty split, a ``datalist`` label that is not a
            class index (naming the file, row, column, value and the allowed values), a ``split`` column that is
            partly empty or holds an unknown value, a patient in two splits, or an image in two rows (all named).
    """
    from . import fixed_split, label_fraction_subset, load_covid_cxr, load_datalist, patient_split, require_unique
    from ..utils.config import require_path

    if not 0 < float(label_fraction) <= 1:
        raise ValueError(f"config key 'label_fraction' must be in (0, 1], got {label_fraction}")
    val_fraction = label_fraction if val_fraction is None else val_fraction
    if not 0 < float(val_fraction) <= 1:
        raise ValueError(f"config key 'val_label_fraction' must be in (0, 1], got {val_fraction}")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    if datalist is not None:
        require_path(datalist, "datalist", "file")
        items = load_datalist(datalist, required_keys=("image", "label"), num_classes=num_classes)
        src = f"datalist {datalist}"
        require_unique(items, "image", src)
        by_split = fixed_split(items, src)
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=("covid_cxr_256.npz",))
        items = load_covid_cxr(Path(dataset_dir) / "covid_cxr_256.npz")
        src = f"dataset_dir {dataset_dir}"
        by_split = None
    if by_split is not None:
        splits = patient_split(by_split["train"], fractions=(1.0, 0.0, 0.0), label_fraction=label_fraction,
                               seed=seed)
        splits = {"train": splits["labelled"], "val": by_split["val"], "test": by_split["test"]}
    else:
        splits = patient_split(items, fractions=(0.7, 0.15, 0.15), label_fraction=label_fraction, seed=seed)
        splits = {"train": splits["labelled"], "val": splits["val"], "test": splits["test"]}
    out = {}
    for name, part in splits.items():
        part = _labelled(part)
        if name == "val" and float(val_fraction) < 1:
            part = label_fraction_subset(part, float(val_fraction), seed=seed)
        if limit is not None:
            part = _stratified_head(part, int(limit))
        if not part:
            raise ValueError(f"the '{name}' split of {src} holds no labelled item (label_fraction={label_fraction})")
        out[name] = part
    return out
