"""The one door for pretrained weights: a registry of kinds and :func:`load_pretrained`.

A *kind* names a checkpoint layout and the networks it loads into. Its record holds

* a **filter function** ``fn(state_dict, model) -> {target key: tensor}``: renames and selects the source tensors
  (and may check or adapt them against ``model``: resample a position table, sum an RGB stem into one channel).
  ``model`` is ``None`` when the map is applied before any target exists (the encoder export of a pretraining
  run): the function then only renames. A ``ValueError`` from it means "this checkpoint is not of this kind".
  It may return a :class:`FilteredState` to name the source keys it left out on purpose (pretext heads, a
  classifier of another size): the report lists them as skipped;
* a **target scope** ``target key -> bool``: the tensors of the target that must receive weights (its encoder;
  heads and decoders start fresh), or ``None`` for "every top-level module the mapped tensors touch";
* a one-line **description**.

:func:`load_pretrained` reads the checkpoint (a path through ``torch.load(weights_only=True)`` or
``safetensors``, or an in-memory dict), unwraps containers (``network`` / ``state_dict`` / ``model`` entries, the
DDP ``module.`` prefix), applies the filter and loads with the two-sided report of
:func:`~monai_ssl.networks.weights.load_mapped_state_dict`. :func:`pretrained_filter` hands a kind's filter to
code that only renames (the encoder export handler, bundle configs: no lambdas).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..weights import WeightLoadReport, load_checkpoint_weights, load_mapped_state_dict, unwrap_state_dict

__all__ = [
    "PRETRAINED_KINDS",
    "FilteredState",
    "PretrainedKind",
    "check_compatible",
    "load_pretrained",
    "pretrained_filter",
    "read_state_dict",
    "register_pretrained_kind",
]

StateDict = Mapping[str, torch.Tensor]
FilterFn = Callable[[StateDict, "nn.Module | None"], dict[str, torch.Tensor]]


class FilteredState(dict):
    """What a filter may return instead of a plain dict: ``{target key: tensor}`` plus ``unused``, the source keys
    it left out on purpose (pretext heads, a classifier of another size), which :func:`load_pretrained` lists in the
    report's ``skipped`` instead of dropping them silently."""

    def __init__(self, tensors: Mapping[str, torch.Tensor] = (), unused: Sequence[str] = ()) -> None:
        super().__init__(tensors)
        self.unused = list(unused)


@dataclass(frozen=True)
class PretrainedKind:
    """One registered checkpoint layout (see the module docstring).

    Attributes:
        name: the ``kind`` string of :func:`load_pretrained`.
        filter: ``fn(state_dict, model or None) -> {target key: tensor}``.
        scope: ``target key -> bool`` for the target tensors that must receive weights; ``None``: every target
            tensor under a top-level module the mapped tensors touch.
        description: one line, ``source -> target``.
    """

    name: str
    filter: FilterFn
    scope: Callable[[str], bool] | None
    description: str


#: every registered kind by name (filled by the family modules of :mod:`monai_ssl.networks.pretrained`)
PRETRAINED_KINDS: dict[str, PretrainedKind] = {}


def register_pretrained_kind(
    name: str, scope: Callable[[str], bool] | None, description: str, replace: bool = False
) -> Callable[[FilterFn], FilterFn]:
    """Decorator registering a filter function as the kind ``name``; the function is returned unchanged.

    Example::

        @register_pretrained_kind("my_resnet", scope=lambda k: not k.startswith("fc."),
                                  description="my lab's ResNet export -> monai ResNet")
        def my_resnet_filter(state_dict, model=None):
            return {k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")}

    Raises:
        ValueError: ``name`` is registered already (pass ``replace=True`` to override it on purpose).
    """

    def register(fn: FilterFn) -> FilterFn:
        if name in PRETRAINED_KINDS and not replace:
            raise ValueError(f"pretrained kind {name!r} is registered already ({PRETRAINED_KINDS[name].description}); "
                             "pass replace=True to override it.")
        PRETRAINED_KINDS[name] = PretrainedKind(name, fn, scope, description)
        return fn

    return register


def _kind(kind: str) -> PretrainedKind:
    if kind not in PRETRAINED_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(PRETRAINED_KINDS)}.")
    return PRETRAINED_KINDS[kind]


def pretrained_filter(kind: str, model: nn.Module | None = None) -> Callable[[StateDict], dict[str, torch.Tensor]]:
    """The filter of ``kind`` as a one-argument ``state_dict -> state_dict`` map (its ``__name__`` is ``kind``),
    e.g. for :class:`~monai_ssl.handlers.EncoderExportHandler` ``key_map`` in a bundle config::

        key_map: "$monai_ssl.networks.pretrained_filter('swin_mae_swinunetr')"

    Args:
        kind: a registered kind.
        model: passed to the filter (``None``: rename only, no target checks).
    """
    record = _kind(kind)

    def key_map(state_dict: StateDict) -> dict[str, torch.Tensor]:
        return dict(record.filter(state_dict, model))  # a plain dict (a FilteredState's list stays behind)

    key_map.__name__ = key_map.__qualname__ = kind
    return key_map


def read_state_dict(checkpoint: str | os.PathLike | Mapping, checkpoint_key: str | None = None) -> dict:
    """The flat ``{name: tensor}`` state dict of a checkpoint path or an in-memory state dict / container.

    A path is read by :func:`~monai_ssl.networks.weights.load_checkpoint_weights` (``weights_only=True``, or
    ``safetensors`` for ``.safetensors``); a dict is unwrapped the same way (``checkpoint_key`` or the first
    ``state_dict`` / ``model`` / ``network`` / ... entry, the DDP ``module.`` prefix stripped).

    Raises:
        FileNotFoundError: a path that does not exist.
        TypeError: neither a path nor a dict.
        ValueError: an unreadable file, no entry ``checkpoint_key``, or no tensors.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        return load_checkpoint_weights(checkpoint, key=checkpoint_key)
    if isinstance(checkpoint, Mapping):
        return unwrap_state_dict(checkpoint, checkpoint_key)
    raise TypeError(f"checkpoint must be a path or a dict, got {type(checkpoint).__name__}.")


def check_compatible(source: dict[str, Any], target: dict[str, Any], src_name: str, dst_name: str, hint: str) -> None:
    """Raise a ``ValueError`` naming every structural setting (``{setting: value}`` read from the tensors, see the
    ``*_signature`` helpers of the family modules) that differs between checkpoint and target, with ``hint``."""
    diffs = [f"{k} (checkpoint {source[k]}, model {target.get(k)})" for k in source if source[k] != target.get(k)]
    if diffs:
        raise ValueError(
            f"pretrained {src_name} does not match the {dst_name} to build: " + "; ".join(diffs) + f". {hint}"
        )


def _covered_modules(state_dict: StateDict) -> Callable[[str], bool]:
    """Target keys under a top-level module the checkpoint has tensors for: an encoder-only state dict
    (``swinViT.*``) must fill the whole ``swinViT`` but not the decoders; a ResNet-18 one must fill ``layer1`` ...
    ``layer4`` of a ResNet-34 entirely."""
    covered = {k.split(".", 1)[0] for k in state_dict}
    return lambda k: k.split(".", 1)[0] in covered


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
    """Load pretrained weights into ``model`` through the registered filter of ``kind``, with a two-sided report.

    The load is checked on both sides: enough of the checkpoint must find a home (``min_loaded_fraction``), and
    every tensor of the target's encoder (the kind's scope: all but a classifier's head, or the ``vit.`` /
    ``swinViT.`` encoder of UNETR / SwinUNETR; for ``state_dict``, every top-level module the checkpoint has
    tensors for) must receive weights (``min_target_fraction``), so a ResNet-18 encoder does not load into a
    ResNet-34 with its extra blocks left random.

    Args:
        model: the downstream network (updated in place).
        checkpoint: a checkpoint path (``torch.load(..., weights_only=True)``, or a ``.safetensors`` file), a state
            dict, or a container dict (``{"network": ..., "optimizer": ...}`` as ``SSLCheckpointHandler`` saves;
            Lightning ``{"state_dict": ...}``; ...). A DDP ``module.`` prefix is stripped.
        kind: one of :data:`PRETRAINED_KINDS` (``sorted(PRETRAINED_KINDS)`` lists them, each with a description).
        min_loaded_fraction: raise when less than this share of the mapped source tensors found a home in
            ``model`` (the encoder maps are exact, so anything below 1 means a different architecture).
        strict_shapes: raise on shape mismatches (else skip and report them).
        checkpoint_key: entry of a container checkpoint holding the weights (default: auto-detect).
        verbose: log the report.
        min_target_fraction: raise when less than this share of the target's encoder tensors received weights
            (default: all of them); the error lists those left at random init.

    Returns:
        the :class:`~monai_ssl.networks.weights.WeightLoadReport` (loaded / missing / unexpected / mismatched keys,
        the target encoder's share that received weights and what stayed random).

    Raises:
        ValueError: unknown ``kind``, a checkpoint without the expected keys, shape mismatches, or too little
            loaded on either side (the model is left untouched).
        FileNotFoundError: ``checkpoint`` is a path that does not exist.
        TypeError: ``checkpoint`` is neither a path nor a dict.
    """
    record = _kind(kind)
    state = read_state_dict(checkpoint, checkpoint_key)
    try:
        mapped = record.filter(state, model)
    except ValueError as err:
        raise ValueError(f"kind={kind!r} does not fit this checkpoint: {err}") from err
    scope = record.scope if record.scope is not None else _covered_modules(mapped)
    return load_mapped_state_dict(model, mapped, min_loaded_fraction=min_loaded_fraction, strict_shapes=strict_shapes,
                                  verbose=verbose, target_scope=scope, min_target_fraction=min_target_fraction,
                                  skipped=getattr(mapped, "unused", ()))


@register_pretrained_kind("state_dict", scope=None,
                          description="any state dict with the target's own key names -> the same architecture")
def same_names(state_dict: StateDict, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The ``state_dict`` kind: no renaming (an export whose names already match, e.g. ``models/encoder.pt``)."""
    return dict(state_dict)
