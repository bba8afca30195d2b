"""Kinds that load into :class:`~monai_ssl.networks.nets.ConvNeXt` (Liu et al., "A ConvNet for the 2020s", 2022).

``convnext_mae``: the encoder of a :class:`~monai_ssl.networks.nets.ConvNeXtMAE` (masked-image pretraining of
ConvNeXt as in ConvNeXt V2's FCMAE, Woo et al. 2023), through that model's own export map
:func:`~monai_ssl.networks.nets.convnext_mae.convnext_mae_to_convnext`; the classifier ``head.*`` starts fresh.

ImageNet ConvNeXt (V1) checkpoints of three layouts, any size (tiny / small / base / large / xlarge, or timm's
atto ... nano), into the 2D :class:`~monai_ssl.networks.nets.ConvNeXt` of the same depths and widths:

Our name <- ``convnext_official`` (facebookresearch) | ``timm_convnext`` | ``torchvision_convnext``:

* ``downsample_layers.0.k`` <- ``downsample_layers.0.k`` | ``stem.k`` | ``features.0.k``
* ``downsample_layers.i.k`` <- ``downsample_layers.i.k`` | ``stages.i.downsample.k`` | ``features.{2i}.k``
* ``stages.i.j.dwconv`` <- ``stages.i.j.dwconv`` | ``stages.i.blocks.j.conv_dw`` | ``features.{2i+1}.j.block.0``
* ``stages.i.j.norm`` <- ``stages.i.j.norm`` | ``stages.i.blocks.j.norm`` | ``features.{2i+1}.j.block.2``
* ``stages.i.j.pwconv1`` <- ``stages.i.j.pwconv1`` | ``stages.i.blocks.j.mlp.fc1`` | ``features.{2i+1}.j.block.3``
* ``stages.i.j.pwconv2`` <- ``stages.i.j.pwconv2`` | ``stages.i.blocks.j.mlp.fc2`` | ``features.{2i+1}.j.block.5``
* ``stages.i.j.gamma`` <- ``stages.i.j.gamma`` | ``stages.i.blocks.j.gamma`` | ``features.{2i+1}.j.layer_scale``
* ``head.norm`` <- ``norm`` | ``head.norm`` | ``classifier.0``
* ``head.fc`` <- ``head`` | ``head.fc`` | ``classifier.2``

timm's ``conv_mlp`` models (atto ... nano) hold ``mlp.fc1/fc2`` as 1x1 convolutions and torchvision's layer scale
is ``(C, 1, 1)``: both are reshaped to ours. The classifier loads when the class count fits (else it is listed as
skipped and ``head.fc`` starts fresh); the RGB stem is summed for 1-channel targets
(:mod:`~monai_ssl.networks.pretrained.adapt`). A source tensor of none of these names (ConvNeXt V2's GRN, timm's
``head.pre_logits``, ...) raises a ``ValueError`` naming it: it has no place in this ConvNeXt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..nets.convnext_mae import convnext_mae_to_convnext
from .adapt import adapt_stem, filtered, take_if_fits
from .registry import register_pretrained_kind

__all__ = ["convnext_mae_filter", "convnext_official_filter", "timm_convnext_filter", "torchvision_convnext_filter"]


@register_pretrained_kind("convnext_mae", scope=lambda k: not k.startswith("head."),
                          description="ConvNeXtMAE (encoder.*) or its encoder export (mae_pretrain's encoder.pt) "
                                      "-> monai_ssl ConvNeXt (head fresh)")
def convnext_mae_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``convnext_mae`` kind: :func:`convnext_mae_to_convnext` (``model`` unused, the names match). A state
    dict already in ConvNeXt names (the ``mae_pretrain`` bundle's ``models/encoder.pt``, or a ConvNeXt
    classifier) passes unchanged, less its ``head.fc`` (the classifier starts fresh)."""
    if not any(k.startswith("encoder.") for k in state_dict) and "downsample_layers.0.0.weight" in state_dict:
        return {k: v for k, v in state_dict.items() if not k.startswith("head.fc.")}
    return convnext_mae_to_convnext(state_dict)


_BLOCK = r"(dwconv|norm|pwconv1|pwconv2)\.(weight|bias)$|gamma$"
_OFFICIAL = [
    (r"^downsample_layers\.(\d+)\.([01])\.(weight|bias)$", r"downsample_layers.\1.\2.\3"),
    (rf"^stages\.(\d+)\.(\d+)\.(?:{_BLOCK})", lambda m: f"stages.{m[1]}.{m[2]}." + _block_tail(m, 3)),
    (r"^norm\.(weight|bias)$", r"head.norm.\1"),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]
_TIMM_PARTS = {"conv_dw": "dwconv", "norm": "norm", "mlp.fc1": "pwconv1", "mlp.fc2": "pwconv2"}
_TIMM = [
    (r"^stem\.([01])\.(weight|bias)$", r"downsample_layers.0.\1.\2"),
    (r"^stages\.(\d+)\.downsample\.([01])\.(weight|bias)$", r"downsample_layers.\1.\2.\3"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.(conv_dw|norm|mlp\.fc1|mlp\.fc2)\.(weight|bias)$",
     lambda m: f"stages.{m[1]}.{m[2]}.{_TIMM_PARTS[m[3]]}.{m[4]}"),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.gamma$", r"stages.\1.\2.gamma"),
    (r"^head\.(norm|fc)\.(weight|bias)$", r"head.\1.\2"),
]
_TV_PARTS = {"0": "dwconv", "2": "norm", "3": "pwconv1", "5": "pwconv2"}
_TORCHVISION = [
    (r"^features\.0\.([01])\.(weight|bias)$", r"downsample_layers.0.\1.\2"),
    (r"^features\.(\d+)\.([01])\.(weight|bias)$",
     lambda m: f"downsample_layers.{int(m[1]) // 2}.{m[2]}.{m[3]}" if int(m[1]) % 2 == 0 else None),
    (r"^features\.(\d+)\.(\d+)\.block\.([0235])\.(weight|bias)$",
     lambda m: f"stages.{int(m[1]) // 2}.{m[2]}.{_TV_PARTS[m[3]]}.{m[4]}" if int(m[1]) % 2 else None),
    (r"^features\.(\d+)\.(\d+)\.layer_scale$",
     lambda m: f"stages.{int(m[1]) // 2}.{m[2]}.gamma" if int(m[1]) % 2 else None),
    (r"^classifier\.0\.(weight|bias)$", r"head.norm.\1"),
    (r"^classifier\.2\.(weight|bias)$", r"head.fc.\1"),
]


def _block_tail(m: re.Match, first: int) -> str:
    return "gamma" if m[first] is None else f"{m[first]}.{m[first + 1]}"


def _rename(key: str, rules: list[tuple[str, str | Callable]]) -> str | None:
    for pattern, repl in rules:
        m = re.match(pattern, key)
        if m:
            return repl(m) if callable(repl) else m.expand(repl)
    return None


def imagenet_convnext_filter(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module | None, rules: list, kind: str, example: str
) -> dict:
    """Shared body of the three ImageNet ConvNeXt kinds: rename by ``rules`` (see the module docstring), reshape
    timm's 1x1-conv MLP and torchvision's ``(C, 1, 1)`` layer scale, adapt the stem, fit the classifier.

    Raises:
        ValueError: no tensor of the layout (``example`` names one), or source tensors the layout does not know.
    """
    out, head, unknown = {}, {}, []
    for key, value in state_dict.items():
        dst = _rename(key, rules)
        if dst is None:
            unknown.append(key)
        elif dst.startswith("head.fc."):
            head[key] = (dst, value)
        else:
            if dst.endswith(("pwconv1.weight", "pwconv2.weight")) and value.ndim > 2:
                value = value.flatten(1)  # 1x1 convolution -> linear
            elif dst.endswith(".gamma"):
                value = value.reshape(-1)
            out[dst] = adapt_stem(value, dst, model) if dst == "downsample_layers.0.0.weight" else value
    if "downsample_layers.0.0.weight" not in out:
        raise ValueError(f"not a {kind} layout: no {example}; keys like {sorted(state_dict)[:5]}.")
    if unknown:
        raise ValueError(f"{len(unknown)} tensors have no place in monai_ssl's ConvNeXt (a ConvNeXt V2 / other "
                         f"variant?): {unknown[:10]}")
    unused: list[str] = []
    take_if_fits(out, unused, head, model)
    return filtered(out, unused, kind)


def _SCOPE(key: str) -> bool:
    return not key.startswith("head.fc.")


@register_pretrained_kind("convnext_official", scope=_SCOPE,
                          description="facebookresearch ConvNeXt release ({'model': ...}) -> monai_ssl ConvNeXt (2D)")
def convnext_official_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``convnext_official`` kind: ``convnext_{tiny,small,base,large}_1k_224_ema.pth`` /
    ``*_22k_224.pth`` of facebookresearch/ConvNeXt (weights under ``"model"``); see the module docstring."""
    return imagenet_convnext_filter(state_dict, model, _OFFICIAL, "convnext_official", "downsample_layers.0.0.weight")


@register_pretrained_kind("timm_convnext", scope=_SCOPE,
                          description="timm ConvNeXt (convnext_atto ... xlarge) -> monai_ssl ConvNeXt (2D)")
def timm_convnext_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``timm_convnext`` kind: ``timm.create_model("convnext_tiny")`` state dicts (``model.safetensors`` of
    ``timm/convnext_tiny.fb_in1k`` ...); see the module docstring."""
    return imagenet_convnext_filter(state_dict, model, _TIMM, "timm_convnext", "stem.0.weight")


@register_pretrained_kind("torchvision_convnext", scope=_SCOPE,
                          description="torchvision ConvNeXt (convnext_tiny ... large) -> monai_ssl ConvNeXt (2D)")
def torchvision_convnext_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``torchvision_convnext`` kind: ``torchvision.models.convnext_tiny`` state dicts
    (``convnext_tiny-983f1562.pth`` ...); see the module docstring."""
    return imagenet_convnext_filter(state_dict, model, _TORCHVISION, "torchvision_convnext", "features.0.0.weight")
