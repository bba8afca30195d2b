"""The files an inference run is given: a folder, one file, a list, or a ``.txt`` list of paths, and where each
output goes so that inputs sharing a name never share an output file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..utils.config import require_path

__all__ = ["IMAGE_SUFFIXES", "VOLUME_SUFFIXES", "list_image_files", "list_volumes", "output_roots"]

IMAGE_SUFFIXES = (".dcm", ".dicom", ".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm", ".dicom")


def list_image_files(input_path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Image files to predict: a folder, one file, a list of files, or a ``.txt`` file listing one path per line.

    A folder is searched recursively and every file in it is listed (hidden ``.*`` files and folders aside), so
    that an inference report has a row for each: DICOM files without an extension (``.IMA``, none) are images,
    and a file that is not an image gets its reason in the report rather than being passed over in silence.

    Raises:
        FileNotFoundError: naming the config key ``input_path`` and the missing path(s).
        ValueError: a folder with no image file (no :data:`IMAGE_SUFFIXES` name, no DICOM content).
    """

    if isinstance(input_path, (str, os.PathLike)):
        p = Path(require_path(input_path, "input_path"))
        if p.is_dir():
            from ..transforms.io import _is_dicom

            files = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not any(f.name.lower().endswith(IMAGE_SUFFIXES) or _is_dicom(f) for f in files):
                raise ValueError(f"config key 'input_path': no image files ({', '.join(IMAGE_SUFFIXES)} or DICOM) "
                                 f"in {p}")
            return [str(f) for f in files]
        if p.suffix.lower() == ".txt":
            return list_image_files([ln.strip() for ln in p.read_text().splitlines() if ln.strip()])
        return [str(p)]
    files = [str(f) for f in input_path]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"config key 'input_path': file(s) not found: {missing}")
    if not files:
        raise ValueError("config key 'input_path' is an empty list")
    return files


def list_volumes(input_path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Inputs to segment: a NIfTI/DICOM file, a DICOM series folder (one volume), a folder of NIfTI files, a
    ``.txt`` list or a list of any of these.

    Raises:
        FileNotFoundError / ValueError: naming the config key ``input_path`` and the path.
    """

    if not isinstance(input_path, (str, os.PathLike)):
        items = [str(p) for p in input_path]
        if not items:
            raise ValueError("config key 'input_path' is an empty list")
        return [v for p in items for v in list_volumes(p)]
    p = Path(require_path(input_path, "input_path"))
    if p.is_file():
        if p.suffix.lower() == ".txt":
            return list_volumes([ln.strip() for ln in p.read_text().splitlines() if ln.strip()])
        return [str(p)]
    files = [f for f in sorted(p.iterdir()) if f.is_file()]
    volumes = [str(f) for f in files if f.name.lower().endswith(VOLUME_SUFFIXES) and not f.name.lower().endswith(
        (".dcm", ".dicom"))]
    if volumes:
        return volumes
    from ..transforms.io import _is_dicom

    if any(_is_dicom(f) for f in files):
        return [str(p)]  # one DICOM series
    raise ValueError(f"config key 'input_path': no NIfTI/MHA/NRRD volume or DICOM series in {p}")


def _output_stem(path: str) -> str:
    """The name MONAI's ``SaveImage`` derives from an input: the file name without its extension (and ``.gz``)."""
    name, ext = os.path.splitext(os.path.basename(os.path.normpath(path)))
    return os.path.splitext(name)[0] if ext == ".gz" else name


def output_roots(files: Sequence[str]) -> list[str]:
    """For each input, the folder its output path is taken relative to (MONAI ``SaveImage``'s ``data_root_dir``):
    none (flat output) unless another input has the same name, then as many parent folders as make the outputs
    distinct (``a/scan.nii.gz`` and ``b/scan.nii.gz`` -> ``a/scan_seg.nii.gz``, ``b/scan_seg.nii.gz``).

    Raises:
        ValueError: an input listed twice, or two inputs no folder tells apart (``scan.nii`` and ``scan.nii.gz``
            in one folder), naming both.
    """
    paths = [os.path.abspath(f) for f in files]
    roots = [""] * len(paths)  # "": flat, <output_dir>/<name>_<postfix>.nii.gz
    by_stem: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_stem.setdefault(_output_stem(p), []).append(i)
    for stem, idx in by_stem.items():
        if len(idx) < 2:
            continue
        for i in idx:
            for j in idx:
                if j > i and (paths[i] == paths[j] or os.path.dirname(paths[i]) == os.path.dirname(paths[j])):
                    raise ValueError(f"config key 'input_path': {files[i]} and {files[j]} would both be written as "
                                     f"{stem}_<postfix>.nii.gz" + (" (the same input listed twice)" if paths[i] ==
                                                                    paths[j] else "; rename one of them"))
        parts = [os.path.dirname(paths[i]).split(os.sep) for i in idx]
        depth = 1
        while len({tuple(q[len(q) - depth:]) for q in parts}) < len(parts):
            depth += 1
        for i, q in zip(idx, parts):
            roots[i] = os.sep.join(q[:len(q) - depth]) or os.sep
    return roots
