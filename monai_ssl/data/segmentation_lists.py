"""Train / val / test items cut from MR volumes for segmentation (the ``segmentation`` bundle): the shipped
ICBM152 T1 + tissue labels by default, or a user datalist of volumes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["block_split", "segmentation_datalists"]

SPLITS = ("train", "val", "test")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # MONAI default, passed explicitly (its default changes)
_PATTERN = ("train", "train", "train", "val", "test")  # block index % 5 -> split


def block_split(n: int, block_size: int, gap: int = 1) -> dict[str, list[int]]:
    """Deterministic split of ``n`` slice indices into interleaved blocks of ``block_size`` slices.

    Block ``b`` goes to ``("train", "train", "train", "val", "test")[b % 5]``; training slices closer than
    ``gap`` slices to a val/test slice are dropped, so no evaluated slice has a training neighbour.

    Returns:
        ``{"train", "val", "test"}`` sorted index lists.

    Raises:
        ValueError: ``block_size`` < 1 or ``gap`` < 0.
    """
    if int(block_size) < 1 or int(gap) < 0:
        raise ValueError(f"config key 'block_size' must be >= 1 and 'gap' >= 0, got {block_size}, {gap}")
    split = [_PATTERN[(i // int(block_size)) % len(_PATTERN)] for i in range(n)]
    held = [i for i in range(n) if split[i] != "train"]
    out: dict[str, list[int]] = {s: [i for i in range(n) if split[i] == s] for s in SPLITS}
    out["train"] = [i for i in out["train"] if all(abs(i - j) > gap for j in held)]
    return out


def _load_volumes(dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None) -> list[dict[str, Any]]:
    """``[{"image": (1, X, Y, Z), "label": (1, X, Y, Z), "name", "split"}]``: RAS-oriented, MR-preset intensities."""
    from monai.transforms import Compose, EnsureTyped, Orientationd

    from .datalist import load_datalist
    from .brain_mr import BRAIN_MR_FILES, brain_mr_files
    from ..transforms import LoadMedicalImaged, MRPresetd
    from ..utils.config import require_path

    if datalist is not None:
        require_path(datalist, "datalist", "file")
        rows = load_datalist(datalist, required_keys=("image", "label"), path_keys=("image", "label"))
        src = f"datalist {datalist}"
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=tuple(BRAIN_MR_FILES.values()))
        rows = [brain_mr_files(dataset_dir)]
        src = f"dataset_dir {dataset_dir}"
    prep = Compose([
        LoadMedicalImaged(["image", "label"]),
        Orientationd(["image", "label"], axcodes="RAS", labels=_RAS_LABELS),
        MRPresetd("image", load=False, spatial_dims=3),
        EnsureTyped(["image", "label"], track_meta=False),
    ])
    volumes = []
    for row in rows:
        d = prep({"image": str(row["image"]), "label": str(row["label"])})
        img, lab = d["image"].float(), d["label"].float()
        if img.shape != lab.shape or img.ndim != 4:
            raise ValueError(f"{src}: image {row['image']} {tuple(img.shape)} and label {row['label']} "
                             f"{tuple(lab.shape)} must be channel-first 3D volumes on the same grid")
        split = str(row.get("split") or "") or None
        if split is not None and split not in SPLITS:
            raise ValueError(f"{src}: split '{split}' of {row['image']} is not one of {SPLITS}")
        volumes.append({"image": img, "label": lab, "name": Path(str(row["image"])).name, "split": split})
    return volumes


def _runs(indices: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def segmentation_datalists(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    spatial_dims: int = 2,
    block_size: int = 8,
    gap: int = 1,
    limit: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Train / val / test items cut from MR volumes along the axial (last, I->S) axis.

    Without ``datalist``: the shipped ICBM152 T1 + tissue labels (``<dataset_dir>/brain_mr_*_2mm.nii.gz``,
    SHA-256 checked). With ``datalist`` (CSV/JSON, columns ``image`` and ``label`` = NIfTI/DICOM-series paths,
    optional ``split`` = train/val/test for the whole volume): those volumes. Volumes are reoriented to RAS and
    scaled with :class:`~monai_ssl.transforms.MRPresetd` (0.5-99.5 percentiles -> [0, 1]), exactly as inference
    does. Volumes without a ``split`` are cut by :func:`block_split` (``block_size`` slices per block).

    Args:
        dataset_dir: folder holding the shipped files.
        datalist: optional table of volumes.
        spatial_dims: 2 = one item per axial slice holding any foreground label; 3 = one item per contiguous slab
            of a split (use a large ``block_size``, e.g. a fifth of the volume, so slabs are thick).
        block_size: slices per block of the split.
        gap: training slices dropped next to val/test blocks.
        limit: keep the first N items of each split (smoke runs; 2D picks them spread over the split).

    Returns:
        ``{"train", "val", "test"}`` lists of ``{"image": (1, X, Y[, Z]) float, "label": same shape (class index
        as float), "source": file name, "z": first slice index}``.

    Raises:
        FileNotFoundError: naming the config key (``dataset_dir`` / ``datalist``) and the path.
        ValueError: bad ``spatial_dims`` / ``data_limit``, or an empty split.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"config key 'spatial_dims' must be 2 or 3, got {spatial_dims}")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for vol in _load_volumes(dataset_dir, datalist):
        img, lab, n = vol["image"], vol["label"], vol["image"].shape[-1]
        parts = {s: (list(range(n)) if s == vol["split"] else []) for s in SPLITS} if vol["split"] else \
            block_split(n, block_size, gap)
        for s, idx in parts.items():
            if spatial_dims == 2:
                out[s] += [{"image": img[..., z].clone(), "label": lab[..., z].clone(), "source": vol["name"], "z": z}
                           for z in idx if bool((lab[..., z] > 0).any())]
            else:
                out[s] += [{"image": img[..., r[0]:r[-1] + 1].clone(), "label": lab[..., r[0]:r[-1] + 1].clone(),
                            "source": vol["name"], "z": r[0]} for r in _runs(idx)]
    for s in SPLITS:
        if limit is not None and len(out[s]) > int(limit):
            step = len(out[s]) / int(limit)
            out[s] = [out[s][int(i * step)] for i in range(int(limit))]
        if not out[s]:
            raise ValueError(f"the '{s}' split is empty (dataset_dir={dataset_dir}, datalist={datalist}, "
                             f"block_size={block_size}); lower block_size or give a 'split' column")
    return out
