"""A trained model's input contract, kept next to its weights, and the check an inference run makes against it.

``model.pt`` stays a plain state dict (``torch.load(weights_only=True)``, ``ckpt_export``); its contract is the
JSON file beside it, ``model.contract.json``: the image size, channels and class names the network was trained
with, the DICOM domain (Modality, BodyPartExamined, ViewPosition, PhotometricInterpretation) of its training data
and a description of the preprocessing. Training writes it (:class:`monai_ssl.handlers.ModelContractWriter`);
inference reads it (:func:`check_model_contract`) and refuses a run whose settings differ.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKED_KEYS",
    "CONTRACT_FORMAT",
    "check_model_contract",
    "contract_path",
    "load_model_contract",
    "save_model_contract",
]

logger = logging.getLogger(__name__)

CONTRACT_FORMAT = "monai_ssl.model_contract/1"
CHECKED_KEYS = ("image_size", "channels", "class_names")  # the rest (domain, preprocessing) is used or recorded


def contract_path(model_path: str | os.PathLike) -> Path:
    """``<folder>/<name>.contract.json`` for ``<folder>/<name>.pt``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".contract.json")


def _plain(value: Any) -> Any:
    """JSON-ready copy of a config value (tuples and MONAI's parsed mappings become lists and dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def save_model_contract(model_path: str | os.PathLike, contract: Mapping[str, Any]) -> Path:
    """Write ``contract`` (with ``format`` added) to :func:`contract_path` of ``model_path``; returns the path.

    Raises:
        ValueError: a key of :data:`CHECKED_KEYS` is missing.
    """
    missing = [k for k in CHECKED_KEYS if k not in contract]
    if missing:
        raise ValueError(f"config key 'model_contract': missing {missing}")
    path = contract_path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": CONTRACT_FORMAT, **_plain(contract)}, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_model_contract(model_path: str | os.PathLike) -> dict[str, Any] | None:
    """The contract saved beside ``model_path``, or None when there is none.

    Raises:
        ValueError: the file is not a contract this version reads, naming it.
    """
    path = contract_path(model_path)
    if not path.is_file():
        return None
    try:
        contract = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable model contract ({type(e).__name__}: {e}); delete it or retrain")
    if not isinstance(contract, dict) or contract.get("format") != CONTRACT_FORMAT:
        raise ValueError(f"{path}: not a model contract of format {CONTRACT_FORMAT}")
    return contract


def _as_override(value: Any) -> str:
    """``value`` as a shell argument of a ``--key`` override (``"['other', 'covid']"``, ``64``)."""
    return f'"{value!r}"' if isinstance(value, (list, dict)) else repr(value) if isinstance(value, str) else str(value)


def check_model_contract(ckpt_path: str | os.PathLike, expected: Mapping[str, Any],
                         key_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Compare this run's settings ``expected`` (the config's ``model_contract``) with the contract saved
    beside ``ckpt_path``.

    Args:
        ckpt_path: the weights file.
        expected: ``image_size``, ``channels``, ``class_names`` (and ``domain``) of this run.
        key_names: config key to name for each contract entry (default: the entry's own name;
            ``channels`` -> ``network_def#n_input_channels``).

    Returns:
        The saved contract, or, for weights without one (trained before contracts were written, or a training
        checkpoint), ``expected`` with ``"source": "config (no contract file)"`` after a warning.

    Raises:
        ValueError: an entry differs, naming the key, both values, the contract file and the override to pass.
    """
    names = {"channels": "network_def#n_input_channels", **(key_names or {})}
    saved = load_model_contract(ckpt_path)
    if saved is None:
        logger.warning("%s has no %s: the model's input contract is unknown, so image size, channels and class "
                       "names are not checked and the config's domain is used", ckpt_path,
                       contract_path(ckpt_path).name)
        return {**_plain(expected), "source": "config (no contract file)"}
    for k in CHECKED_KEYS:
        if k in saved and k in expected and _plain(expected[k]) != saved[k]:
            key = names.get(k, k)
            raise ValueError(f"config key '{key}': this run uses {_plain(expected[k])!r} but {Path(ckpt_path).name} "
                             f"was trained with {saved[k]!r} ({contract_path(ckpt_path)}); pass --{key} "
                             f"{_as_override(saved[k])}")
    return {**saved, "source": str(contract_path(ckpt_path))}
