"""Export a pretrained encoder as a plain state dict for downstream bundles (classification, segmentation)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

__all__ = ["EncoderExportHandler", "atomic_write", "export_encoder", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write ``path`` atomically through a unique temporary file in the same folder, then ``os.replace``.

    The temporary file is created with ``tempfile.mkstemp`` (``O_EXCL``, a fresh random name), so a planted file or
    symlink with a predictable name (e.g. ``<path>.tmp``) can neither redirect the write nor be renamed into place;
    a kill mid-write leaves ``path`` as it was (plus a ``.<name>.*.tmp`` file). A symlink at ``path`` itself is
    replaced, never followed. The file gets the usual permissions (``0o666`` minus the umask).

    Args:
        path: the final file (its folder must exist).
        write: called with the open temporary file object.
        mode: ``"wb"`` or ``"w"``.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return path


def export_encoder(
    network: nn.Module,
    path: str | os.PathLike,
    submodule: str | None = "encoder",
    key_map: str | Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    info: Mapping | None = None,
) -> dict[str, torch.Tensor]:
    """Write the encoder's weights to ``path`` as ``{name: tensor}`` (CPU, contiguous), atomically.

    The file holds tensors only, so ``torch.load(path, weights_only=True)`` reads it. A JSON sidecar
    (``<path>.json``) records the number of tensors, the key map used and ``info``. Both are written through
    unique temporary files in the target folder (:func:`atomic_write`). Weights of a diverged run (NaN / inf, or
    larger than :data:`~monai_ssl.networks.weights.MAX_ABS_WEIGHT` in magnitude) are refused before anything is
    written, so a previous export stays in place.

    Args:
        network: the pretraining model (wrappers such as DDP are removed first).
        path: output file (parent folders are created).
        submodule: attribute holding the encoder (``"encoder"`` for ``ContrastiveModel``), so keys lose its
            prefix; ``None`` exports the whole model's state dict (then use ``key_map``).
        key_map: applied last: the name of a kind of :func:`monai_ssl.networks.load_pretrained` whose filter maps
            the export (``"swin_mae_swinunetr"``, ``"mae_vit"``, ``"convnext_mae"`` for the masked autoencoders,
            which take the whole model's state dict; see :func:`~monai_ssl.networks.pretrained_filter`), or any
            ``state_dict -> state_dict`` callable.
        info: extra metadata for the sidecar.

    Returns:
        The exported state dict.

    Raises:
        AttributeError: ``network`` has no ``submodule``.
        ValueError: the export is empty.
        NonFiniteWeightsError: (a ``ValueError``) naming the NaN / inf / absurdly large tensors.
    """
    from ..networks.pretrained import pretrained_filter
    from ..networks.weights import check_weights

    if isinstance(key_map, str):
        key_map = pretrained_filter(key_map)
    model = unwrap_model(network)
    if submodule:
        if not hasattr(model, submodule):
            raise AttributeError(f"export_encoder: {type(model).__name__} has no submodule '{submodule}'")
        model = getattr(model, submodule)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if key_map is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in key_map(state).items()}
    if not state:
        raise ValueError(f"export_encoder: nothing to export from {type(model).__name__}")
    path = Path(path)
    check_weights(state, f"export_encoder to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))
    sidecar = {"num_tensors": len(state), "num_parameters": int(sum(v.numel() for v in state.values())),
               "submodule": submodule, "key_map": getattr(key_map, "__name__", None), **(info or {})}
    text = json.dumps(sidecar, indent=2, default=str) + "\n"
    atomic_write(path.with_name(path.name + ".json"), lambda f: f.write(text), mode="w")
    return state


class EncoderExportHandler:
    """Ignite handler calling :func:`export_encoder` when training completes (and optionally every N epochs).

    Args:
        network, path, submodule, key_map, info: see :func:`export_encoder`.
        every_n_epochs: also export every N epochs (None: only at the end).
        enabled: False turns the handler off (e.g. ``dist.get_rank() != 0`` in multi-GPU configs).
    """

    def __init__(self, network: nn.Module, path: str | os.PathLike, submodule: str | None = "encoder",
                 key_map: str | Callable | None = None, info: Mapping | None = None, every_n_epochs: int | None = None,
                 enabled: bool = True) -> None:
        self.network, self.path, self.submodule, self.key_map = network, Path(path), submodule, key_map
        self.info, self.every_n_epochs, self.enabled = dict(info or {}), every_n_epochs, enabled

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.COMPLETED, self)
        if self.every_n_epochs:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.every_n_epochs), self)

    def __call__(self, engine: Engine) -> None:
        info = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, **self.info}
        export_encoder(self.network, self.path, self.submodule, self.key_map, info)
