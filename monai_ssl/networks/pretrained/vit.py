"""Kinds that load into MONAI's ``ViT`` (Dosovitskiy et al. 2021) and the ``vit`` encoder of ``UNETR``
(Hatamizadeh et al. 2022).

``mae_vit`` / ``mae_vit_unetr``: the encoder of a :class:`~monai_ssl.networks.nets.MaskedAutoencoderViT` (MAE,
He et al. 2022), through that model's own export map :func:`~monai_ssl.networks.nets.mae.mae_vit_to_monai_vit`
(the MAE encoder already uses MONAI's names). ``mae_vit_unetr`` also takes a UNETR checkpoint (``vit.*``) and,
given the target, checks its structure (hidden size, patch size, token count, depth, MLP width) first, naming
each difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..nets.mae import mae_vit_to_monai_vit
from .registry import check_compatible, register_pretrained_kind

__all__ = ["mae_vit_filter", "mae_vit_unetr_filter", "vit_signature"]


def vit_signature(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Structural settings of a (MONAI-named) ViT encoder read from tensor names/shapes under ``prefix``."""
    w = state.get(prefix + "patch_embedding.patch_embeddings.weight")
    if w is None:
        return {}
    pos = state.get(prefix + "patch_embedding.position_embeddings")
    pat = re.compile(re.escape(prefix + "blocks.") + r"(\d+)\.")
    lin = state.get(prefix + "blocks.0.mlp.linear1.weight")
    return {
        "spatial_dims": w.ndim - 2,
        "hidden_size": int(w.shape[0]),
        "in_channels": int(w.shape[1]),
        "patch_size": tuple(int(s) for s in w.shape[2:]),
        "num_tokens (img_size / patch_size)": None if pos is None else int(pos.shape[1]),
        "num_layers": len({int(m.group(1)) for k in state if (m := pat.match(k))}),
        "mlp_dim": None if lin is None else int(lin.shape[0]),
        "qkv_bias": (prefix + "blocks.0.attn.qkv.bias") in state,
    }


def _vit_encoder(name: str, prefix: str = "") -> bool:
    """A ViT encoder tensor under ``prefix``: not the class token or head (the MAE has neither), nor the
    ``norm_cross_attn`` LayerNorm MONAI's ``TransformerBlock`` builds and never uses without cross-attention."""
    if not name.startswith(prefix):
        return False
    name = name[len(prefix):]
    return not (name == "cls_token" or name.startswith("classification_head.") or ".norm_cross_attn." in name)


@register_pretrained_kind("mae_vit", scope=_vit_encoder,
                          description="MaskedAutoencoderViT -> monai ViT (encoder; no class token or head)")
def mae_vit_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``mae_vit`` kind: :func:`mae_vit_to_monai_vit` (``model`` unused, the names match)."""
    return mae_vit_to_monai_vit(state_dict)


@register_pretrained_kind("mae_vit_unetr", scope=lambda k: _vit_encoder(k, "vit."),
                          description="MaskedAutoencoderViT or UNETR (vit.*) -> monai UNETR's vit encoder")
def mae_vit_unetr_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``mae_vit_unetr`` kind: a ``MaskedAutoencoderViT`` (``patch_embedding.*``, ``blocks.*``) mapped to
    ``vit.*``, or the ``vit.*`` tensors of a UNETR checkpoint; the UNETR decoder has no MAE counterpart.

    Raises:
        ValueError: neither layout, or (with ``model``) structural settings that differ, each named.
    """
    if any(k.startswith("patch_embedding.patch_embeddings.") for k in state_dict):
        mapped, src_name = mae_vit_to_monai_vit(state_dict, prefix="vit."), "MaskedAutoencoderViT"
    elif any(k.startswith("vit.patch_embedding.") for k in state_dict):
        mapped, src_name = {k: v for k, v in state_dict.items() if k.startswith("vit.")}, "UNETR"
    else:
        raise ValueError(
            "pretrained weights for unetr must come from a MaskedAutoencoderViT (keys "
            f"'patch_embedding.patch_embeddings.*', 'blocks.*') or a UNETR ('vit.*'); got keys like "
            f"{sorted(state_dict)[:5]}. A SwinMAE checkpoint goes with arch='swinunetr' (kind 'swin_mae_swinunetr')."
        )
    if model is not None:
        check_compatible(vit_signature(mapped, "vit."), vit_signature(model.state_dict(), "vit."), src_name, "UNETR",
                         "UNETR always uses patch 16 and 12 blocks; pass the MAE's hidden_size, mlp_dim, "
                         "num_heads, qkv_bias and img_size.")
    return mapped
