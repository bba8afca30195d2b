"""Networks, blocks and weight-transfer utilities."""

from __future__ import annotations

from .blocks import ProjectionHead
from .classifier_init import prepare_classifier
from .freezing import freeze_encoder, unfreeze_encoder
from .masking import block_mask_to_tokens, entropy_guided_mask, random_unit_mask, unit_entropy
from .masking import EntropyGuidedMasking, MaskGenerator, RandomMasking, build_masking
from .nets import ContrastiveModel, pool_features
from .nets import (  # ConvNeXt / ConvNeXt-MAE / Swin-MAE
    ConvNeXt,
    ConvNeXtMAE,
    SwinMAE,
    convnext_mae_to_convnext,
    convnext_small,
    convnext_tiny,
    swin_mae_to_swinunetr,
)
from .nets import (  # factories for the usual MAE sizes
    convnext_mae_small,
    convnext_mae_tiny,
    mae_vit_base_patch16,
    mae_vit_large_patch16,
    mae_vit_small_patch16,
    swin_mae_swinunetr,
    swin_mae_tiny,
)
from .patching import patchify, unpatchify
from .nets.mae import mae_vit_to_monai_vit
from .pretrained import PRETRAINED_KINDS, contrastive_to_resnet, load_pretrained, pretrained_filter
from .pretrained import register_pretrained_kind
from .weights import MAX_ABS_WEIGHT, NonFiniteWeightsError, WeightLoadReport, check_weights, load_checkpoint_weights
from .weights import load_mapped_state_dict

__all__ = [
    "ContrastiveModel",
    "ProjectionHead",
    "pool_features",
    # masked-autoencoder utilities
    "MAX_ABS_WEIGHT",
    "NonFiniteWeightsError",
    "WeightLoadReport",
    "check_weights",
    "block_mask_to_tokens",
    "entropy_guided_mask",
    "load_checkpoint_weights",
    "load_mapped_state_dict",
    "mae_vit_to_monai_vit",
    "patchify",
    "random_unit_mask",
    "unit_entropy",
    "unpatchify",
]
__all__ += [  # ConvNeXt / ConvNeXt-MAE / Swin-MAE
    "ConvNeXt",
    "ConvNeXtMAE",
    "SwinMAE",
    "convnext_mae_to_convnext",
    "convnext_small",
    "convnext_tiny",
    "swin_mae_to_swinunetr",
]
__all__ += [  # the one pretrained-weights door and its registry of kinds
    "PRETRAINED_KINDS",
    "contrastive_to_resnet",
    "load_pretrained",
    "pretrained_filter",
    "register_pretrained_kind",
]
__all__ += ["freeze_encoder", "unfreeze_encoder"]  # linear probing: frozen encoder, BN statistics kept
__all__ += ["EntropyGuidedMasking", "MaskGenerator", "RandomMasking", "build_masking"]  # mask generators
__all__ += [  # MAE factories
    "convnext_mae_small",
    "convnext_mae_tiny",
    "mae_vit_base_patch16",
    "mae_vit_large_patch16",
    "mae_vit_small_patch16",
    "swin_mae_swinunetr",
    "swin_mae_tiny",
]
__all__ += ["prepare_classifier"]  # fine-tune / linear-probe set-up from a pretrained encoder
