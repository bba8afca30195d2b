"""Kinds that load into MONAI's ``ResNet`` (``monai.networks.nets.ResNet`` / ``resnet18`` ... ``resnet200``).

``contrastive_resnet``: the encoder of a :class:`~monai_ssl.networks.nets.ContrastiveModel` (SimCLR, Chen et al.
2020; MoCo, He et al. 2020; MICLe, Azizi et al. 2021), which *is* a MONAI ``ResNet`` built with
``feed_forward=False``, into a MONAI ``ResNet`` classifier whose ``fc`` starts fresh.

``torchvision_resnet`` / ``timm_resnet``: ImageNet ResNet-18/34/50/101/152 of torchvision (``resnet18-f37072fd.pth``
...) and timm (``resnet50.a1_in1k`` ...; the plain ``resnet*`` models, not the ``*d`` deep-stem variants). Their
names equal MONAI's (``conv1``, ``bn1``, ``layer{1-4}.{i}.{conv,bn}{1,2,3}``, ``downsample.{0,1}``, ``fc``), so the
map is the identity plus: the target's structure is checked (2D, 7x7 stride-2 stem, max pool: MONAI's defaults are
``conv1_t_stride=1`` and a 3D stem), a zero bias is supplied when the target was built with
``bias_downsample=True`` (a zero bias is the bias-free convolution), the RGB stem is summed for 1-channel targets
(:mod:`~monai_ssl.networks.pretrained.adapt`) and ``fc`` loads when the class count fits (else it is listed as
skipped and the target's ``fc`` starts fresh).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .adapt import adapt_stem, filtered, take_if_fits
from .registry import register_pretrained_kind

__all__ = ["contrastive_to_resnet", "imagenet_resnet_filter", "timm_resnet_filter", "torchvision_resnet_filter"]


@register_pretrained_kind("contrastive_resnet", scope=lambda k: not k.startswith("fc."),
                          description="ContrastiveModel (encoder.*) or a bare ResNet encoder "
                                      "-> monai ResNet (fc fresh)")
def contrastive_to_resnet(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None, encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Map a :class:`~monai_ssl.networks.nets.ContrastiveModel` state dict onto a MONAI ``ResNet`` classifier.

    The contrastive encoder is a MONAI ``ResNet`` built with ``feed_forward=False``, so its keys (``conv1``,
    ``bn1``, ``layer1`` ... ``layer4``, BN running statistics included) equal the classifier's. The map keeps the
    ``encoder.*`` keys without the prefix and drops the projection head (``head.*``); the classifier's ``fc``
    is not in the result, so it keeps its fresh initialisation. A bare encoder state dict (no ``encoder.``
    keys, e.g. the ``stage<i>_<name>_encoder.pt`` files of the curricular runner) is used as is, minus any
    ``fc.*`` entry.

    Args:
        state_dict: source tensors.
        model: the target (unused: the names are MONAI's on both sides).
        encoder_prefix: prefix of the encoder keys in the source.

    Returns:
        ``{target key: tensor}``.

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


def _check_resnet_target(model: nn.Module) -> None:
    """The MONAI ``ResNet`` settings an ImageNet ResNet needs; each wrong one is named with its fix."""
    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "layer4"):
        raise ValueError(f"the target must be a 2D monai.networks.nets.ResNet, got {type(model).__name__} with "
                         f"conv1 = {type(conv1).__name__}; build it with spatial_dims=2.")
    wrong = []
    if tuple(conv1.kernel_size) != (7, 7):
        wrong.append(f"conv1 kernel {tuple(conv1.kernel_size)} (needs conv1_t_size=7)")
    if tuple(conv1.stride) != (2, 2):
        wrong.append(f"conv1 stride {tuple(conv1.stride)} (needs conv1_t_stride=2)")
    if getattr(model, "no_max_pool", False):
        wrong.append("no max pool (needs no_max_pool=False)")
    if wrong:
        raise ValueError("the ResNet differs from the ImageNet ResNet in " + "; ".join(wrong)
                         + ": shapes would match but outputs would not.")


def imagenet_resnet_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None, kind: str) -> dict:
    """Shared body of ``torchvision_resnet`` and ``timm_resnet`` (see the module docstring).

    Args:
        state_dict: the ImageNet ResNet's tensors (a flat state dict; the door unwraps containers).
        model: the target MONAI ``ResNet`` (2D), or None to rename only.
        kind: the kind name, for messages.

    Returns:
        a ``FilteredState``: ``{target key: tensor}`` and ``unused`` (a classifier of another size).

    Raises:
        ValueError: not a plain ResNet layout (deep stem, average-pool shortcuts), or a target built differently.
    """
    if "conv1.weight" not in state_dict or "layer1.0.conv1.weight" not in state_dict:
        hint = (" (a timm deep-stem '*d' variant: conv1.0/1/3 and avg-pool shortcuts have no MONAI counterpart)"
                if "conv1.0.weight" in state_dict else "")
        raise ValueError(f"not a torchvision/timm ResNet layout (conv1.weight, layer1.0.conv1.weight){hint}; keys "
                         f"like {sorted(state_dict)[:5]}.")
    avgpool_shortcut = [k for k in state_dict if ".downsample.2." in k]
    if avgpool_shortcut:
        raise ValueError(f"average-pool shortcuts ({avgpool_shortcut[0]}, ...: timm '*d' variants) have no MONAI "
                         "ResNet counterpart.")
    if model is not None:
        _check_resnet_target(model)
    target = model.state_dict() if model is not None else {}
    out, unused = {}, []
    for key, value in state_dict.items():
        if key.startswith("fc."):
            continue
        out[key] = adapt_stem(value, key, model) if key == "conv1.weight" else value
        if key.endswith(".downsample.0.weight"):
            bias = key[: -len("weight")] + "bias"
            if bias in target and bias not in state_dict:
                out[bias] = torch.zeros(value.shape[0], dtype=value.dtype)
    take_if_fits(out, unused, {k: (k, v) for k, v in state_dict.items() if k.startswith("fc.")}, model)
    return filtered(out, unused, kind)


@register_pretrained_kind("torchvision_resnet", scope=lambda k: not k.startswith("fc."),
                          description="torchvision ImageNet ResNet-18/34/50/101/152 -> monai ResNet (2D; fc if fits)")
def torchvision_resnet_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``torchvision_resnet`` kind (``torchvision.models.resnet*`` state dicts, e.g. ``resnet18-f37072fd.pth``);
    see :func:`imagenet_resnet_filter`. Build the target as ``resnet18(spatial_dims=2, n_input_channels=3 (or 1),
    conv1_t_size=7, conv1_t_stride=2, bias_downsample=False, num_classes=1000 (or yours))``."""
    return imagenet_resnet_filter(state_dict, model, "torchvision_resnet")


@register_pretrained_kind("timm_resnet", scope=lambda k: not k.startswith("fc."),
                          description="timm ImageNet ResNet-18...152 (plain stem) -> monai ResNet (2D; fc if fits)")
def timm_resnet_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``timm_resnet`` kind (``timm.create_model("resnet50")`` state dicts, ``pytorch_model.bin`` or
    ``model.safetensors`` of the Hugging Face ``timm/resnet50.a1_in1k`` ...); same names as torchvision, see
    :func:`imagenet_resnet_filter`."""
    return imagenet_resnet_filter(state_dict, model, "timm_resnet")
