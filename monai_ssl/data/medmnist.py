"""MedMNIST v2 (2D, 28 px) datasets from the official ``.npz`` files, verified by MD5."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import Dataset, MetaTensor
from monai.transforms import Compose, apply_transform

from .paths import DataIntegrityError, default_data_dir, load_npz, verify_file

__all__ = ["MEDMNIST_INFO", "MedMNISTDataset", "download_medmnist"]

_URL = "https://zenodo.org/records/10519652/files/{flag}.npz?download=1"

# Official facts from medmnist's ``info.py`` (28 px files): MD5, task, channels, samples per split, labels.
MEDMNIST_INFO: dict[str, dict[str, Any]] = {
    "pathmnist": {"md5": "a8b06965200029087d5bd730944a56c1", "task": "multi-class", "n_channels": 3,
                  "n_samples": {"train": 89996, "val": 10004, "test": 7180}, "n_classes": 9},
    "chestmnist": {"md5": "02c8a6516a18b556561a56cbdd36c4a8", "task": "multi-label", "n_channels": 1,
                   "n_samples": {"train": 78468, "val": 11219, "test": 22433}, "n_classes": 14},
    "dermamnist": {"md5": "0744692d530f8e62ec473284d019b0c7", "task": "multi-class", "n_channels": 3,
                   "n_samples": {"train": 7007, "val": 1003, "test": 2005}, "n_classes": 7},
    "octmnist": {"md5": "c68d92d5b585d8d81f7112f81e2d0842", "task": "multi-class", "n_channels": 1,
                 "n_samples": {"train": 97477, "val": 10832, "test": 1000}, "n_classes": 4},
    "pneumoniamnist": {"md5": "28209eda62fecd6e6a2d98b1501bb15f", "task": "binary-class", "n_channels": 1,
                       "n_samples": {"train": 4708, "val": 524, "test": 624}, "n_classes": 2,
                       "labels": ("normal", "pneumonia"), "modality": "XR"},
    "retinamnist": {"md5": "bd4c0672f1bba3e3a89f0e4e876791e4", "task": "ordinal-regression", "n_channels": 3,
                    "n_samples": {"train": 1080, "val": 120, "test": 400}, "n_classes": 5},
    "breastmnist": {"md5": "750601b1f35ba3300ea97c75c52ff8f6", "task": "binary-class", "n_channels": 1,
                    "n_samples": {"train": 546, "val": 78, "test": 156}, "n_classes": 2,
                    "labels": ("malignant", "normal or benign"), "modality": "US"},
    "bloodmnist": {"md5": "7053d0359d879ad8a5505303e11de1dc", "task": "multi-class", "n_channels": 3,
                   "n_samples": {"train": 11959, "val": 1712, "test": 3421}, "n_classes": 8},
    "tissuemnist": {"md5": "ebe78ee8b05294063de985d821c1c34b", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 165466, "val": 23640, "test": 47280}, "n_classes": 8},
    "organamnist": {"md5": "866b832ed4eeba67bfb9edee1d5544e6", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 34581, "val": 6491, "test": 17778}, "n_classes": 11},
    "organcmnist": {"md5": "0afa5834fb105f7705a7d93372119a21", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 13000, "val": 2392, "test": 8268}, "n_classes": 11},
    "organsmnist": {"md5": "e5c39f1af030238290b9557d9503af9d", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 13940, "val": 2452, "test": 8829}, "n_classes": 11},
}

SPLITS = ("train", "val", "test")


def download_medmnist(flag: str, root: str | os.PathLike) -> Path:
    """Download the official ``<flag>.npz`` into ``root`` and verify its MD5 (needs internet access)."""
    from monai.apps.utils import download_url

    info = _info(flag)
    path = Path(root) / f"{flag}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = _URL.format(flag=flag)
    try:
        download_url(url=url, filepath=path, hash_val=info["md5"], hash_type="md5", progress=False)
    except Exception as e:  # network errors come as several exception types from urllib/requests
        raise RuntimeError(
            f"could not download MedMNIST '{flag}' from {url} to {path} ({type(e).__name__}: {e}); "
            f"without internet access place the official file at {path}"
        ) from e
    return path


def _info(flag: str) -> dict[str, Any]:
    if flag not in MEDMNIST_INFO:
        raise ValueError(f"unknown MedMNIST flag '{flag}'; expected one of {sorted(MEDMNIST_INFO)}")
    return MEDMNIST_INFO[flag]


class MedMNISTDataset(Dataset):
    """One split of a 2D MedMNIST dataset as MONAI-style dictionaries.

    Each item is ``{"image": MetaTensor (C, H, W) float32 in [0, 1], "label": tensor, "index": int}``
    where ``label`` is an ``int64`` scalar for binary/multi-class/ordinal tasks and a ``float32`` vector of
    length ``n_classes`` for multi-label ones (ChestMNIST). ``transform`` is applied to that dictionary.

    Args:
        root: folder holding ``<flag>.npz``; defaults to :func:`default_data_dir`.
        flag: dataset name, e.g. ``"pneumoniamnist"`` (see :data:`MEDMNIST_INFO`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: a callable applied to each item dictionary (e.g. a MONAI ``Compose``).
        download: fetch the file when it is absent (needs internet).
        verify: check the official MD5 before loading.

    Raises:
        FileNotFoundError: the file is absent and ``download`` is False.
        DataIntegrityError: MD5 mismatch, unreadable/truncated file, or wrong keys/sample counts.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        flag: str = "pneumoniamnist",
        split: str = "train",
        transform: Sequence[Callable] | Callable | None = None,
        download: bool = False,
        verify: bool = True,
    ) -> None:
        info = _info(flag)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        self.flag, self.split, self.info = flag, split, info
        root = Path(root) if root is not None else default_data_dir()
        self.path = root / f"{flag}.npz"
        if not self.path.is_file():
            if not download:
                raise FileNotFoundError(
                    f"{self.path}: MedMNIST file not found; pass download=True (needs internet) or place the "
                    f"official {flag}.npz there"
                )
            download_medmnist(flag, root)
        if verify:
            verify_file(self.path, info["md5"], "md5")
        arrays = load_npz(self.path, required_keys=(f"{split}_images", f"{split}_labels"))
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        expected = info["n_samples"][split]
        if len(images) != expected or len(labels) != expected:
            raise DataIntegrityError(
                f"{self.path}: split '{split}' has {len(images)} images / {len(labels)} labels, expected {expected}"
            )
        self.images = images
        self.labels = labels
        if isinstance(transform, Sequence):
            transform = Compose(transform)
        super().__init__(data=range(len(images)), transform=transform)

    def _transform(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)  # (C, H, W)
        label = self.labels[index]
        if self.info["task"] == "multi-label":
            label_t = torch.as_tensor(label, dtype=torch.float32)
        else:
            label_t = torch.as_tensor(int(label.reshape(-1)[0]), dtype=torch.int64)
        item = {
            "image": MetaTensor(torch.from_numpy(image.astype(np.float32) / 255.0)),
            "label": label_t,
            "index": int(index),
        }
        return apply_transform(self.transform, item) if self.transform is not None else item

    def __repr__(self) -> str:
        return f"MedMNISTDataset(flag={self.flag!r}, split={self.split!r}, n={len(self)}, path='{self.path}')"
