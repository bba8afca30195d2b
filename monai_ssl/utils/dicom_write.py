"""Write grey-scale images as DICOM files (test archives, benchmarks, demos from the shipped npz images)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_dicom", "write_dicom_archive"]


def write_dicom(path: str | os.PathLike, pixels: np.ndarray, patient_id: str, study_uid: str, series_uid: str,
                modality: str = "DX", instance_number: int = 1, spacing: Sequence[float] = (0.5, 0.5)) -> Path:
    """Write one uncompressed MONOCHROME2 DICOM of a 2D array (floats in [0, 1] become 12-bit uint16).

    Args:
        path: output file.
        pixels: (H, W) array; floats are scaled from [0, 1] to 0..4095, integers are written as uint16.
        patient_id, study_uid, series_uid: the grouping tags.
        modality: DICOM Modality code (``DX``, ``CR``, ``US``, ...).
        instance_number: InstanceNumber.
        spacing: PixelSpacing (row, column) in mm.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise ValueError(f"write_dicom: expected a (H, W) array, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 4095)
    arr = arr.astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = str(patient_id), study_uid, series_uid
    ds.Modality, ds.InstanceNumber = modality, int(instance_number)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [float(s) for s in spacing]
    ds.PixelData = arr.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom_archive(folder: str | os.PathLike, images: Sequence[np.ndarray], patient_ids: Sequence[str],
                        modality: str = "DX") -> list[Path]:
    """Write ``images`` ((1, H, W) or (H, W) each) as ``<folder>/<patient>/<i>.dcm``, one study per patient."""
    from pydicom.uid import generate_uid

    studies: dict[str, tuple[str, str, int]] = {}
    paths = []
    for i, (image, pid) in enumerate(zip(images, patient_ids)):
        study, series, n = studies.get(str(pid), (generate_uid(), generate_uid(), 0))
        studies[str(pid)] = (study, series, n + 1)
        arr = np.asarray(image)
        arr = arr[0] if arr.ndim == 3 else arr
        paths.append(write_dicom(Path(folder) / str(pid) / f"{i:06d}.dcm", arr, str(pid), study, series,
                                 modality=modality, instance_number=n + 1))
    return paths
