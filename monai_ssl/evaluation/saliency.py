"""Saliency for classifier predictions: Grad-CAM (MONAI's) and ViT attention rollout, saved as PNG overlays.

``gradcam_overlays`` wraps ``monai.visualize.GradCAM`` with three fixes for evaluation use: each sample is
explained for its *own* class (MONAI's ``class_idx=None`` sums the scores of every sample's argmax class over
the batch), maps are min-max scaled to [0, 1] per sample with high = salient (MONAI's default normaliser
flips the range to (1, 0)), and the forward/backward hooks MONAI registers on the target layer are removed
afterwards. ``cam_fraction_in_roi`` gives the share of saliency inside a mask (e.g. the lungs, as the
curricular-SSL study reports).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.utils import optional_import
from torch import nn

__all__ = ["cam_fraction_in_roi", "gradcam_maps", "gradcam_overlays", "save_overlay", "vit_attention_map"]

def _normalise_per_sample(x: torch.Tensor) -> torch.Tensor:
    """Min-max scale each sample of (B, ...) to [0, 1]; a constant sample becomes all zeros."""
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 1e-12, (flat - lo) / span.clamp(min=1e-12), torch.zeros_like(flat))
    return out.reshape(x.shape)


def _resolve_classes(model: nn.Module, images: torch.Tensor, class_index) -> torch.Tensor:
    b = images.shape[0]
    if class_index is None:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            logits = model(images)
            model.train(was_training)
        if logits.ndim != 2:
            raise ValueError(f"the model must return (B, num_classes) logits, got {tuple(logits.shape)}.")
        return logits.argmax(1).cpu()
    idx = torch.as_tensor(class_index).reshape(-1).long()
    if idx.numel() == 1:
        return idx.expand(b).clone()
    if idx.numel() != b:
        raise ValueError(f"class_index must be an int or one index per image ({b}), got {idx.numel()}.")
    return idx


def gradcam_maps(
    model: nn.Module, images: torch.Tensor, target_layer: str, class_index: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Grad-CAM maps of ``model`` at ``target_layer`` (MONAI ``GradCAM``), upsampled to the image size.

    Args:
        model: classifier returning ``(B, num_classes)`` logits (a one-logit binary model explains its logit).
        images: ``(B, C, H, W[, D])``.
        target_layer: dotted module name, as in ``dict(model.named_modules())`` (e.g. ``"layer4"`` for a MONAI
            ResNet, ``"stages.3"`` for ConvNeXt).
        class_index: class to explain: ``None`` (each image's predicted class), one int for all images, or one
            index per image.

    Returns:
        ``(B, 1, H, W[, D])`` float maps in [0, 1] per image (all zeros where the class has no positive evidence).

    Note:
        The model is run in eval mode (restored afterwards) and its parameter gradients are zeroed.
    """
    from monai.visualize import GradCAM

    if images.ndim < 4:
        raise ValueError(f"images must be (B, C, H, W[, D]), got {tuple(images.shape)}.")
    modules = dict(model.named_modules())
    if target_layer not in modules:
        names = [n for n in modules if n][:30]
        raise ValueError(f"target_layer {target_layer!r} is not a module of {type(model).__name__}; "
                         f"some module names: {names}.")
    layer = modules[target_layer]
    fwd_before, bwd_before = set(layer._forward_hooks), set(layer._backward_hooks)
    inplace = layer.__dict__.get("inplace")
    classes = _resolve_classes(model, images, class_index)
    out = torch.zeros((images.shape[0], 1, *images.shape[2:]), dtype=torch.float32)
    try:
        cam = GradCAM(nn_module=model, target_layers=target_layer, postprocessing=lambda x: x)
        for c in classes.unique().tolist():  # MONAI's class_idx is one int per call: group images by class
            sel = (classes == c).nonzero()[:, 0]
            x = images[sel.to(images.device)].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                raw = cam(x, class_idx=int(c))
            out[sel] = _normalise_per_sample(raw.detach().float().cpu())
    finally:  # MONAI never removes its hooks (nor restores ``inplace``): leave the model as we found it
        for key in set(layer._forward_hooks) - fwd_before:
            del layer._forward_hooks[key]
        for key in set(layer._backward_hooks) - bwd_before:
            del layer._backward_hooks[key]
        if inplace is not None:
            layer.__dict__["inplace"] = inplace
    return out


def save_overlay(image: np.ndarray | torch.Tensor, saliency: np.ndarray | torch.Tensor, path: str | os.PathLike,
                 alpha: float = 0.4, cmap: str = "jet") -> Path:
    """Write a grey image with a colour-mapped saliency map blended on top as an RGB PNG.

    Args:
        image: ``(H, W)`` or ``(C, H, W)`` image (channels averaged, min-max scaled for display).
        saliency: ``(H, W)`` or ``(1, H, W)`` map in [0, 1].
        path: output ``.png`` path (parent folders are created).
        alpha: heat-map opacity.
        cmap: matplotlib colour map name.
    """
    colormaps, has_mpl = optional_import("matplotlib", name="colormaps")  # imported here: keeps the package light
    pil_image, has_pil = optional_import("PIL.Image")
    if not (has_mpl and has_pil):
        raise ImportError("save_overlay needs matplotlib and Pillow (pip install matplotlib).")
    img = torch.as_tensor(image).detach().float().cpu()
    img = img.mean(0) if img.ndim == 3 else img
    sal = torch.as_tensor(saliency).detach().float().cpu().squeeze()
    if img.ndim != 2 or sal.shape != img.shape:
        raise ValueError(f"image must be (H, W) or (C, H, W) and saliency (H, W) of the same size, got "
                         f"{tuple(torch.as_tensor(image).shape)} and {tuple(torch.as_tensor(saliency).shape)}.")
    grey = _normalise_per_sample(img[None])[0].numpy()
    heat = colormaps[cmap](sal.clamp(0, 1).numpy())[..., :3]
    rgb = (1 - alpha) * np.repeat(grey[..., None], 3, axis=-1) + alpha * heat
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil_image.fromarray((rgb * 255).round().clip(0, 255).astype(np.uint8), mode="RGB").save(path)
    return path


def gradcam_overlays(
    model: nn.Module,
    images: torch.Tensor,
    target_layer: str,
    class_index: int | Sequence[int] | None = None,
    out_dir: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    alpha: float = 0.4,
) -> torch.Tensor:
    """Grad-CAM maps (:func:`gradcam_maps`) and, with ``out_dir``, one PNG overlay per image.

    Args:
        model, images, target_layer, class_index: see :func:`gradcam_maps`.
        out_dir: folder for ``<name>.png`` overlays (grey image + jet heat map); ``None`` writes nothing. For 3D
            images the middle slice of the last axis is drawn.
        names: file stems, one per image (default ``gradcam_000`` ...).
        alpha: heat-map opacity.

    Returns:
        ``(B, 1, H, W[, D])`` maps in [0, 1].
    """
    maps = gradcam_maps(model, images, target_layer, class_index)
    if out_dir is not None:
        if names is not None and len(names) != images.shape[0]:
            raise ValueError(f"got {len(names)} names for {images.shape[0]} images.")
        for i in range(images.shape[0]):
            img, sal = images[i].detach().cpu(), maps[i, 0]
            if img.ndim == 4:  # (C, H, W, D): middle slice
                img, sal = img[..., img.shape[-1] // 2], sal[..., sal.shape[-1] // 2]
            stem = names[i] if names is not None else f"gradcam_{i:03d}"
            save_overlay(img, sal, Path(out_dir) / f"{stem}.png", alpha=alpha)
    return maps


def cam_fraction_in_roi(maps: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """Share of each map's saliency mass inside a region of interest (e.g. a lung mask).

    Args:
        maps: ``(B, 1, *spatial)`` non-negative saliency maps.
        roi: ``(B, 1, *spatial)`` or ``(1, 1, *spatial)`` binary mask.

    Returns:
        ``(B,)`` ``sum(map * roi) / sum(map)`` (NaN for an all-zero map).
    """
    if roi.shape[2:] != maps.shape[2:]:
        raise ValueError(f"roi spatial shape {tuple(roi.shape[2:])} differs from the maps' {tuple(maps.shape[2:])}.")
    m = maps.float().flatten(1)
    r = (roi > 0).float().expand_as(maps).flatten(1)
    total = m.sum(1)
    return torch.where(total > 0, (m * r).sum(1) / total.clamp(min=1e-12), torch.full_like(total, float("nan")))


@torch.no_grad()
def vit_attention_map(
    vit: nn.Module, images: torch.Tensor, discard_ratio: float = 0.0, patch_size: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) of a ``monai.networks.nets.ViT`` built with ``save_attn=True``.

    Per layer the head-averaged attention plus the identity (residual path), row-normalised, is multiplied
    through the layers. The map is the class token's row over the patch tokens when the ViT has a class token
    (``classification=True``), else the attention each patch receives averaged over all queries.

    Args:
        vit: a MONAI ``ViT`` (``save_attn=True``, no flash attention).
        images: ``(B, C, *img_size)``.
        discard_ratio: share of the lowest attention weights per row set to zero before the rollout (0: none).
        patch_size: the ViT's patch size; default: the kernel of its convolutional patch embedding
            (``proj_type="conv"``), required for ``proj_type="perceptron"``.

    Returns:
        ``(B, 1, *img_size)`` maps in [0, 1] (patch grid upsampled bilinearly/trilinearly).
    """
    blocks = getattr(vit, "blocks", None)
    if blocks is None or not all(getattr(getattr(b, "attn", None), "save_attn", False) for b in blocks):
        raise ValueError("vit_attention_map needs a monai ViT built with save_attn=True (each block stores att_mat).")
    was_training = vit.training
    vit.eval()
    try:
        vit(images)
    finally:
        vit.train(was_training)
    rollout = None
    for blk in blocks:
        att = blk.attn.att_mat.float().mean(1)  # (B, N, N)
        if discard_ratio > 0:
            k = int(att.shape[-1] * discard_ratio)
            if k:
                low = att.topk(k, dim=-1, largest=False).indices
                att = att.scatter(-1, low, 0.0)
        att = att + torch.eye(att.shape[-1], device=att.device)
        att = att / att.sum(-1, keepdim=True)
        rollout = att if rollout is None else att @ rollout
    has_cls = hasattr(vit, "cls_token")
    scores = rollout[:, 0, 1:] if has_cls else rollout.mean(1)
    if patch_size is None:
        kernel = getattr(getattr(vit.patch_embedding, "patch_embeddings", None), "kernel_size", None)
        if kernel is None:
            raise ValueError("cannot read the ViT's patch size from its patch embedding: pass patch_size.")
        patch_size = kernel
    spatial = images.shape[2:]
    patch = [int(p) for p in np.broadcast_to(np.asarray(patch_size), (len(spatial),))]
    grid = [s // p for s, p in zip(spatial, patch)]
    if scores.shape[1] != int(np.prod(grid)):
        raise ValueError(f"{scores.shape[1]} patch tokens do not form the grid {grid} of these images.")
    maps = scores.reshape(images.shape[0], 1, *grid)
    mode = "bilinear" if len(grid) == 2 else "trilinear"
    maps = torch.nn.functional.interpolate(maps, size=tuple(images.shape[2:]), mode=mode, align_corners=False)
    return _normalise_per_sample(maps.cpu())
