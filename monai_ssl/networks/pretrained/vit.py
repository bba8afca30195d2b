"""Kinds that load into MONAI's ``ViT`` (Dosovitskiy et al. 2021) and the ``vit`` encoder of ``UNETR``
(Hatamizadeh et al. 2022).

``mae_vit`` / ``mae_vit_unetr``: the encoder of a :class:`~monai_ssl.networks.nets.MaskedAutoencoderViT` (MAE,
He et al. 2022), through that model's own export map :func:`~monai_ssl.networks.nets.mae.mae_vit_to_monai_vit`
(the MAE encoder already uses MONAI's names). ``mae_vit_unetr`` also takes a UNETR checkpoint (``vit.*``) and,
given the target, checks its structure (hidden size, patch size, token count, depth, MLP width) first, naming
each difference.

``timm_vit``: a timm ``VisionTransformer`` (``vit_tiny_patch16_224.augreg_in21k_ft_in1k``, ``vit_base_patch16_224``
..., and DeiT / MAE fine-tunes in timm's layout) into a 2D ``ViT`` or a 2D ``UNETR``'s ``vit``. Names:
``patch_embed.proj`` -> ``patch_embedding.patch_embeddings``, ``blocks.i.attn.proj`` -> ``blocks.i.attn.out_proj``,
``blocks.i.mlp.fc{1,2}`` -> ``blocks.i.mlp.linear{1,2}``, ``norm1`` / ``norm2`` / ``attn.qkv`` / ``norm`` kept,
``head`` -> ``classification_head`` (when the class count fits). Two tensors change form:

* timm adds ``pos_embed[:, 0]`` to the class token *before* the blocks, MONAI adds no position to it, so
  ``cls_token`` becomes ``cls_token + pos_embed[:, :1]`` (exact); a target without a class token (``UNETR``,
  ``classification=False``) leaves both out (listed as skipped; its outputs can then differ from timm's, which
  attend to the class token);
* the patch part of ``pos_embed`` is resampled to the target's grid when the image size differs, bicubic with
  antialiasing as timm's own ``resample_abs_pos_embed`` does (``align_corners=False``).

Build the target with ``qkv_bias=True``, ``post_activation=None`` (MONAI's default ``"Tanh"`` squashes the
logits), ``spatial_dims=2`` and the source's ``hidden_size``, ``mlp_dim``, ``num_heads`` (timm tiny/small/base/
large: 3/6/12/16 heads); a head count cannot be read from the tensors. MONAI's LayerNorms use ``eps=1e-5``, timm's
``1e-6``: the logits of the test fixture (up to 3.5 in magnitude) differ by up to 6e-5. A source pooled by
``fc_norm`` (timm's ``global_pool="avg"`` models, ``norm`` an identity) has its ``fc_norm`` loaded as MONAI's token
``norm``: the norm then acts on every token before pooling, an approximation. A source with pieces MONAI's ViT lacks
(layer scale ``ls1/ls2``, ``q_norm/k_norm``, register tokens, ``norm_pre``, attention pooling) raises, naming them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.mae import mae_vit_to_monai_vit
from .adapt import adapt_stem, filtered, take_if_fits
from .registry import check_compatible, register_pretrained_kind

__all__ = ["mae_vit_filter", "mae_vit_unetr_filter", "resample_position_table", "timm_vit_filter", "vit_signature"]


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


_TIMM_VIT_BLOCK = re.compile(r"^blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$")
_TIMM_VIT_PARTS = {"attn.proj": "attn.out_proj", "mlp.fc1": "mlp.linear1", "mlp.fc2": "mlp.linear2"}


def resample_position_table(table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """``(1, H*W, D)`` patch position table on ``old_grid`` -> ``(1, h*w, D)`` on ``new_grid`` (row-major tokens),
    bicubic with antialiasing in float32 (timm's ``resample_abs_pos_embed`` rule); unchanged when the grids agree."""
    if tuple(old_grid) == tuple(new_grid):
        return table
    dim = table.shape[-1]
    grid = table.float().reshape(1, *old_grid, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=True, align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(table.dtype)


def _square(n: int, what: str) -> tuple[int, int]:
    side = round(n**0.5)
    if side * side != n:
        raise ValueError(f"{what} has {n} patch tokens, not a square grid; timm_vit supports square grids only.")
    return side, side


@register_pretrained_kind(
    "timm_vit",
    scope=lambda k: (k.removeprefix("vit.").startswith(("patch_embedding.", "blocks.", "norm."))
                     and ".norm_cross_attn." not in k),
    description="timm VisionTransformer -> monai ViT / UNETR.vit (2D; position table resampled; head if it fits)")
def timm_vit_filter(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> dict:
    """The ``timm_vit`` kind (see the module docstring); the target may be a ``ViT`` or a ``UNETR`` (``vit.*``).

    Returns:
        a ``FilteredState``: ``{target key: tensor}`` and ``unused`` (class token / head the target cannot take).

    Raises:
        ValueError: not a timm ViT, parts MONAI's ViT lacks, a 3D target, or structural settings that differ.
    """
    if "patch_embed.proj.weight" not in state_dict or "pos_embed" not in state_dict:
        raise ValueError(f"not a timm VisionTransformer layout (patch_embed.proj.weight, pos_embed); keys like "
                         f"{sorted(state_dict)[:5]}.")
    vit = getattr(model, "vit", model)
    prefix = "vit." if model is not None and vit is not model else ""
    target = vit.state_dict() if vit is not None else {}
    out, unused, head, unknown = {}, [], {}, []
    for key, value in state_dict.items():
        m = _TIMM_VIT_BLOCK.match(key)
        if m:
            out[f"blocks.{m[1]}.{_TIMM_VIT_PARTS.get(m[2], m[2])}.{m[3]}"] = value
        elif key in ("norm.weight", "norm.bias", "patch_embed.proj.bias"):
            out[key.replace("patch_embed.proj", "patch_embedding.patch_embeddings")] = value
        elif key in ("fc_norm.weight", "fc_norm.bias") and "norm.weight" not in state_dict:
            out[key[3:]] = value  # pooled-feature norm used as the token norm: an approximation (see above)
        elif key in ("head.weight", "head.bias"):
            head[key] = (key, value)
        elif key not in ("patch_embed.proj.weight", "pos_embed", "cls_token"):
            unknown.append(key)
    if unknown:
        raise ValueError(f"{len(unknown)} timm ViT tensors have no counterpart in MONAI's ViT (layer scale, "
                         f"q/k norm, register tokens, norm_pre, attention pooling?): {unknown[:10]}")
    patch = state_dict["patch_embed.proj.weight"]
    if target and target["patch_embedding.patch_embeddings.weight"].ndim != patch.ndim:
        raise ValueError("a timm ViT is 2D; build the ViT / UNETR with spatial_dims=2 (and proj_type='conv').")
    out["patch_embedding.patch_embeddings.weight"] = adapt_stem(patch, "patch_embedding.patch_embeddings.weight", vit)

    pos, has_cls = state_dict["pos_embed"], "cls_token" in state_dict
    n_prefix = 1 if has_cls and pos.shape[1] - 1 == _square_or_zero(pos.shape[1] - 1) else 0
    old_grid = _square(pos.shape[1] - n_prefix, "the checkpoint's pos_embed")
    new_grid = old_grid
    if "patch_embedding.position_embeddings" in target:
        new_grid = _square(target["patch_embedding.position_embeddings"].shape[1], "the target ViT")
    out["patch_embedding.position_embeddings"] = resample_position_table(pos[:, n_prefix:], old_grid, new_grid)
    if has_cls:
        if model is None or "cls_token" in target:
            out["cls_token"] = state_dict["cls_token"] + (pos[:, :1] if n_prefix else 0)
        else:
            unused.append("cls_token")
    if n_prefix and "cls_token" not in out:
        unused.append("pos_embed (class-token row)")
    head_key = "classification_head.weight"
    if "classification_head.0.weight" in target:  # post_activation="Tanh": Sequential(Linear, Tanh)
        head_key = "classification_head.0.weight"
    head = {k: (head_key.replace("weight", k.rsplit(".", 1)[1]), v) for k, (_, v) in head.items()}
    take_if_fits(out, unused, head, vit)
    if target:
        check_compatible(vit_signature(out, ""), vit_signature(target, ""), "timm ViT", type(vit).__name__,
                         "Build it with the timm model's hidden_size, mlp_dim, num_heads, patch size, qkv_bias=True, "
                         "spatial_dims=2.")
    return filtered({prefix + k: v for k, v in out.items()}, unused, "timm_vit")


def _square_or_zero(n: int) -> int:
    side = round(max(n, 0) ** 0.5)
    return n if side * side == n else -1
