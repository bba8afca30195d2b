"""Refuse images outside a model's declared input domain: DICOM header checks and a flat-pattern check.

A classifier gives a confident answer for any array it is fed (a leg radiograph, a test pattern). These
transforms raise :class:`OutOfDomainError` for an input the model was not trained on, so that an inference run
can report it (``status`` ``out_of_domain: ...``) instead of scoring it.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = [
    "DICOM_DOMAIN_TAGS",
    "CheckDICOMDomainD",
    "CheckDICOMDomainDict",
    "CheckDICOMDomaind",
    "OutOfDomainError",
    "RejectFlatImageD",
    "RejectFlatImageDict",
    "RejectFlatImaged",
    "check_dicom_domain",
]

DICOM_DOMAIN_TAGS = ("Modality", "BodyPartExamined", "ViewPosition", "PhotometricInterpretation")


class OutOfDomainError(ValueError):
    """The input is readable but outside what the model was trained on (the message says which tag or property
    and what the model expects)."""


def _norm(value: Any) -> str:
    return str(value).strip().upper()


def check_dicom_domain(path: str | Path, domain: Mapping[str, Sequence[str]]) -> str:
    """Compare the header of the DICOM file ``path`` with ``domain`` (tag -> accepted values, case-insensitive).

    Only the header is read (no pixel data). A tag the file does not carry is not checked; a file that is not a
    readable DICOM is not judged here (the loader reports it).

    Returns:
        What was checked, for a report column: ``"checked"``, ``"partial: no BodyPartExamined, ViewPosition"``
        (tags absent from the header), ``"unchecked: no DICOM header"`` (not a DICOM file) or
        ``"unchecked: header unreadable"``.

    Raises:
        OutOfDomainError: ``"BodyPartExamined LEG, model trained on CHEST"`` for the first tag whose value is not
            accepted.
    """
    import pydicom

    from .io import _is_dicom

    path = Path(path)
    try:
        if not path.is_file() or not _is_dicom(path):
            return "unchecked: no DICOM header"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001  corrupt or cut short: the loader names the reason
        return "unchecked: header unreadable"
    absent = []
    for tag, accepted in domain.items():
        if not accepted:
            continue
        value = ds.get(tag)
        if value is None or str(value).strip() == "":
            absent.append(tag)
            continue
        if _norm(value) not in {_norm(a) for a in accepted}:
            raise OutOfDomainError(f"{tag} {str(value).strip()}, model trained on {', '.join(map(str, accepted))}")
    return f"partial: no {', '.join(absent)}" if absent else "checked"


class CheckDICOMDomaind(MapTransform):
    """Check the DICOM header of the file at ``data[key]`` against ``domain`` before it is loaded
    (:func:`check_dicom_domain`) and store what was checked in ``data[domain_key]``.

    Args:
        keys: the key holding the file path.
        domain: DICOM tag -> accepted values, e.g. ``{"Modality": ["CR", "DX"], "BodyPartExamined": ["CHEST"]}``;
            an empty list (or a tag left out) accepts anything.
        domain_key: where the result (``"checked"``, ``"partial: no ..."``, ``"unchecked: no DICOM header"``)
            is stored.

    Raises:
        OutOfDomainError: a tag's value is not accepted (``"BodyPartExamined LEG, model trained on CHEST"``).
    """

    def __init__(self, keys: KeysCollection = "image", domain: Mapping[str, Sequence[str]] | None = None,
                 domain_key: str = "domain") -> None:
        super().__init__(keys)
        unknown = set(domain or {}) - set(DICOM_DOMAIN_TAGS)
        if unknown:
            raise ValueError(f"domain: unsupported DICOM tag(s) {sorted(unknown)}; supported: {DICOM_DOMAIN_TAGS}")
        self.domain = {k: list(v or []) for k, v in (domain or {}).items()}
        self.domain_key = domain_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.domain_key] = check_dicom_domain(d[key], self.domain)
        return d


class RejectFlatImaged(MapTransform):
    """Refuse an image made of a few flat grey levels (a test pattern such as SMPTE colour bars, a blank or
    solid-filled frame): a radiograph, CT or MR image has a continuous range of values.

    Applied to the loaded image before windowing and resizing (which blend levels). The ``levels`` most frequent
    values of a real image cover a minority of its pixels (at most 56 % on the shipped 8-bit chest X-ray and
    MedMNIST images and pydicom's CR/CT/MR samples); a colour-bar pattern is covered almost entirely.
    Not detected: a photograph, a smooth gradient, noise, or a radiograph of another body part without a DICOM
    header.

    Args:
        keys: keys of the loaded images (any shape).
        levels: how many of the most frequent values are counted.
        max_fraction: refuse when they cover at least this share of the pixels.

    Raises:
        OutOfDomainError: ``"flat synthetic-looking image: 16 grey levels cover 99 % of its pixels (a test
            pattern or blank frame?)"``.
    """

    def __init__(self, keys: KeysCollection = "image", levels: int = 16, max_fraction: float = 0.9) -> None:
        super().__init__(keys)
        self.levels, self.max_fraction = int(levels), float(max_fraction)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            _, counts = np.unique(x.ravel(), return_counts=True)
            share = float(np.sort(counts)[::-1][: self.levels].sum()) / max(x.size, 1)
            if share >= self.max_fraction:
                raise OutOfDomainError(f"flat synthetic-looking image: {min(self.levels, counts.size)} grey levels "
                                       f"cover {share:.0%} of its pixels (a test pattern or blank frame?)")
        return d


CheckDICOMDomainD = CheckDICOMDomainDict = CheckDICOMDomaind
RejectFlatImageD = RejectFlatImageDict = RejectFlatImaged
