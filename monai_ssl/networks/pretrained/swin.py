"""Kinds that load into the Swin encoder (``swinViT``) of MONAI's ``SwinUNETR`` (Hatamizadeh et al. 2022).

``swin_mae_swinunetr``: the encoder of a :class:`~monai_ssl.networks.nets.SwinMAE` (VIS-MAE, Liu et al. 2024),
through that model's own export map :func:`~monai_ssl.networks.nets.swin_mae.swin_mae_to_swinunetr`, or the
``swinViT.*`` tensors of a SwinUNETR checkpoint. Given the target, the Swin structure (feature size, patch size,
depths, heads, window, MLP width, v2 blocks) is checked first, naming each difference.

``monai_swinvit``: the self-supervised Swin UNETR pretraining of Project-MONAI/research-contributions
(``SwinUNETR/Pretrain``; Tang et al., "Self-Supervised Pre-Training of Swin Transformers for 3D Medical Image
Analysis", CVPR 2022). Two layouts, both ``{"state_dict": ...}`` with the DDP ``module.`` prefix (stripped by
the door):

* a checkpoint written by its training script (``model_bestValRMSE.pt``, ``model_final_epoch.pt``): the
  ``SSLHead`` model, i.e. ``swin_vit.*`` (MONAI's ``SwinTransformer``) plus the pretext heads ``rotation_head``,
  ``contrastive_head`` and the reconstruction decoder ``conv.*``;
* the released ``model_swinvit.pt``: the encoder without the ``swin_vit.`` level (``patch_embed.*``,
  ``layers{1-4}.0.blocks.{b}.*``, ``layers{n}.0.downsample.*``) with the MLP named ``mlp.fc1`` / ``mlp.fc2``
  (the names MONAI's ``SwinUNETR.load_from`` reads).

The encoder goes to ``swinViT.*`` (``mlp.fc{1,2}`` -> ``mlp.linear{1,2}``); the pretext heads and anything else are
listed as skipped, not errors. The released encoder has ``feature_size=48``, 1 input channel, window 7, patch 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..nets.swin_mae import swin_mae_to_swinunetr
from .adapt import filtered
from .registry import check_compatible, register_pretrained_kind

__all__ = ["monai_swinvit_filter", "swin_mae_swinunetr_filter", "swin_signature"]


def swin_signature(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Structural settings of a MONAI ``SwinTransformer`` read from tensor names/shapes under ``prefix``."""
    w = state.get(prefix + "patch_embed.proj.weight")
    if w is None:
        return {}
    sig: dict[str, Any] = {
        "spatial_dims": w.ndim - 2,
        "feature_size": int(w.shape[0]),
        "in_channels": int(w.shape[1]),
        "patch_size": tuple(int(s) for s in w.shape[2:]),
        "use_v2": any(k.startswith(prefix + "layers1c.") for k in state),
    }
    depths, heads, windows, mlp, qkv_bias = [], [], [], None, None
    for stage in range(1, 5):
        pat = re.compile(re.escape(f"{prefix}layers{stage}.0.blocks.") + r"(\d+)\.")
        blocks = {int(m.group(1)) for k in state if (m := pat.match(k))}
        depths.append(len(blocks))
        table = state.get(f"{prefix}layers{stage}.0.blocks.0.attn.relative_position_bias_table")
        heads.append(None if table is None else int(table.shape[1]))
        windows.append(None if table is None else int(table.shape[0]))
        if stage == 1:
            lin = state.get(f"{prefix}layers1.0.blocks.0.mlp.linear1.weight")
            mlp = None if lin is None else int(lin.shape[0])
            qkv_bias = f"{prefix}layers1.0.blocks.0.attn.qkv.bias" in state
    sig.update(depths=tuple(depths), num_heads=tuple(heads), mlp_hidden=mlp, qkv_bias=qkv_bias)
    sig["relative_position_table_rows (window_size)"] = tuple(windows)
    return sig


@register_pretrained_kind("swin_mae_swinunetr", scope=lambda k: k.startswith("swinViT."),
                          description="SwinMAE (encoder.*) or SwinUNETR (swinViT.*) -> monai SwinUNETR's swinViT")
def swin_mae_swinunetr_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``swin_mae_swinunetr`` kind: a ``SwinMAE`` encoder mapped to ``swinViT.*``, or the ``swinViT.*``
    tensors of a SwinUNETR checkpoint (MONAI's SwinUNETR decoder is convolutional: nothing else transfers).

    Raises:
        ValueError: neither layout, or (with ``model``) structural settings that differ, each named.
    """
    if any(k.startswith("encoder.patch_embed.") for k in state_dict):
        mapped, src_name = swin_mae_to_swinunetr(state_dict, prefix="swinViT."), "SwinMAE"
    elif any(k.startswith("swinViT.patch_embed.") for k in state_dict):
        mapped, src_name = {k: v for k, v in state_dict.items() if k.startswith("swinViT.")}, "SwinUNETR"
    else:
        raise ValueError(
            "pretrained weights for swinunetr must come from a SwinMAE (keys 'encoder.patch_embed.*', ...) or a "
            f"SwinUNETR ('swinViT.*'); got keys like {sorted(state_dict)[:5]}. A ViT-MAE checkpoint goes with "
            "arch='unetr' (kind 'mae_vit_unetr')."
        )
    if model is not None:
        check_compatible(swin_signature(mapped, "swinViT."), swin_signature(model.state_dict(), "swinViT."), src_name,
                         "SwinUNETR", "Pass the MAE's settings (feature_size, patch_size, depths, num_heads, "
                         "window_size, mlp_ratio, qkv_bias, use_v2) as keyword arguments.")
    return mapped


_SWIN_ENCODER = re.compile(r"^(patch_embed|layers[1-4]c?)\.")


@register_pretrained_kind("monai_swinvit", scope=lambda k: k.startswith("swinViT."),
                          description="research-contributions SwinUNETR SSL pretraining (model_swinvit.pt or an "
                                      "SSLHead checkpoint) -> monai SwinUNETR's swinViT (pretext heads skipped)")
def monai_swinvit_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``monai_swinvit`` kind (see the module docstring).

    Returns:
        a ``FilteredState``: the ``swinViT.*`` tensors and ``unused`` (rotation / contrastive / reconstruction
        heads, anything outside the encoder).

    Raises:
        ValueError: neither layout, or (with ``model``) Swin settings that differ, each named.
    """
    if any(k.startswith("swin_vit.") for k in state_dict):
        body, src_name = "swin_vit.", "SwinUNETR SSL pretraining checkpoint (SSLHead)"
    elif "patch_embed.proj.weight" in state_dict:
        body, src_name = "", "SwinUNETR SSL pretraining release (model_swinvit.pt)"
    else:
        raise ValueError(
            "not a SwinUNETR self-supervised pretraining checkpoint (keys 'module.swin_vit.*' of the training script, "
            "or 'module.patch_embed.*' / 'module.layers1.*' of model_swinvit.pt); got keys like "
            f"{sorted(state_dict)[:5]}."
        )
    out, unused = {}, []
    for key, value in state_dict.items():
        name = key[len(body):] if key.startswith(body) else None
        if name is None or not _SWIN_ENCODER.match(name):
            unused.append(key)
            continue
        out["swinViT." + name.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")] = value
    if model is not None:
        check_compatible(swin_signature(out, "swinViT."), swin_signature(model.state_dict(), "swinViT."), src_name,
                         "SwinUNETR", "The released encoder needs SwinUNETR(in_channels=1, feature_size=48, "
                         "spatial_dims=3) with the default depths, heads, window 7 and patch 2.")
    return filtered(out, unused, "monai_swinvit")
