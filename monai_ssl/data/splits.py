"""Patient-level data splits and label-fraction subsets (no patient ever appears in two splits)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = ["group_by_patient", "patient_split", "label_fraction_subset", "fixed_split", "require_unique"]


def _blank(value: Any) -> bool:
    """An empty cell: absent/None, blank text, or a float NaN (as pandas writes empty cells)."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and value != value)


def group_by_patient(datalist: Sequence[dict], patient_key: str = "patient_id") -> dict[str, list[int]]:
    """Map each patient id to the indices of its items, in datalist order.

    Items without ``patient_key`` (absent, None, an empty string or a float NaN, as pandas writes empty cells) are
    their own patient (id ``"__item_<index>"``), so image-level datasets such as MedMNIST work unchanged and
    unlabelled rows are never pooled into one pseudo-patient.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(datalist):
        pid = item.get(patient_key)
        groups[f"__item_{i}" if _blank(pid) else str(pid)].append(i)
    return dict(groups)


def _patient_strata(
    datalist: Sequence[dict], groups: dict[str, list[int]], label_key: str | None
) -> dict[Hashable, list[str]]:
    """Patients grouped by their majority label (ties -> smallest label); one stratum when labels are absent."""
    strata: dict[Hashable, list[str]] = defaultdict(list)
    for pid, idx in groups.items():
        labels = [_hashable_label(datalist[i].get(label_key)) for i in idx] if label_key else [None]
        counts = Counter(labels)
        top = max(counts.values())
        stratum = min((lab for lab, c in counts.items() if c == top), key=repr)
        strata[stratum].append(pid)
    return strata


def _hashable_label(label: Any) -> Hashable:
    if label is None:
        return None
    arr = np.asarray(label)
    if arr.size == 1:
        return arr.reshape(-1)[0].item()
    return tuple(arr.reshape(-1).tolist())


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` patients into len(fractions) counts by largest remainder."""
    raw = [f * n for f in fractions]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda j: raw[j] - counts[j], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def patient_split(
    datalist: Sequence[dict],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    label_fraction: float = 1.0,
    seed: int = 0,
    patient_key: str = "patient_id",
    label_key: str | None = "label",
    split_names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, list[dict]]:
    """Split a datalist at patient level, stratified by each patient's majority label.

    Args:
        datalist: list of item dictionaries.
        fractions: share of patients per split (summing to 1), in the order of ``split_names``.
        label_fraction: share of the training *images* kept as the labelled subset ``"labelled"`` (patients are
            taken whole, per stratum, in a seeded order, so subsets are nested: the 1 % subset is inside the 10 %
            one for the same seed). At least one patient per stratum is kept when ``label_fraction > 0``.
        seed: seed of the patient shuffle; the same seed gives the same split.
        patient_key: item key of the patient id; items without it count as single-image patients.
        label_key: item key of the label used for stratification, or None for no stratification. Labels may be
            absent on some items; those count as their own stratum.
        split_names: names of the splits.

    Returns:
        ``{name: items for name in split_names}`` plus ``"labelled"``, the label-fraction subset of the first split.

    Raises:
        ValueError: fractions of the wrong length, negative, or not summing to 1; ``label_fraction`` outside [0, 1].
    """
    if len(fractions) != len(split_names):
        raise ValueError(f"fractions {tuple(fractions)} and split_names {tuple(split_names)} differ in length")
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    if not 0.0 <= label_fraction <= 1.0:
        raise ValueError(f"label_fraction must be in [0, 1], got {label_fraction}")
    rng = np.random.default_rng(seed)
    groups = group_by_patient(datalist, patient_key)
    strata = _patient_strata(datalist, groups, label_key)
    assigned: dict[str, list[str]] = {name: [] for name in split_names}
    for stratum in sorted(strata, key=repr):
        pids = sorted(strata[stratum])
        rng.shuffle(pids)
        start = 0
        for name, count in zip(split_names, _allocate(len(pids), fractions)):
            assigned[name].extend(pids[start : start + count])
            start += count
    out = {name: [datalist[i] for pid in sorted(assigned[name]) for i in groups[pid]] for name in split_names}
    first = split_names[0]
    out["labelled"] = label_fraction_subset(
        out[first], label_fraction, seed=seed, patient_key=patient_key, label_key=label_key
    )
    return out


def label_fraction_subset(
    datalist: Sequence[dict],
    fraction: float,
    seed: int = 0,
    patient_key: str = "patient_id",
    label_key: str | None = "label",
) -> list[dict]:
    """Keep about ``fraction`` of the images, taking whole patients, stratified by label, nested across fractions.

    For each stratum the patients are shuffled once with ``seed`` and taken in that order until the stratum's
    image count reaches ``ceil(fraction * n_images)``, so a smaller fraction always gives a subset of a larger one.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if fraction == 1.0:
        return list(datalist)
    if fraction == 0.0:
        return []
    rng = np.random.default_rng(seed + 1_000_003)
    groups = group_by_patient(datalist, patient_key)
    strata = _patient_strata(datalist, groups, label_key)
    chosen: list[str] = []
    for stratum in sorted(strata, key=repr):
        pids = sorted(strata[stratum])
        rng.shuffle(pids)
        target = math.ceil(fraction * sum(len(groups[p]) for p in pids))
        total = 0
        for pid in pids:
            if total >= target:
                break
            chosen.append(pid)
            total += len(groups[pid])
    keep = sorted(i for pid in chosen for i in groups[pid])
    return [datalist[i] for i in keep]


def _rows(indices: Sequence[int], limit: int = 10) -> str:
    """``"rows 2, 5, 9"`` (1-based, the first ``limit``)."""
    shown = ", ".join(str(i + 1) for i in indices[:limit])
    more = f" (+{len(indices) - limit} more)" if len(indices) > limit else ""
    return f"row{'s' if len(indices) > 1 else ''} {shown}{more}"


def fixed_split(
    datalist: Sequence[dict],
    source: str = "datalist",
    split_key: str = "split",
    patient_key: str = "patient_id",
    split_names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, list[dict]] | None:
    """The split a datalist fixes in its ``split_key`` column, checked; None when no row has a split.

    Split values are matched case-insensitively (``Train``, `` TEST ``). Rows are numbered from 1 in datalist order
    (the table's data rows for :func:`monai_ssl.data.load_datalist`). Nothing is dropped or re-drawn silently.

    Args:
        datalist: list of item dictionaries.
        source: what to call the datalist in errors (e.g. its file).
        split_key: item key of the split name.
        patient_key: item key of the patient id (items without one are single-image patients, as in
            :func:`group_by_patient`).
        split_names: the allowed split names (lower case).

    Returns:
        ``{name: items for name in split_names}`` (datalist order), or None when every row's split is empty.

    Raises:
        ValueError: some rows have a split and others not, a split value is not one of ``split_names``, or a
            patient has rows in two splits (the rows, values, patients and splits are named).
    """
    if all(_blank(d.get(split_key)) for d in datalist):
        return None
    empty = [i for i, d in enumerate(datalist) if _blank(d.get(split_key))]
    if empty:
        raise ValueError(
            f"{source}: {len(empty)} of {len(datalist)} row(s) have no '{split_key}' ({_rows(empty)}) while the others "
            f"do: give every row one of {list(split_names)}, or leave the column empty for a random patient split"
        )
    names = [str(d[split_key]).strip().lower() for d in datalist]
    unknown = [i for i, name in enumerate(names) if name not in split_names]
    if unknown:
        shown = "; ".join(f"row {i + 1}: {datalist[i][split_key]!r}" for i in unknown[:10])
        raise ValueError(f"{source}: {len(unknown)} row(s) with an unknown '{split_key}' (allowed: "
                         f"{', '.join(split_names)}, in any case): {shown}")
    mixed = []
    for pid, idx in group_by_patient(datalist, patient_key).items():
        splits = sorted({names[i] for i in idx}, key=list(split_names).index)
        if len(splits) > 1:
            mixed.append(f"patient '{pid}' in {' and '.join(splits)} ({_rows(idx)})")
    if mixed:
        raise ValueError(f"{source}: {len(mixed)} patient(s) in more than one split (their images would be trained "
                         f"and tested on): {'; '.join(mixed[:10])}")
    return {name: [d for d, n in zip(datalist, names) if n == name] for name in split_names}


def require_unique(datalist: Sequence[dict], key: str = "image", source: str = "datalist") -> None:
    """Refuse a datalist that lists the same ``key`` value (an image path) in more than one row.

    Raises:
        ValueError: naming each repeated value and its rows (numbered from 1).
    """
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for i, d in enumerate(datalist):
        value = d.get(key)
        if value is not None:
            rows[tuple(value) if isinstance(value, list) else value].append(i)
    repeated = [(value, idx) for value, idx in rows.items() if len(idx) > 1]
    if repeated:
        shown = "; ".join(f"{value!r} in {_rows(idx)}" for value, idx in repeated[:10])
        raise ValueError(f"{source}: {len(repeated)} '{key}' value(s) listed more than once (duplicated rows): {shown}")
