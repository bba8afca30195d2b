"""Patchify / unpatchify for 2D and 3D images (shared by MAE models and the reconstruction loss).

Patches are numbered row-major over the patch grid (last spatial axis fastest), matching MONAI's
``PatchEmbeddingBlock`` (``conv(x).flatten(2)``) and :mod:`monai_ssl.networks.masking`. Within a patch
the values are laid out as ``(p0, p1[, p2], C)``: channels fastest, as in MAE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["patchify", "unpatchify", "patch_grid"]


def _as_tuple(value: int | Sequence[int], nd: int, name: str) -> tuple[int, ...]:
    out = (int(value),) * nd if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != nd:
        raise ValueError(f"{name}={value} does not match {nd} spatial dims.")
    return out


def patch_grid(spatial_size: Sequence[int], patch_size: int | Sequence[int]) -> tuple[int, ...]:
    """Number of patches along each spatial dim; raises when a size is not divisible by the patch."""
    spatial = tuple(int(s) for s in spatial_size)
    patch = _as_tuple(patch_size, len(spatial), "patch_size")
    for axis, (s, p) in enumerate(zip(spatial, patch)):
        if p < 1 or s % p != 0:
            raise ValueError(f"spatial size {spatial} is not divisible by patch_size {patch} (axis {axis}).")
    return tuple(s // p for s, p in zip(spatial, patch))


def patchify(x: torch.Tensor, patch_size: int | Sequence[int]) -> torch.Tensor:
    """Cut images into non-overlapping patches.

    Args:
        x: ``(B, C, *spatial)`` with 2 or 3 spatial dims, each divisible by the patch size.
        patch_size: int or one size per spatial dim (non-square patches allowed).

    Returns:
        ``(B, L, prod(patch_size) * C)`` with ``L = prod(spatial // patch_size)``.
    """
    if x.ndim not in (4, 5):
        raise ValueError(f"patchify expects (B, C, H, W) or (B, C, H, W, D), got shape {tuple(x.shape)}.")
    b, c = x.shape[:2]
    spatial = tuple(x.shape[2:])
    nd = len(spatial)
    patch = _as_tuple(patch_size, nd, "patch_size")
    grid = patch_grid(spatial, patch)
    shape = [b, c]
    for g, p in zip(grid, patch):
        shape += [g, p]
    x = x.reshape(shape)
    # (B, C, g0, p0, g1, p1, ...) -> (B, g0, g1, ..., p0, p1, ..., C)
    perm = [0] + [2 + 2 * i for i in range(nd)] + [3 + 2 * i for i in range(nd)] + [1]
    return x.permute(perm).reshape(b, math.prod(grid), math.prod(patch) * c)


def unpatchify(
    patches: torch.Tensor, patch_size: int | Sequence[int], spatial_size: Sequence[int]
) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: ``(B, L, prod(patch_size) * C)``.
        patch_size: as given to :func:`patchify`.
        spatial_size: image size ``(H, W[, D])``; ``L`` must equal the number of patches it holds.

    Returns:
        ``(B, C, *spatial_size)``.
    """
    if patches.ndim != 3:
        raise ValueError(f"unpatchify expects (B, L, P), got shape {tuple(patches.shape)}.")
    spatial = tuple(int(s) for s in spatial_size)
    nd = len(spatial)
    patch = _as_tuple(patch_size, nd, "patch_size")
    grid = patch_grid(spatial, patch)
    b, num, pdim = patches.shape
    if num != math.prod(grid) or pdim % math.prod(patch) != 0:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not tile spatial size {spatial} with patch_size {patch}."
        )
    c = pdim // math.prod(patch)
    x = patches.reshape([b, *grid, *patch, c])
    # (B, g0, g1, ..., p0, p1, ..., C) -> (B, C, g0, p0, g1, p1, ...)
    perm = [0, 1 + 2 * nd]
    for i in range(nd):
        perm += [1 + i, 1 + nd + i]
    return x.permute(perm).reshape(b, c, *spatial)
