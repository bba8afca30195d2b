"""Errors that name the config key: a path that does not exist, a choice that is not offered.

Shared by the data builders, networks and bundles; the message says which key to override and how
(``--<key> <value>``), since most users meet these through ``python -m monai.bundle run``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["choose", "require_path"]


def require_path(path: str | os.PathLike | None, key: str, kind: str = "any", files: Sequence[str] = ()) -> str | None:
    """Return ``path`` unchanged if it exists (None passes through), else raise an error naming the config key.

    Args:
        path: the configured path.
        key: the config key it came from (named in the error, with the override that fixes it).
        kind: ``"dir"``, ``"file"`` or ``"any"``.
        files: file names that must exist inside a directory ``path`` (e.g. the dataset's ``.npz`` files).

    Raises:
        FileNotFoundError: the path (or one of ``files`` inside it) does not exist or is of the wrong kind.
    """
    if path is None:
        return None
    p = Path(path)
    ok = p.is_dir() if kind == "dir" else p.is_file() if kind == "file" else p.exists()
    what = {"dir": "directory", "file": "file"}.get(kind, "path")
    if not ok:
        raise FileNotFoundError(f"config key '{key}': {what} not found: {p.resolve()} (override with --{key} <path>)")
    missing = [f for f in files if not (p / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"config key '{key}': {p.resolve()} lacks {missing} (override with --{key} <folder holding them>)"
        )
    return str(path)


def choose(options: Mapping[str, Any], name: str, key: str, choices: Sequence[str] | None = None) -> Any:
    """``options[name]``, or a ``ValueError`` naming the config ``key`` and the valid choices.

    Used to switch between alternative components (``network_name: swin | vit | convnext``). The unselected
    components are ``_disabled_`` in the config, and MONAI drops disabled entries from the resolved dict, so the
    valid names are passed as ``choices``.
    """
    valid = list(choices) if choices is not None else sorted(options)
    if name not in valid or options.get(name) is None:
        raise ValueError(f"config key '{key}': unknown choice {name!r}; choose from {valid}")
    return options[name]
