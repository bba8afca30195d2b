"""One-call loading of self-supervised checkpoints into downstream MONAI networks, with a report.

``load_pretrained(model, checkpoint, kind)`` reads a checkpoint (a path, read with ``weights_only=True``, or
an in-memory state dict / container such as the one :class:`~monai_ssl.handlers.SSLCheckpointHandler` saves,
whose ``"network"`` entry holds the weights), maps the keys with the explicit function for ``kind`` and loads
them with :func:`~monai_ssl.networks.weights.load_mapped_state_dict`, which returns a
:class:`~monai_ssl.networks.weights.WeightLoadReport` and raises when too little was loaded.

=======================  ==========================================  ===========================================
kind                     source                                      target
=======================  ==========================================  ===========================================
``contrastive_resnet``   ``ContrastiveModel`` (``encoder.*``) or a    ``monai.networks.nets.ResNet`` classifier
                         bare ResNet encoder state dict               (``fc`` stays freshly initialised)
``mae_vit``              ``MaskedAutoencoderViT``                     ``monai.networks.nets.ViT``
``mae_vit_unetr``        ``MaskedAutoencoderViT``                     ``monai.networks.nets.UNETR`` (``vit.*``)
``swin_mae_swinunetr``   ``SwinMAE``                                  ``monai.networks.nets.SwinUNETR``
                                                                      (``swinViT.*``)
``convnext_mae``         ``ConvNeXtMAE``                              :class:`~monai_ssl.networks.nets.ConvNeXt`
``state_dict``           any state dict with the target's key names  the same architecture (no renaming)
=======================  ==========================================  ===========================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .nets.convnext_mae import convnext_mae_to_convnext
from .nets.swin_mae import swin_mae_to_swinunetr
from .weights import _CONTAINER_KEYS, WeightLoadReport, load_checkpoint_weights, load_mapped_state_dict
from .weights import mae_vit_to_monai_vit

__all__ = ["contrastive_to_resnet", "load_pretrained", "PRETRAINED_KINDS", "TARGET_SCOPES"]


def contrastive_to_resnet(state_dict: Mapping[str, torch.Tensor], encoder_prefix: str = "encoder.") -> dict:
    """Map a :class:`~monai_ssl.networks.nets.ContrastiveModel` state dict onto a MONAI ``ResNet`` classifier.

    The contrastive encoder is a MONAI ``ResNet`` built with ``feed_forward=False``, so its keys (``conv1``,
    ``bn1``, ``layer1`` ... ``layer4``, BN running statistics included) equal the classifier's. The map keeps the
    ``encoder.*`` keys without the prefix and drops the projection head (``head.*``); the classifier's ``fc``
    is not in the result, so it keeps its fresh initialisation. A bare encoder state dict (no ``encoder.``
    keys, e.g. the ``stage<i>_<name>_encoder.pt`` files of the curricular runner) is used as is, minus any
    ``fc.*`` entry.

    Args:
        state_dict: source tensors.
        encoder_prefix: prefix of the encoder keys in the source.

    Returns:
        ``{target key: tensor}`` for :func:`~monai_ssl.networks.weights.load_mapped_state_dict`.

    Raises:
        ValueError: no encoder tensor in ``state_dict``.
    """
    if any(k.startswith(encoder_prefix) for k in state_dict):
        out = {k[len(encoder_prefix):]: v for k, v in state_dict.items() if k.startswith(encoder_prefix)}
    else:
        out = {k: v for k, v in state_dict.items() if not k.startswith(("head.", "fc."))}
    out = {k: v for k, v in out.items() if not k.startswith("fc.")}
    if not out:
        raise ValueError(f"state_dict holds no ResNet encoder keys ({encoder_prefix}*); keys: {list(state_dict)[:10]}.")
    return out


PRETRAINED_KINDS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict]] = {
    "contrastive_resnet": contrastive_to_resnet,
    "mae_vit": mae_vit_to_monai_vit,
    "mae_vit_unetr": lambda sd: mae_vit_to_monai_vit(sd, prefix="vit."),
    "swin_mae_swinunetr": swin_mae_to_swinunetr,
    "convnext_mae": convnext_mae_to_convnext,
    "state_dict": dict,
}


def _vit_encoder(name: str, prefix: str = "") -> bool:
    """A ViT encoder tensor under ``prefix``: not the class token or head (the MAE has neither), nor the
    ``norm_cross_attn`` LayerNorm MONAI's ``TransformerBlock`` builds and never uses without cross-attention."""
    if not name.startswith(prefix):
        return False
    name = name[len(prefix):]
    return not (name == "cls_token" or name.startswith("classification_head.") or ".norm_cross_attn." in name)


# for each kind, the target tensors that must receive weights (the encoder; heads and decoders start fresh)
TARGET_SCOPES: dict[str, Callable[[str], bool]] = {
    "contrastive_resnet": lambda k: not k.startswith("fc."),
    "mae_vit": _vit_encoder,
    "mae_vit_unetr": lambda k: _vit_encoder(k, "vit."),
    "swin_mae_swinunetr": lambda k: k.startswith("swinViT."),
    "convnext_mae": lambda k: not k.startswith("head."),
    # a plain state dict: every target tensor of the top-level modules the checkpoint covers (set per load)
    "state_dict": lambda k: True,
}


def _covered_modules(state_dict: Mapping[str, torch.Tensor]) -> Callable[[str], bool]:
    """Target keys under a top-level module the checkpoint has tensors for: an encoder-only state dict
    (``swinViT.*``) must fill the whole ``swinViT`` but not the decoders; a ResNet-18 one must fill ``layer1`` ...
    ``layer4`` of a ResNet-34 entirely."""
    covered = {k.split(".", 1)[0] for k in state_dict}
    return lambda k: k.split(".", 1)[0] in covered


def _unwrap(obj: Mapping, key: str | None) -> dict[str, torch.Tensor]:
    """In-memory counterpart of :func:`load_checkpoint_weights`' container handling."""
    if key is not None:
        if key not in obj:
            raise ValueError(f"checkpoint has no entry {key!r}; entries: {sorted(obj)[:20]}.")
        obj = obj[key]
    elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for name in _CONTAINER_KEYS:
            if isinstance(obj.get(name), Mapping):
                obj = obj[name]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"checkpoint (entry {key!r}) holds no tensors; entries: {list(obj)[:20]}.")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in tensors.items()}


def load_pretrained(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping,
    kind: str = "contrastive_resnet",
    min_loaded_fraction: float = 0.9,
    strict_shapes: bool = True,
    checkpoint_key: str | None = None,
    verbose: bool = True,
    min_target_fraction: float = 1.0,
) -> WeightLoadReport:
    """Load self-supervised weights into a downstream network through the explicit key map for ``kind``.

    The load is checked on both sides: enough of the checkpoint must find a home (``min_loaded_fraction``), and
    every tensor of the target's encoder (:data:`TARGET_SCOPES` of ``kind``: all but a classifier's head, or the
    ``vit.`` / ``swinViT.`` encoder of UNETR / SwinUNETR; for ``state_dict``, every top-level module the checkpoint
    has tensors for) must receive weights (``min_target_fraction``), so a
    ResNet-18 encoder does not load into a ResNet-34 with its extra blocks left random.

    Args:
        model: the downstream network (updated in place).
        checkpoint: a checkpoint path (read with ``torch.load(..., weights_only=True)``), a state dict, or a
            container dict (``{"network": ..., "optimizer": ...}`` as ``SSLCheckpointHandler`` saves; Lightning
            ``{"state_dict": ...}``; ...). A DDP ``module.`` prefix is stripped.
        kind: one of :data:`PRETRAINED_KINDS` (see the module docstring).
        min_loaded_fraction: raise when less than this share of the mapped source tensors found a home in
            ``model`` (the encoder maps are exact, so anything below 1 means a different architecture).
        strict_shapes: raise on shape mismatches (else skip and report them).
        checkpoint_key: entry of a container checkpoint holding the weights (default: auto-detect).
        verbose: log the report.
        min_target_fraction: raise when less than this share of the target's encoder tensors received weights
            (default: all of them); the error lists those left at random init.

    Returns:
        the :class:`WeightLoadReport` (loaded / missing / unexpected / mismatched keys, the target encoder's share
        that received weights and what stayed random).

    Raises:
        ValueError: unknown ``kind``, a checkpoint without the expected keys, shape mismatches, or too little
            loaded on either side (the model is left untouched).
        FileNotFoundError: ``checkpoint`` is a path that does not exist.
    """
    if kind not in PRETRAINED_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(PRETRAINED_KINDS)}.")
    if isinstance(checkpoint, (str, os.PathLike)):
        state = load_checkpoint_weights(checkpoint, key=checkpoint_key)
    elif isinstance(checkpoint, Mapping):
        state = _unwrap(checkpoint, checkpoint_key)
    else:
        raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}.")
    try:
        mapped = PRETRAINED_KINDS[kind](state)
    except ValueError as err:
        raise ValueError(f"kind={kind!r} does not fit this checkpoint: {err}") from err
    return load_mapped_state_dict(model, mapped, min_loaded_fraction=min_loaded_fraction,
                                  strict_shapes=strict_shapes, verbose=verbose,
                                  target_scope=_covered_modules(mapped) if kind == "state_dict" else TARGET_SCOPES[kind],
                                  min_target_fraction=min_target_fraction)
