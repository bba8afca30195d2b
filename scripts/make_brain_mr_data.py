"""Derive ``data/brain_mr_t1_2mm.nii.gz`` + ``data/brain_mr_tissue_2mm.nii.gz`` from the MNI ICBM152 2009a template.

Source: the ICBM152 2009a (symmetric, non-linear) T1 template and its grey / white matter probability maps as they
ship inside the ``nilearn`` wheel (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``,
1 mm, 197 x 233 x 189, uint8). nilearn is *not* a dependency of monai-ssl: only the derived files ship. To rebuild::

    pip download nilearn --no-deps -d /tmp/nl && cd /tmp/nl && unzip -q nilearn-*.whl 'nilearn/datasets/data/*'
    python scripts/make_brain_mr_data.py --source /tmp/nl/nilearn/datasets/data --out data

Derivation (deterministic, numpy only):

1. the three 1 mm volumes are cropped to an even size (196 x 232 x 188) and 2 x 2 x 2 block-averaged to 2 mm
   (98 x 116 x 94); the affine's voxel size doubles and its origin moves to the centre of the first block;
2. tissue labels at 2 mm: ``argmax(1 - p_gm - p_wm, p_gm, p_wm)`` on the averaged probabilities, i.e.
   0 = background (CSF and everything outside the brain), 1 = grey matter, 2 = white matter;
3. both volumes are cropped to the bounding box of the labelled voxels plus a 2-voxel margin;
4. the T1 is rescaled to uint8 (0-255, rounding the block means), the labels stored as uint8; gzip NIfTI-1.

The script prints the files' SHA-256, which ``monai_ssl.data.brain_mr`` checks on load (update both together).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GM = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
WM = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
IMAGE_NAME = "brain_mr_t1_2mm.nii.gz"
LABEL_NAME = "brain_mr_tissue_2mm.nii.gz"
MARGIN = 2


def block_mean(volume: np.ndarray, factor: int = 2) -> np.ndarray:
    """Mean over non-overlapping ``factor``^3 blocks (the volume is cropped to a multiple of ``factor`` first)."""
    x, y, z = (s - s % factor for s in volume.shape)
    v = volume[:x, :y, :z].astype(np.float64)
    return v.reshape(x // factor, factor, y // factor, factor, z // factor, factor).mean(axis=(1, 3, 5))


def derive(source: Path, factor: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t1 uint8, labels uint8, affine)`` at ``factor`` mm from the 1 mm nilearn files in ``source``."""
    import nibabel as nib

    imgs = {}
    for key, name in (("t1", T1), ("gm", GM), ("wm", WM)):
        path = source / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: pass --source <unzipped nilearn wheel>/nilearn/datasets/data")
        imgs[key] = nib.load(str(path))
    affine = imgs["t1"].affine
    for key in ("gm", "wm"):
        if imgs[key].shape != imgs["t1"].shape or not np.allclose(imgs[key].affine, affine):
            raise ValueError(f"{key} map is not on the T1 grid")
    t1 = block_mean(np.asarray(imgs["t1"].dataobj), factor)
    gm = block_mean(np.asarray(imgs["gm"].dataobj), factor) / 255.0
    wm = block_mean(np.asarray(imgs["wm"].dataobj), factor) / 255.0
    labels = np.argmax(np.stack([1.0 - gm - wm, gm, wm]), axis=0).astype(np.uint8)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * factor
    new_affine[:3, 3] = affine[:3, :3] @ np.full(3, (factor - 1) / 2.0) + affine[:3, 3]
    nz = np.argwhere(labels > 0)
    lo = np.maximum(nz.min(0) - MARGIN, 0)
    hi = np.minimum(nz.max(0) + 1 + MARGIN, labels.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    new_affine[:3, 3] = new_affine[:3, :3] @ lo + new_affine[:3, 3]
    t1 = t1[box]
    t1 = np.clip(np.round(255.0 * (t1 - t1.min()) / max(t1.max() - t1.min(), 1e-6)), 0, 255).astype(np.uint8)
    return t1, labels[box], new_affine


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    import nibabel as nib

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="folder holding the nilearn ICBM152 files")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args(argv)
    t1, labels, affine = derive(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, arr, intent in ((IMAGE_NAME, t1, "T1w"), (LABEL_NAME, labels, "label")):
        img = nib.Nifti1Image(arr, affine)
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = f"ICBM152 2009a sym {intent} 2mm (monai-ssl)".encode()[:79]
        img.set_qform(affine, code=4)  # MNI152
        img.set_sform(affine, code=4)
        path = args.out / name
        # gzip without a timestamp, so reruns give the same bytes
        import gzip

        raw = img.to_bytes()
        with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(raw)
        print(f"{path}: shape {arr.shape}, {path.stat().st_size} bytes, sha256 {sha256(path)}")
    counts = np.bincount(labels.ravel(), minlength=3)
    print(f"labels: background {counts[0]}, grey matter {counts[1]}, white matter {counts[2]} voxels")


if __name__ == "__main__":
    main()
