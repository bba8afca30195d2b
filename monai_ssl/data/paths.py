"""Where monai-ssl looks for data files, and file integrity checks with clear errors."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..utils.files import file_kind

__all__ = ["default_data_dir", "file_hash", "verify_file", "load_npz", "DataIntegrityError", "file_kind"]

_REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"


class DataIntegrityError(ValueError):
    """A data file exists but is not the file it should be (checksum mismatch, truncated, wrong keys)."""


def default_data_dir() -> Path:
    """Folder holding the shipped datasets.

    Order: the ``MONAI_SSL_DATA_DIR`` environment variable, the repository's ``data/`` folder (present in a
    source checkout), then ``~/.cache/monai_ssl``.
    """
    env = os.environ.get("MONAI_SSL_DATA_DIR")
    if env:
        return Path(env).expanduser()
    if _REPO_DATA_DIR.is_dir():
        return _REPO_DATA_DIR
    return Path.home() / ".cache" / "monai_ssl"


def file_hash(path: str | os.PathLike, hash_type: str = "md5", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file (``md5``, ``sha1``, ``sha256`` ...), read in chunks."""
    digest = hashlib.new(hash_type)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, expected: str, hash_type: str = "md5") -> None:
    """Raise ``FileNotFoundError`` or :class:`DataIntegrityError` unless ``path`` has the ``expected`` digest."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    actual = file_hash(path, hash_type)
    if actual.lower() != expected.lower():
        raise DataIntegrityError(
            f"{path}: {hash_type} mismatch (expected {expected}, got {actual}); the file is corrupt, truncated "
            "or a different version: delete it and download it again"
        )


def load_npz(path: str | os.PathLike, required_keys: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file eagerly, with errors that name the file and the reason.

    Object arrays are refused (``allow_pickle=False``), so loading never unpickles anything.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise DataIntegrityError(
            f"{path}: not a readable .npz file ({type(e).__name__}: {e}); it may be truncated") from e
    missing = [k for k in required_keys if k not in arrays]
    if missing:
        raise DataIntegrityError(f"{path}: missing arrays {missing}; found {sorted(arrays)}")
    return arrays
