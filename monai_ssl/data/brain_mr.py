"""The shipped brain MR tissue-segmentation pair: ICBM152 2009a T1 + grey / white matter labels at 2 mm.

``brain_mr_t1_2mm.nii.gz`` (T1 template, uint8) and ``brain_mr_tissue_2mm.nii.gz`` (0 = background incl. CSF,
1 = grey matter, 2 = white matter), both 76 x 94 x 79 voxels in RAS+ MNI space. Derived by
``scripts/make_brain_mr_data.py`` from the MNI ICBM152 2009a template as shipped in the nilearn wheel; licence,
citation and derivation in ``data/README.md``. A single (template) subject: a demo and test volume, not a benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .paths import DataIntegrityError, default_data_dir, verify_file

__all__ = ["BRAIN_MR_CLASSES", "BRAIN_MR_FILES", "BRAIN_MR_SHA256", "brain_mr_files", "load_brain_mr"]

BRAIN_MR_FILES = {"image": "brain_mr_t1_2mm.nii.gz", "label": "brain_mr_tissue_2mm.nii.gz"}
BRAIN_MR_SHA256 = {
    "image": "6b51b53378ee48b2b7aad8cc8a3c8d8d2d2bf48da14240241d98ca25a0f5129f",
    "label": "f2c09f174b3c4c221cf60d74ea7d29365ed1be9ff40d138e23be626ed115bbed",
}
BRAIN_MR_CLASSES = ("background", "grey_matter", "white_matter")


def brain_mr_files(data_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[str, str]:
    """Paths of the shipped image and label files (``{"image": ..., "label": ...}``), SHA-256 checked.

    Args:
        data_dir: folder holding the files; default :func:`monai_ssl.data.default_data_dir`.
        verify: check each file's SHA-256 (the digests recorded in ``data/README.md``).

    Raises:
        FileNotFoundError: a file is absent (the message names it).
        DataIntegrityError: a checksum mismatch.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    out = {}
    for key, name in BRAIN_MR_FILES.items():
        path = root / name
        if verify:
            verify_file(path, BRAIN_MR_SHA256[key], "sha256")
        elif not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        out[key] = str(path)
    return out


def load_brain_mr(data_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[str, Any]:
    """Load the shipped T1 volume and its tissue labels as channel-first arrays.

    Returns:
        ``{"image": float32 (1, X, Y, Z) in [0, 1], "label": int64 (1, X, Y, Z) in {0, 1, 2}, "affine": (4, 4)
        float64 voxel -> RAS+ mm, "class_names": BRAIN_MR_CLASSES, "files": {"image", "label"}}``.

    Raises:
        FileNotFoundError: a file is absent.
        DataIntegrityError: checksum mismatch, unreadable file, or image and labels on different grids.
    """
    import nibabel as nib

    files = brain_mr_files(data_dir, verify)
    vols = {}
    for key, path in files.items():
        try:
            vols[key] = nib.load(path)
            data = np.asarray(vols[key].dataobj)
        except Exception as e:  # nibabel raises several types on truncated / corrupt files
            raise DataIntegrityError(f"{path}: cannot read NIfTI ({type(e).__name__}: {e})") from e
        if data.ndim != 3:
            raise DataIntegrityError(f"{path}: expected a 3D volume, got shape {data.shape}")
        vols[key] = (data, vols[key].affine)
    (img, affine), (lab, lab_affine) = vols["image"], vols["label"]
    if img.shape != lab.shape or not np.allclose(affine, lab_affine):
        raise DataIntegrityError(f"{files['image']} and {files['label']} are not on the same voxel grid")
    if lab.max() >= len(BRAIN_MR_CLASSES):
        raise DataIntegrityError(f"{files['label']}: label {int(lab.max())} outside {BRAIN_MR_CLASSES}")
    return {
        "image": (img[None].astype(np.float32) / 255.0),
        "label": lab[None].astype(np.int64),
        "affine": np.asarray(affine, dtype=np.float64),
        "class_names": BRAIN_MR_CLASSES,
        "files": files,
    }
