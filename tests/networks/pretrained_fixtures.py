"""Fixtures for third-party checkpoints: a key layout + one deterministic weight-fill rule + reference outputs.

Shipping real ImageNet weights is too big (ConvNeXt-Tiny alone is 110 MB), so each fixture under
``tests/networks/fixtures/pretrained/<name>.pt`` holds

* ``layout``: the source model's ``[key, shape, dtype]`` list, in state-dict order, read from the third-party
  model itself (torchvision 0.28, timm 1.0, MONAI's ``SwinTransformer``);
* ``int_tensors``: the integer buffers verbatim (BatchNorm ``num_batches_tracked``, Swin
  ``relative_position_index``: index tables, not weights, that a fill rule cannot invent);
* ``meta``: where the layout came from (library, version, constructor) and the file's container
  (``container``: ``None`` for a flat state dict, else the entry holding it; ``prefix``: e.g. the DDP ``module.``);
* ``input`` / ``output``: a seeded input (float16-exact values) and the third-party model's output on it, with
  the weights of :func:`fill_state_dict` (``input_gray`` / ``output_gray``: a 1-channel input and the source's
  output on it repeated to 3 channels, for the summed-RGB stem); absent in the layout-only ``*_layout`` fixtures
  (standard sizes, e.g. ConvNeXt-Tiny, as key/shape lists).

:func:`fill_state_dict` is the single weight rule: the generator (``scripts/make_pretrained_fixtures.py``)
fills the source model with it before computing ``output``, and the tests rebuild the same checkpoint from the
layout with it. Every tensor draws from its own generator seeded by ``crc32(key) + seed``, so the values do not
depend on the order or the presence of other keys.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

__all__ = ["FIXTURE_DIR", "fill_state_dict", "fill_tensor", "layout_of", "load_fixture", "source_checkpoint"]

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "pretrained"

# keys (by their last name component, or a substring) whose values are embeddings rather than projections
_EMBEDDING_NAMES = ("pos_embed", "position_embeddings", "cls_token", "relative_position_bias_table")
_SCALE_NAMES = ("gamma", "layer_scale")  # ConvNeXt layer scale: (C,) in timm / official, (C, 1, 1) in torchvision


def fill_tensor(key: str, shape: Sequence[int], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """The fixture value of one floating tensor, a function of ``(key, shape, dtype, seed)`` only.

    Rule (by the key's last name component, then by rank), scaled so activations stay O(1) through deep stacks:

    * ``running_mean`` ~ N(0, 0.1^2); ``running_var`` ~ U(0.5, 1.5);
    * embeddings (``pos_embed``, ``position_embeddings``, ``cls_token``, ``relative_position_bias_table``)
      ~ N(0, 0.5^2), large enough that a wrongly resampled or misplaced table changes the output;
    * layer scale (``gamma``, ``layer_scale``) ~ U(0.1, 0.5);
    * rank >= 2 (conv / linear weights) ~ N(0, 1 / fan_in), ``fan_in = prod(shape[1:])``;
    * rank 1 ``weight`` (norm scales) ~ 1 + N(0, 0.1^2); any other rank-1 tensor (biases) ~ N(0, 0.1^2).

    Args:
        key: the tensor's name in the source state dict (its seed).
        shape: the tensor's shape.
        dtype: a floating dtype.
        seed: added to ``crc32(key)``.

    Returns:
        a CPU tensor of ``shape`` and ``dtype``.
    """
    gen = torch.Generator().manual_seed((zlib.crc32(key.encode()) + int(seed)) % (2**63))
    shape = tuple(int(s) for s in shape)
    last = key.rsplit(".", 1)[-1]

    def normal() -> torch.Tensor:
        return torch.randn(shape, generator=gen)

    def uniform() -> torch.Tensor:
        return torch.rand(shape, generator=gen)

    if last == "running_mean":
        value = 0.1 * normal()
    elif last == "running_var":
        value = 0.5 + uniform()
    elif any(name in last for name in _EMBEDDING_NAMES):
        value = 0.5 * normal()
    elif last in _SCALE_NAMES:
        value = 0.1 + 0.4 * uniform()
    elif len(shape) >= 2:
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        value = normal() / fan_in**0.5
    elif last == "weight":
        value = 1.0 + 0.1 * normal()
    else:
        value = 0.1 * normal()
    return value.to(dtype)


def fill_state_dict(
    layout: Sequence[Sequence], int_tensors: Mapping[str, torch.Tensor] | None = None, seed: int = 0
) -> OrderedDict[str, torch.Tensor]:
    """A state dict with the keys, shapes and dtypes of ``layout`` and the values of :func:`fill_tensor`.

    Args:
        layout: ``[key, shape, dtype name]`` rows (see :func:`layout_of`).
        int_tensors: values of the integer tensors (index buffers, ``num_batches_tracked``); an integer key
            missing here is filled with zeros.
        seed: the fill seed.
    """
    int_tensors = int_tensors or {}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape, dtype_name in layout:
        dtype = getattr(torch, dtype_name)
        if dtype.is_floating_point:
            out[key] = fill_tensor(key, shape, dtype, seed)
        elif key in int_tensors:
            out[key] = int_tensors[key].to(dtype)
        else:
            out[key] = torch.zeros(tuple(shape), dtype=dtype)
    return out


def layout_of(state_dict: Mapping[str, torch.Tensor]) -> tuple[list[list], dict[str, torch.Tensor]]:
    """``([key, shape, dtype name] rows, {key: integer tensor})`` of a state dict."""
    rows = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state_dict.items()]
    ints = {k: v.clone() for k, v in state_dict.items() if not (v.is_floating_point() or v.is_complex())}
    return rows, ints


def load_fixture(name: str) -> dict:
    """Read ``fixtures/pretrained/<name>.pt`` with ``weights_only=True``; the ``input*`` tensors (stored as
    float16, their values float16-exact) come back as float32."""
    path = FIXTURE_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"pretrained fixture {path} is missing; run scripts/make_pretrained_fixtures.py.")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return {k: (v.float() if k.startswith("input") else v) for k, v in obj.items()}


def source_checkpoint(fixture: Mapping) -> dict:
    """The checkpoint object as the third party saves it: the filled state dict, its keys prefixed with
    ``meta["prefix"]`` and wrapped in ``{meta["container"]: ...}`` when the release does so."""
    meta = fixture["meta"]
    state = fill_state_dict(fixture["layout"], fixture.get("int_tensors"), fixture.get("seed", 0))
    prefix = meta.get("prefix") or ""
    state = OrderedDict((prefix + k, v) for k, v in state.items())
    container = meta.get("container")
    return {container: state} if container else dict(state)
