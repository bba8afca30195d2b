"""Pretraining datalists (``micle_pretrain`` / ``mae_pretrain`` bundles).

The shipped npz files by default, or a user CSV/JSON datalist.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["contrastive_datalist", "mixed_modality_sources"]

_MEDMNIST = {"xray": "pneumoniamnist", "us": "breastmnist"}


def _limit(items: Any, limit: int | None) -> Any:
    if limit is None:
        return items
    if int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    from torch.utils.data import Subset

    n = min(int(limit), len(items))
    return items[:n] if isinstance(items, list) else Subset(items, range(n))


def contrastive_datalist(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    split: str = "train",
    seed: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Pretraining items for SimCLR/MICLe.

    Without ``datalist``: the images of the ``split`` patients of ``<dataset_dir>/covid_cxr_256.npz``
    (patient-level 70/15/15 split, :func:`monai_ssl.data.patient_split` with ``seed``: the same split as the
    classification bundle, so test patients are never pretrained on). Items hold ``image`` (1, 256, 256) float
    arrays in [0, 1] and ``patient_id``. With ``datalist`` (CSV/JSON, columns ``image`` = file path and
    ``patient_id``): every row, ``image`` left as a path (the config's preprocessing loads it).

    Raises:
        FileNotFoundError: naming the config key ``dataset_dir`` or ``datalist`` and the missing path.
    """
    from . import load_covid_cxr, load_datalist, patient_split
    from ..utils.config import require_path

    if datalist is not None:
        require_path(datalist, "datalist", "file")
        items = load_datalist(datalist, required_keys=("image",))
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=("covid_cxr_256.npz",))
        all_items = load_covid_cxr(Path(dataset_dir) / "covid_cxr_256.npz")
        if split == "all":
            items = all_items
        else:
            splits = patient_split(all_items, fractions=(0.7, 0.15, 0.15), seed=seed)
            if split not in splits:
                raise ValueError(f"config key 'split': expected 'all' or one of {sorted(splits)}, got '{split}'")
            items = splits[split]
        items = [{"image": d["image"], "patient_id": d["patient_id"]} for d in items]
    if not items:
        raise ValueError(f"the pretraining datalist is empty (dataset_dir={dataset_dir}, datalist={datalist})")
    return _limit(items, limit)


def mixed_modality_sources(
    dataset_dir: str | os.PathLike,
    modalities: Sequence[str] = ("xray", "us"),
    datalist: str | os.PathLike | None = None,
    covid_split: str = "train",
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """``{modality: dataset}`` for :class:`monai_ssl.data.MixedModalityDataset`.

    Without ``datalist``: ``xray`` = PneumoniaMNIST train + the COVID CXR ``covid_split`` patients' images,
    ``us`` = BreastMNIST train (all from ``dataset_dir``). With ``datalist`` (CSV/JSON with ``image`` paths and an
    optional ``modality`` column, default ``xray``): one ``monai.data.Dataset`` per modality that loads each file
    with :class:`~monai_ssl.transforms.LoadMedicalImaged`. ``limit`` caps each source (smoke runs).

    Raises:
        FileNotFoundError: naming the config key and the missing path.
        ValueError: unknown or empty modalities.
    """
    from ..utils.config import require_path

    modalities = list(modalities)
    if not modalities:
        raise ValueError("config key 'modalities' is empty")
    if datalist is not None:
        from monai.data import Dataset

        from . import load_datalist
        from ..transforms import LoadMedicalImaged

        require_path(datalist, "datalist", "file")
        rows = load_datalist(datalist, required_keys=("image",))
        groups: dict[str, list] = {}
        for r in rows:
            groups.setdefault(str(r.get("modality") or "xray"), []).append({"image": r["image"]})
        missing = [m for m in modalities if m not in groups]
        if missing:
            raise ValueError(f"config key 'datalist': {datalist} has no rows of modalities {missing} "
                             f"(found {sorted(groups)}); set --modalities accordingly")
        return {m: Dataset(_limit(groups[m], limit), LoadMedicalImaged("image")) for m in modalities}

    from torch.utils.data import ConcatDataset

    from . import MedMNISTDataset

    unknown = [m for m in modalities if m not in _MEDMNIST]
    if unknown:
        raise ValueError(f"config key 'modalities': unknown {unknown}; the shipped data has {sorted(_MEDMNIST)}")
    files = [f"{_MEDMNIST[m]}.npz" for m in modalities] + (["covid_cxr_256.npz"] if "xray" in modalities else [])
    require_path(dataset_dir, "dataset_dir", "dir", files=files)
    sources: dict[str, Any] = {}
    for m in modalities:
        src: Any = MedMNISTDataset(dataset_dir, _MEDMNIST[m], "train")
        if m == "xray":
            covid = contrastive_datalist(dataset_dir, split=covid_split, seed=seed)
            src = ConcatDataset([_limit(src, limit), _limit(covid, limit)])
        sources[m] = _limit(src, limit)
    return sources
