"""Where a bundle lives, where its data is, and clear errors for a wrong path or an unknown config key.

These helpers are called from the bundles' YAML configs (``bundles/*/configs``). MONAI's ``ConfigWorkflow``
silently *adds* an override whose key does not exist (``--max_epoch 1`` creates a new, unused key and training
runs with the default ``max_epochs``), so the configs call :func:`check_config_keys` first in ``initialize``.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.config import choose, require_path

__all__ = [
    "BundleConfigError",
    "active_parser",
    "check_config_keys",
    "choose",
    "cuda_amp",
    "default_bundle_root",
    "default_dataset_dir",
    "require_class_names",
    "require_files",
    "require_path",
]

# keys MONAI itself adds to or reads from a parsed bundle config
_MONAI_KEYS = frozenset({"_meta_", "imports", "initialize", "run", "finalize", "bundle_root"})


class BundleConfigError(KeyError):
    """A bundle config holds a key that none of the bundle's config files defines (usually a typo in an override)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def _attrs(obj: Any) -> dict:
    try:
        return vars(obj)
    except TypeError:
        return {}


def active_parser() -> Any | None:
    """The ``monai.bundle.ConfigParser`` whose expression is being evaluated (found on the call stack), or None.

    Config expressions (``"$..."``) cannot reference the whole config, so the helpers that must see it (the
    override check, the default ``bundle_root``) look for the parser, or the ``ConfigWorkflow`` holding it, in
    the calling frames.
    """
    from monai.bundle import ConfigParser

    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, ConfigParser):
                return owner
            parser = _attrs(owner).get("parser")  # plain lookup: ConfigParser.__getattr__ resolves config ids
            if isinstance(parser, ConfigParser):
                return parser
            frame = frame.f_back
    finally:
        del frame
    return None


def _active_config_root() -> Path | None:
    frame = inspect.currentframe()
    try:
        while frame is not None:
            root = _attrs(frame.f_locals.get("self")).get("config_root_path")
            if root is not None:
                return Path(root)
            frame = frame.f_back
    finally:
        del frame
    return None


def default_bundle_root(name: str) -> str:
    """Folder of the bundle ``name``: the parent of the ``configs/`` folder the running workflow was given,
    else the current folder if it holds ``configs/metadata.json``, else ``./bundles/<name>`` (repo root).

    Raises:
        FileNotFoundError: none of these exists; pass ``--bundle_root``.
    """
    root = _active_config_root()
    candidates = []
    if root is not None:
        candidates.append(root.parent if root.name == "configs" else root)
    candidates += [Path.cwd(), Path.cwd() / "bundles" / name]
    for c in candidates:
        if (c / "configs" / "metadata.json").is_file():
            return str(c)
    raise FileNotFoundError(
        f"bundle_root: cannot find the '{name}' bundle (looked for configs/metadata.json in "
        f"{[str(c) for c in candidates]}); pass --bundle_root <folder holding configs/>"
    )


def default_dataset_dir(bundle_root: str | os.PathLike) -> str:
    """``<repo>/data`` when the bundle sits in a monai-ssl checkout (``<repo>/bundles/<name>``), else
    :func:`monai_ssl.data.default_data_dir` (``$MONAI_SSL_DATA_DIR``, the installed checkout's ``data/``, or
    ``~/.cache/monai_ssl``). Not checked here: see :func:`require_path`."""
    root = Path(bundle_root).resolve()
    if root.parent.name == "bundles" and (root.parent.parent / "data").is_dir():
        return str(root.parent.parent / "data")
    from ..data.paths import default_data_dir

    return str(default_data_dir())


def require_files(paths: Sequence[str | os.PathLike], key: str) -> list[str]:
    """Every path of a non-empty list exists as a file (an ensemble's checkpoints), else an error naming ``key``.

    Raises:
        ValueError: the list is empty.
        FileNotFoundError: naming ``key`` and the first missing file.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"config key '{key}': no checkpoint to evaluate (ensemble=true needs a list of 2+ files)")
    return [require_path(p, key, "file") for p in paths]


def require_class_names(class_names: Sequence[str], num_classes: int) -> list[str]:
    """``class_names`` names each of the ``num_classes`` outputs, else a ``ValueError`` naming both keys."""
    if len(class_names) != int(num_classes):
        raise ValueError(f"config key 'class_names': {len(class_names)} names for num_classes={num_classes}")
    return list(class_names)


def cuda_amp(amp: bool, device: Any, key: str = "amp") -> bool:
    """``amp`` for MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator``, which autocast only on CUDA.

    Their ``amp=True`` wraps the step in ``torch.autocast("cuda")``: on a CPU device nothing is autocast and the run
    is plain fp32 without a word. Here ``amp=True`` on a non-CUDA ``device`` warns, naming the config ``key``, and
    returns False (the fp32 run it would have been anyway, without MONAI's disabled CUDA ``GradScaler``).
    """
    if amp and getattr(device, "type", str(device).split(":")[0]) != "cuda":
        warnings.warn(f"config key '{key}': amp=True on device {device}: MONAI's SupervisedTrainer autocasts only on "
                      f"CUDA, so this run trains in fp32 (no mixed precision); set --{key} False to silence this",
                      stacklevel=2)
        return False
    return bool(amp)


def _flat_keys(config: Any, prefix: str = "") -> Iterable[tuple[str, Mapping]]:
    """``(id, parent)`` for every dict key of plain (non-component) dicts, ids joined with ``#``."""
    if isinstance(config, Mapping):
        for k, v in config.items():
            yield (f"{prefix}{k}", config)
            if isinstance(v, Mapping) and "_target_" not in v:
                yield from _flat_keys(v, f"{prefix}{k}#")


def check_config_keys(
    config_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    config: Mapping | None = None,
    extra_keys: Sequence[str] = (),
) -> bool:
    """Raise if the running config holds a key that none of the bundle's config files defines.

    A typo in an override (``--max_epoch 1``) makes MONAI add a new top-level key that nothing reads; this check
    finds it, names it and suggests the closest known key. Keys inside components (dicts with ``_target_``) are
    not checked here: a wrong argument name already fails when the component is built.

    Args:
        config_files: the bundle's config files, or folders whose ``*.yaml``/``*.json`` files (except
            ``metadata.json``) are all read; their keys are the known keys.
        config: the config to check; default: the running parser's config (see :func:`active_parser`).
        extra_keys: further keys to accept.

    Returns:
        True (so configs can use it in an ``initialize`` expression list).

    Raises:
        BundleConfigError: unknown keys, listed with the closest known key.
    """
    from monai.bundle import ConfigParser

    if config is None:
        parser = active_parser()
        if parser is None:
            raise RuntimeError("check_config_keys: no running monai.bundle ConfigParser found; pass config=")
        config = parser.get()
    files: list[Path] = []
    for entry in ([config_files] if isinstance(config_files, (str, os.PathLike)) else config_files or []):
        p = Path(entry)
        if p.is_dir():
            suffixes = (".yaml", ".yml", ".json")
            files += sorted(f for f in p.iterdir() if f.suffix in suffixes and f.name != "metadata.json")
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"check_config_keys: config file or folder not found: {p}")
    known = set(_MONAI_KEYS) | set(extra_keys)
    for f in files:
        known |= {k for k, _ in _flat_keys(ConfigParser.load_config_file(f))}
    unknown = [k for k, _ in _flat_keys(config) if k not in known and not k.startswith("_meta_#")]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1, cutoff=0.6)
            hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise BundleConfigError(
            f"unknown config key(s) {', '.join(hints)}: no config file of this bundle defines them, so they would be "
            f"silently ignored (a typo in a --key override?). Known top-level keys: "
            f"{sorted(k for k in known if '#' not in k)}"
        )
    return True
