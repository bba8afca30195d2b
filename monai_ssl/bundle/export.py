"""Export a pretrained encoder as a plain state dict for downstream bundles (classification, segmentation)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from torch import nn

__all__ = ["EncoderExportHandler", "export_encoder", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def export_encoder(
    network: nn.Module,
    path: str | os.PathLike,
    submodule: str | None = "encoder",
    key_map: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    info: Mapping | None = None,
) -> dict[str, torch.Tensor]:
    """Write the encoder's weights to ``path`` as ``{name: tensor}`` (CPU, contiguous), atomically.

    The file holds tensors only, so ``torch.load(path, weights_only=True)`` reads it. A JSON sidecar
    (``<path>.json``) records the number of tensors, the key map used and ``info``.

    Args:
        network: the pretraining model (wrappers such as DDP are removed first).
        path: output file (parent folders are created).
        submodule: attribute holding the encoder (``"encoder"`` for ``ContrastiveModel``), so keys lose its
            prefix; ``None`` exports the whole model's state dict (then use ``key_map``).
        key_map: ``state_dict -> state_dict`` applied last, e.g. ``swin_mae_to_swinunetr`` or
            ``mae_vit_to_monai_vit`` for masked autoencoders (which take the whole model's state dict).
        info: extra metadata for the sidecar.

    Returns:
        The exported state dict.

    Raises:
        AttributeError: ``network`` has no ``submodule``.
        ValueError: the export is empty.
    """
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    sidecar = {"num_tensors": len(state), "num_parameters": int(sum(v.numel() for v in state.values())),
               "submodule": submodule, "key_map": getattr(key_map, "__name__", None), **(info or {})}
    path.with_name(path.name + ".json").write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    return state


class EncoderExportHandler:
    """Ignite handler calling :func:`export_encoder` when training completes (and optionally every N epochs).

    Args:
        network, path, submodule, key_map, info: see :func:`export_encoder`.
        every_n_epochs: also export every N epochs (None: only at the end).
        enabled: False turns the handler off (e.g. ``dist.get_rank() != 0`` in multi-GPU configs).
    """

    def __init__(self, network: nn.Module, path: str | os.PathLike, submodule: str | None = "encoder",
                 key_map: Callable | None = None, info: Mapping | None = None, every_n_epochs: int | None = None,
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
