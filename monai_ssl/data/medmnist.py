"""MedMNIST 2D datasets (v3 files: 28 px, and the MedMNIST+ 64 / 128 / 224 px sizes) from the official ``.npz``
files, verified by MD5."""

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

__all__ = ["MEDMNIST_INFO", "MEDMNIST_SIZES", "MedMNISTDataset", "download_medmnist", "medmnist_filename",
           "medmnist_md5"]

_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"
MEDMNIST_SIZES = (28, 64, 128, 224)

# Official facts from medmnist 3.0.2's ``info.py`` (the files of Zenodo record 10519652): MD5 of the 28 px file
# (``md5``) and of the larger MedMNIST+ files (``md5_size``), task, channels, samples per split, labels.
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
    "organamnist": {"md5": "68e3f8846a6bd62f0c9bf841c0d9eacc", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 34561, "val": 6491, "test": 17778}, "n_classes": 11},
    "organcmnist": {"md5": "b9ceb9546e10131b32923c5bbeaea2b1", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 12975, "val": 2392, "test": 8216}, "n_classes": 11},
    "organsmnist": {"md5": "9ab87b696fb54e2a387ebe992d6ed5f1", "task": "multi-class", "n_channels": 1,
                    "n_samples": {"train": 13932, "val": 2452, "test": 8827}, "n_classes": 11},
}

# MD5 of ``<flag>_<size>.npz`` (MedMNIST+), from the same ``info.py``
_MD5_SIZE: dict[str, tuple[str, str, str]] = {  # 64, 128, 224 px
    "pathmnist": ("55aa9c1e0525abe5a6b9d8343a507616", "ac42d08fb904d92c244187169d1fd1d9",
                  "2c51a510bcdc9cf8ddb2af93af1eadec"),
    "chestmnist": ("9de6cd0b934ebb5b7426cfba5efbae16", "db107e5590b27930b62dbaf558aebee3",
                   "45bd33e6f06c3e8cdb481c74a89152aa"),
    "dermamnist": ("b70a2f5635c6199aeaa28c31d7202e1f", "2defd784463fa5243564e855ed717de1",
                   "8974907d8e169bef5f5b96bc506ae45d"),
    "octmnist": ("e229e9440236b774d9f0dfef9d07bdaf", "0a97e76651ace45c5d943ee3f65b63ae",
                 "abc493b6d529d5de7569faaef2773ba3"),
    "pneumoniamnist": ("8f4eceb4ccffa70c672198ea285246c6", "05b46931834c231683c68f40c47b2971",
                       "d6a3c71de1b945ea11211b03746c1fe1"),
    "retinamnist": ("afda852cc34dcda56f86ad2b2457dbcc", "e48e916a24454daf90583d4e6efb1a18",
                    "eae7e3b6f3fcbda4ae613ebdcbe35348"),
    "breastmnist": ("742edef2a1fd1524b2efff4bd7ba9364", "363e4b3f8d712e9b5de15470a2aaadf1",
                    "b56378a6eefa9fed602bb16d192d4c8b"),
    "bloodmnist": ("2b94928a2ae4916078ca51e05b6b800b", "adace1e0ed228fccda1f39692059dd4c",
                   "b718ff6835fcbdb22ba9eacccd7b2601"),
    "tissuemnist": ("123ece2eba09d0aa5d698fda57103344", "61b955355d7425a89687b06cca3ce0c2",
                    "b077128c4a949f0a4eb01517f9037b9c"),
    "organamnist": ("2dcccc29b88e6da5a01161ef20cda288", "eeae80d0a227a8d099027e1b3cfd3b60",
                    "50747347e05c87dd3aaf92c49f9f3170"),
    "organcmnist": ("3ce34a8724ea6f548e6db4744d03b6a9", "773c1f009daa3fe5d9a2a201b2a7ed94",
                    "050f5e875dc056f6768abf94ec9995d1"),
    "organsmnist": ("53a6d115339d874c25e309a994ff46d3", "ded0c5fa01a95dc4978b956f613e9b8e",
                    "b354719e553fbbb2513d5533f52a4cb1"),
}
for _flag, _md5s in _MD5_SIZE.items():
    MEDMNIST_INFO[_flag]["md5_size"] = {28: MEDMNIST_INFO[_flag]["md5"], **dict(zip(MEDMNIST_SIZES[1:], _md5s))}

SPLITS = ("train", "val", "test")


def _check_size(size: int) -> int:
    if int(size) not in MEDMNIST_SIZES:
        raise ValueError(f"MedMNIST size must be one of {MEDMNIST_SIZES} (px), got {size}")
    return int(size)


def medmnist_filename(flag: str, size: int = 28) -> str:
    """The official file name: ``<flag>.npz`` at 28 px, ``<flag>_<size>.npz`` otherwise."""
    _info(flag)
    return f"{flag}.npz" if _check_size(size) == 28 else f"{flag}_{size}.npz"


def medmnist_md5(flag: str, size: int = 28) -> str:
    """The official MD5 of :func:`medmnist_filename` ``(flag, size)``."""
    return _info(flag)["md5_size"][_check_size(size)]


def download_medmnist(flag: str, root: str | os.PathLike, size: int = 28) -> Path:
    """Download the official ``<flag>[_<size>].npz`` into ``root`` and verify its MD5 (needs internet access)."""
    from monai.apps.utils import download_url

    name = medmnist_filename(flag, size)
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    url = _URL.format(name=name)
    try:
        download_url(url=url, filepath=path, hash_val=medmnist_md5(flag, size), hash_type="md5", progress=False)
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
        size: image side in px: 28 (``<flag>.npz``) or a MedMNIST+ size 64, 128, 224 (``<flag>_<size>.npz``).

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
        size: int = 28,
    ) -> None:
        info = _info(flag)
        name = medmnist_filename(flag, size)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        self.flag, self.split, self.info = flag, split, info
        root = Path(root) if root is not None else default_data_dir()
        self.path, self.size = root / name, int(size)
        if not self.path.is_file():
            if not download:
                raise FileNotFoundError(
                    f"{self.path}: MedMNIST file not found; pass download=True (needs internet) or place the "
                    f"official {name} there"
                )
            download_medmnist(flag, root, size)
        if verify:
            verify_file(self.path, medmnist_md5(flag, size), "md5")
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
