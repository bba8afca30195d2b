"""Datasets, datalists and patient-level splits.

Light helpers are imported eagerly; dataset classes that need MONAI are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .datalist import ID_KEYS, DicomScan, SkippedFile, datalist_from_dicom, load_datalist
from .paths import DataIntegrityError, default_data_dir, file_hash, load_npz, verify_file
from .splits import fixed_split, group_by_patient, label_fraction_subset, patient_split, require_unique

_LAZY = {
    "MedMNISTDataset": "medmnist",
    "MEDMNIST_INFO": "medmnist",
    "download_medmnist": "medmnist",
    "medmnist_filename": "medmnist",
    "medmnist_md5": "medmnist",
    "load_covid_cxr": "covid_cxr",
    "covid_label": "covid_cxr",
    "COVID_CXR_SHA256": "covid_cxr",
    "MultiInstanceDataset": "multi_instance",
    "MixedModalityDataset": "mixed_modality",
    "MixedModalitySampler": "mixed_modality",
    "modality_probabilities": "mixed_modality",
    "SeededDataLoader": "loader",
    "stream_seed": "loader",
}
_LAZY.update({"check_task_labels": "classification_npz", "check_task_config": "classification_npz",
              "npz_classification_lists": "classification_npz",
              "medmnist_classification_lists": "classification_npz"})
_LAZY.update({"classification_datalists": "classification_lists", "contrastive_datalist": "pretraining_lists",
              "mixed_modality_sources": "pretraining_lists", "segmentation_datalists": "segmentation_lists",
              "block_split": "segmentation_lists", "IMAGE_SUFFIXES": "inputs", "VOLUME_SUFFIXES": "inputs",
              "list_image_files": "inputs", "list_volumes": "inputs", "output_roots": "inputs"})
_LAZY.update({k: "store" for k in ("convert_to_store", "StoreReader", "StoreDataset", "LoadStored", "LoadStoredd",
                                    "store_datalist", "store_sources")})
_LAZY.update({"load_brain_mr": "brain_mr", "brain_mr_files": "brain_mr", "BRAIN_MR_CLASSES": "brain_mr",
              "BRAIN_MR_FILES": "brain_mr", "BRAIN_MR_SHA256": "brain_mr"})

__all__ = [
    "DataIntegrityError",
    "ID_KEYS",
    "DicomScan",
    "SkippedFile",
    "datalist_from_dicom",
    "default_data_dir",
    "file_hash",
    "fixed_split",
    "group_by_patient",
    "label_fraction_subset",
    "load_datalist",
    "load_npz",
    "patient_split",
    "require_unique",
    "verify_file",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
