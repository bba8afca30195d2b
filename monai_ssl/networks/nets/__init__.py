"""Networks for self-supervised pretraining."""

from __future__ import annotations

from .contrastive import ContrastiveModel, pool_features
from .convnext import ConvNeXt, ConvNeXtBlock, LayerNormChannelsFirst, convnext_small, convnext_tiny
from .convnext_mae import ConvNeXtMAE, convnext_mae_small, convnext_mae_tiny, convnext_mae_to_convnext
from .mae import (
    MaskedAutoencoderViT,
    mae_vit_base_patch16,
    mae_vit_large_patch16,
    mae_vit_small_patch16,
    sincos_position_embedding,
)
from .swin_mae import PatchExpand, SwinMAE, swin_mae_swinunetr, swin_mae_tiny, swin_mae_to_swinunetr

__all__ = ["ContrastiveModel", "MaskedAutoencoderViT", "pool_features", "sincos_position_embedding"]
# ConvNeXt, ConvNeXt-MAE (FCMAE-style) and Swin-MAE (VIS-MAE)
__all__ += [
    "ConvNeXt",
    "ConvNeXtBlock",
    "ConvNeXtMAE",
    "LayerNormChannelsFirst",
    "PatchExpand",
    "SwinMAE",
    "convnext_mae_to_convnext",
    "convnext_small",
    "convnext_tiny",
    "swin_mae_to_swinunetr",
]
# factories for the usual sizes (keyword arguments override)
__all__ += [
    "convnext_mae_small",
    "convnext_mae_tiny",
    "mae_vit_base_patch16",
    "mae_vit_large_patch16",
    "mae_vit_small_patch16",
    "swin_mae_swinunetr",
    "swin_mae_tiny",
]
