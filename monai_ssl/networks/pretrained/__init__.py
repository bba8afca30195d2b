"""Pretrained weights: one door (:func:`load_pretrained`), one registry of kinds, one filter function per kind.

Layout (where a new kind goes):

* ``registry.py``: :class:`PretrainedKind`, :data:`PRETRAINED_KINDS`, :func:`register_pretrained_kind`,
  :func:`load_pretrained`, :func:`pretrained_filter` and the ``state_dict`` kind (names unchanged).
* one module per **target family**, holding every kind that loads into it, registered with the decorator:
  ``resnet.py`` (MONAI ``ResNet``), ``vit.py`` (MONAI ``ViT`` / ``UNETR.vit``), ``swin.py`` (MONAI
  ``SwinUNETR.swinViT``), ``convnext.py`` (:class:`~monai_ssl.networks.nets.ConvNeXt`). Third-party layouts
  (torchvision, timm, official releases) are kinds in the module of the family they load into.
* the export map of one of this project's pretraining models (``mae_vit_to_monai_vit``,
  ``swin_mae_to_swinunetr``, ``convnext_mae_to_convnext``) stays in that model's file under ``nets/``; the family
  module registers a kind that calls it.

=======================  ==========================================  ===========================================
kind                     source                                      target
=======================  ==========================================  ===========================================
``contrastive_resnet``   ``ContrastiveModel`` (``encoder.*``) or a    ``monai.networks.nets.ResNet`` classifier
                         bare ResNet encoder state dict               (``fc`` stays freshly initialised)
``mae_vit``              ``MaskedAutoencoderViT``                     ``monai.networks.nets.ViT``
``mae_vit_unetr``        ``MaskedAutoencoderViT`` or ``UNETR``        ``monai.networks.nets.UNETR`` (``vit.*``)
``swin_mae_swinunetr``   ``SwinMAE`` or ``SwinUNETR``                 ``monai.networks.nets.SwinUNETR``
                                                                      (``swinViT.*``)
``convnext_mae``         ``ConvNeXtMAE``                              :class:`~monai_ssl.networks.nets.ConvNeXt`
``state_dict``           any state dict with the target's key names  the same architecture (no renaming)
``torchvision_resnet``   torchvision ImageNet ResNet-18 ... 152       ``monai.networks.nets.ResNet`` (2D)
``timm_resnet``          timm ImageNet ResNet-18 ... 152 (plain stem) ``monai.networks.nets.ResNet`` (2D)
``torchvision_convnext`` torchvision ConvNeXt (tiny ... large)        :class:`~monai_ssl.networks.nets.ConvNeXt`
``timm_convnext``        timm ConvNeXt (atto ... xlarge)              :class:`~monai_ssl.networks.nets.ConvNeXt`
``convnext_official``    facebookresearch ConvNeXt release            :class:`~monai_ssl.networks.nets.ConvNeXt`
``timm_vit``             timm VisionTransformer                       ``monai.networks.nets.ViT`` / ``UNETR.vit``
                                                                      (2D; position table resampled)
``monai_swinvit``        research-contributions SwinUNETR SSL         ``monai.networks.nets.SwinUNETR``
                         pretraining (pretext heads listed, unused)   (``swinViT.*``)
=======================  ==========================================  ===========================================

The third-party kinds adapt an RGB stem to 1-channel targets by summing its filters and load an ImageNet classifier
when the class count fits; what a filter leaves out on purpose is listed in the report's ``skipped``
(:class:`~monai_ssl.networks.pretrained.registry.FilteredState`). See ``docs/pretrained_weights.md``.
"""

from __future__ import annotations

from . import convnext, resnet, swin, vit  # noqa: F401  (each registers its kinds)
from .registry import (
    PRETRAINED_KINDS,
    FilteredState,
    PretrainedKind,
    check_compatible,
    load_pretrained,
    pretrained_filter,
    read_state_dict,
    register_pretrained_kind,
)
from .resnet import contrastive_to_resnet

__all__ = [
    "PRETRAINED_KINDS",
    "FilteredState",
    "PretrainedKind",
    "check_compatible",
    "contrastive_to_resnet",
    "load_pretrained",
    "pretrained_filter",
    "read_state_dict",
    "register_pretrained_kind",
]
