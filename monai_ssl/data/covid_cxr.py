"""The multi-instance COVID-19 chest X-ray set shipped as ``covid_cxr_256.npz`` (559 images, 329 patients).

Derived from ieee8023/covid-chestxray-dataset (Cohen et al., arXiv:2006.11988); see ``data/README.md`` for
provenance, per-image licences (mostly non-commercial: research use only) and how it was built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .paths import DataIntegrityError, default_data_dir, load_npz, verify_file

__all__ = ["COVID_CXR_SHA256", "COVID_CXR_FILENAME", "load_covid_cxr", "covid_label"]

COVID_CXR_FILENAME = "covid_cxr_256.npz"
COVID_CXR_SHA256 = "6079f886a8b2a236dfb1f68191ac546ef3e2b1a58bed5ebf20efabf8d2968309"
_KEYS = ("images", "patient_id", "finding", "view", "offset", "filename", "license")
UNLABELLED = -1


def covid_label(finding: str) -> int:
    """Binary label of a ``finding`` string: 1 if it names COVID-19, 0 otherwise, -1 for ``"todo"`` (unlabelled)."""
    if finding.strip().lower() == "todo":
        return UNLABELLED
    return int("COVID-19" in finding)


def load_covid_cxr(
    path: str | os.PathLike | None = None,
    verify: bool = True,
    label_fn: Callable[[str], int] = covid_label,
    licenses: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Load ``covid_cxr_256.npz`` as a MONAI datalist, one dictionary per image.

    Items: ``image`` float32 array (1, 256, 256) in [0, 1]; ``patient_id`` (str); ``label`` from
    ``label_fn(finding)`` (default: 1 = COVID-19, 0 = other finding, -1 = not yet labelled upstream);
    ``finding``, ``view`` (PA / AP / AP Supine), ``offset`` (days, NaN when unknown, or None), ``filename``,
    ``license`` and ``index`` (row in the file).

    Args:
        path: the ``.npz`` file; defaults to ``<default_data_dir()>/covid_cxr_256.npz``.
        verify: check the file's SHA-256 first (the file was built for this project, so there is no upstream
            MD5; the digest is the one recorded in ``data/README.md``).
        label_fn: maps a finding string to the integer ``label``.
        licenses: keep only images whose per-image licence is in this list (``""`` = no licence stated).

    Raises:
        FileNotFoundError: the file is absent.
        DataIntegrityError: checksum mismatch, truncated file, or missing arrays.
    """
    path = Path(path) if path is not None else default_data_dir() / COVID_CXR_FILENAME
    if verify:
        verify_file(path, COVID_CXR_SHA256, "sha256")
    arrays = load_npz(path, required_keys=_KEYS)
    images = arrays["images"]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataIntegrityError(f"{path}: 'images' should be uint8 (N, H, W), got {images.dtype} {images.shape}")
    n = len(images)
    for key in _KEYS[1:]:
        if len(arrays[key]) != n:
            raise DataIntegrityError(f"{path}: '{key}' has {len(arrays[key])} rows, 'images' has {n}")
    keep = set(licenses) if licenses is not None else None
    datalist = []
    for i in range(n):
        lic = str(arrays["license"][i])
        if keep is not None and lic not in keep:
            continue
        offset = float(arrays["offset"][i])
        finding = str(arrays["finding"][i])
        datalist.append(
            {
                "image": (images[i][None].astype(np.float32) / 255.0),
                "patient_id": str(arrays["patient_id"][i]),
                "label": label_fn(finding),
                "finding": finding,
                "view": str(arrays["view"][i]),
                "offset": None if math.isnan(offset) else offset,
                "filename": str(arrays["filename"][i]),
                "license": lic,
                "index": i,
            }
        )
    return datalist
