"""Masked reconstruction loss of masked autoencoders (MAE, VIS-MAE, FCMAE)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.modules.loss import _Loss

from monai_ssl.networks.patching import patchify

__all__ = ["MaskedReconstructionLoss"]


class MaskedReconstructionLoss(_Loss):
    """Mean squared error on masked patches only, optionally against per-patch normalised targets.

    The image is cut into patches with :func:`monai_ssl.networks.patching.patchify` (row-major patch
    order, values laid out ``(p0, p1[, p2], C)``), the squared error is averaged over the values of each
    patch, and the per-patch errors are averaged over masked patches (``mask == 1``) only, so predictions
    on visible patches do not affect the loss. Computed in float32 (safe under autocast).

    Args:
        patch_size: prediction unit edge (int or one per spatial dim); must match the model's
            ``pred_patch_size``.
        spatial_dims: 2 or 3.
        norm_pix_loss: normalise each target patch by its own mean and standard deviation
            (``(t - mean) / (std + eps)``, He et al. 2022 MAE "norm-pix", also FCMAE).
        eps: added to the per-patch std for norm-pix targets.

    Example::

        loss_fn = MaskedReconstructionLoss(patch_size=16, spatial_dims=2, norm_pix_loss=True)
        pred, mask = model(images)            # (B, L, 16 * 16 * C), (B, L)
        loss = loss_fn(pred, images, mask)
    """

    def __init__(
        self,
        patch_size: int | Sequence[int],
        spatial_dims: int = 2,
        norm_pix_loss: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        patch = (int(patch_size),) * spatial_dims if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
        if len(patch) != spatial_dims:
            raise ValueError(f"patch_size={patch_size} does not match spatial_dims={spatial_dims}.")
        self.patch_size = patch
        self.spatial_dims = spatial_dims
        self.norm_pix_loss = bool(norm_pix_loss)
        self.eps = float(eps)

    def target(self, image: torch.Tensor) -> torch.Tensor:
        """Patchified (and optionally normalised) float32 target ``(B, L, P)`` of ``image (B, C, *spatial)``."""
        if image.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"image must be (B, C, *spatial) with {self.spatial_dims} spatial dims, got shape {tuple(image.shape)}."
            )
        target = patchify(image.float(), self.patch_size)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            std = target.std(dim=-1, keepdim=True, unbiased=False)
            target = (target - mean) / (std + self.eps)
        return target

    def forward(self, pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: ``(B, L, P)`` predicted patches, ``P = prod(patch_size) * C``.
            image: ``(B, C, *spatial)`` original (unmasked) image.
            mask: ``(B, L)``, 1 = masked (counted), 0 = visible (ignored); bool or float.

        Returns:
            scalar float32 loss; 0 when no patch is masked.
        """
        target = self.target(image)
        if pred.shape != target.shape:
            raise ValueError(
                f"pred shape {tuple(pred.shape)} does not match the patchified image {tuple(target.shape)} "
                f"(patch_size={self.patch_size}, image {tuple(image.shape)})."
            )
        if mask.shape != pred.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} must be (B, L) = {tuple(pred.shape[:2])}.")
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)
        weight = mask.to(per_patch.dtype)
        return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)
