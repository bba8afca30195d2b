"""Adapting third-party (ImageNet, torchvision / timm / official) tensors to the target network, shared by the
family modules: the RGB stem for 1-channel inputs, classifiers of another size, and what is left out.

RGB -> 1 channel: a first convolution ``W`` of shape ``(C_out, 3, *k)`` becomes ``W.sum(dim=1, keepdim=True)``.
For a grey image ``x`` fed as RGB (``[x, x, x]``, what a 3-channel network sees after ``RepeatChannel``),
``conv(W, [x, x, x]) = conv(sum_c W_c, x)`` exactly, so the 1-channel network gives the RGB network's output on the
replicated image. (Averaging the filters instead would scale the first activations by 1/3.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .registry import FilteredState

__all__ = ["adapt_stem", "filtered", "take_if_fits"]


def adapt_stem(weight: torch.Tensor, key: str, model: nn.Module | None) -> torch.Tensor:
    """The source stem ``weight`` for the target's ``key``: summed over the RGB filters when the target takes one
    channel and the source three (see the module docstring); unchanged otherwise (a different channel count is
    then reported as a shape mismatch by the loader)."""
    if model is None:
        return weight
    target = model.state_dict().get(key)
    if target is not None and target.ndim == weight.ndim and target.shape[1] == 1 and weight.shape[1] == 3:
        return weight.sum(dim=1, keepdim=True)
    return weight


def take_if_fits(
    out: dict[str, torch.Tensor], unused: list[str], pairs: Mapping[str, tuple[str, torch.Tensor]],
    model: nn.Module | None,
) -> None:
    """Put ``pairs`` (``{source key: (target key, tensor)}``, e.g. a 1000-class classifier) into ``out`` when
    ``model`` is None or every target key exists with the same shape; else add the source keys to ``unused``
    (the target's head keeps its initialisation, and the report lists what was left out)."""
    if model is not None:
        target = model.state_dict()
        fits = all(dst in target and tuple(target[dst].shape) == tuple(v.shape) for dst, v in pairs.values())
        if not fits:
            unused.extend(pairs)
            return
    out.update({dst: v for dst, v in pairs.values()})


def filtered(out: dict[str, torch.Tensor], unused: list[str], kind: str) -> FilteredState:
    """``out`` as a :class:`~monai_ssl.networks.pretrained.registry.FilteredState` with ``unused``; raises when
    nothing was mapped."""
    if not out:
        raise ValueError(f"no tensor of this checkpoint maps to the {kind!r} layout.")
    return FilteredState(out, sorted(unused))
