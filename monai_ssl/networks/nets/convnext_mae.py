"""FCMAE-style masked autoencoder for ConvNeXt, masked-dense.

FCMAE: Woo et al., "ConvNeXt V2: Co-designing and Scaling ConvNets with Masked Autoencoders", CVPR 2023; with
entropy-guided masking (:class:`~monai_ssl.networks.masking.EntropyGuidedMasking`) it is the masked pretraining
branch of Florindo & Moura, arXiv:2605.21970 (2026).

The encoder is a plain :class:`~monai_ssl.networks.nets.ConvNeXt` (no head). Instead of sparse convolutions,
masked pixels are zeroed at the input and the binary mask, upsampled to each resolution, is re-applied
after the stem, after every block and after every downsampling layer, so no information leaks from masked
into visible regions. After pretraining, :func:`convnext_mae_to_convnext` exports the encoder to a ConvNeXt
classifier by a prefix change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from ..masking import MaskGenerator, block_mask_to_tokens, check_masking
from .convnext import CONVNEXT_CONFIGS, ConvNeXt, ConvNeXtBlock

__all__ = ["ConvNeXtMAE", "convnext_mae_small", "convnext_mae_tiny", "convnext_mae_to_convnext"]


class ConvNeXtMAE(nn.Module):
    """Masked-dense ConvNeXt autoencoder (FCMAE recipe) with any mask generator (random, entropy-guided).

    Prediction units are the cells of the encoder's output grid (``pred_patch_size`` = total stride, 32 px
    for four stages); mask units (``mask_unit_size`` px, default = the stride) tile whole prediction units.
    Decoder: 1x1 conv ``dims[-1] -> decoder_dim``, masked positions replaced by a learned mask token, one
    :class:`ConvNeXtBlock`, 1x1 conv to ``prod(pred_patch_size) * C`` values per unit (layout as
    :func:`~monai_ssl.networks.patching.patchify`).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels ``C``.
        depths, dims: encoder configuration (ConvNeXt-Tiny by default).
        decoder_dim: width of the decoder block (512 in FCMAE).
        masking: mask generator over mask units, e.g. :class:`~monai_ssl.networks.masking.RandomMasking` or
            :class:`~monai_ssl.networks.masking.EntropyGuidedMasking`; ``None``: ``RandomMasking(0.6)`` (FCMAE).
            Each sample gets exactly ``round(mask_ratio * L_units)`` masked units.
        mask_unit_size: mask unit edge in pixels (int or per dim), a multiple of the total stride;
            ``None`` = the total stride.
        drop_path_rate: encoder stochastic depth.

    Forward: ``x (B, C, *spatial)`` -> ``(pred (B, L, P), mask (B, L))`` with ``L`` prediction units in
    patchify order, ``P = prod(pred_patch_size) * C`` and ``mask`` 1 = masked.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        decoder_dim: int = 512,
        masking: MaskGenerator | None = None,
        mask_unit_size: int | Sequence[int] | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.masking = check_masking(masking, 0.6)
        self.encoder = ConvNeXt(
            spatial_dims, in_channels, num_classes=0, depths=depths, dims=dims, drop_path_rate=drop_path_rate,
            use_head=False,
        )
        self.spatial_dims, self.in_channels = spatial_dims, in_channels
        stride = self.encoder.stride
        self.pred_patch_size = (stride,) * spatial_dims
        unit = stride if mask_unit_size is None else mask_unit_size
        unit = (int(unit),) * spatial_dims if isinstance(unit, int) else tuple(int(u) for u in unit)
        if len(unit) != spatial_dims or any(u < stride or u % stride for u in unit):
            raise ValueError(f"mask_unit_size {unit} must be a multiple of the encoder stride {stride} per dim.")
        self.mask_unit_size = unit

        conv = Conv[Conv.CONV, spatial_dims]
        self.decoder_embed = conv(self.encoder.num_features, decoder_dim, kernel_size=1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, *([1] * spatial_dims)))
        self.decoder = ConvNeXtBlock(spatial_dims, decoder_dim)
        self.decoder_pred = conv(decoder_dim, math.prod(self.pred_patch_size) * in_channels, kernel_size=1)
        nn.init.normal_(self.mask_token, std=0.02)
        dec = self.decoder
        for m in (self.decoder_embed, self.decoder_pred, dec.dwconv, dec.pwconv1, dec.pwconv2):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ masking
    def unit_grid(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Mask units per dim for an input of size ``spatial``; raises when it does not tile."""
        if any(s % u for s, u in zip(spatial, self.mask_unit_size)):
            raise ValueError(f"input size {tuple(spatial)} is not divisible by mask_unit_size {self.mask_unit_size}.")
        return tuple(s // u for s, u in zip(spatial, self.mask_unit_size))

    @property
    def masking_ratio(self) -> float:
        """Default share of mask units masked per sample (``masking.mask_ratio``)."""
        return self.masking.mask_ratio

    @property
    def mask_mode(self) -> str:
        """Name of the masking rule (``masking.mode``: ``"random"``, ``"entropy"``)."""
        return self.masking.mode

    def random_masking(
        self, x: torch.Tensor, mask_ratio: float | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw a ``(B, L_units)`` float unit mask for ``x`` with ``self.masking`` (on ``x.device``)."""
        self.unit_grid(x.shape[2:])  # the size check, with this model's message
        return self.masking(x, self.mask_unit_size, generator=generator, mask_ratio=mask_ratio)[0]

    def _unit_to_pred_mask(self, unit_mask: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
        grid = self.unit_grid(spatial)
        block = [u // p for u, p in zip(self.mask_unit_size, self.pred_patch_size)]
        return block_mask_to_tokens(unit_mask, grid, block)

    @staticmethod
    def _upsample(mask_map: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Nearest upsampling of a ``(B, 1, *grid)`` mask to ``size`` (integer factors)."""
        for axis, s in enumerate(size):
            factor = s // mask_map.shape[2 + axis]
            if factor > 1:
                mask_map = mask_map.repeat_interleave(factor, dim=2 + axis)
        return mask_map

    # ------------------------------------------------------------------ forward
    def forward_encoder(self, x: torch.Tensor, pred_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Masked-dense encoder.

        Args:
            x: ``(B, C, *spatial)``.
            pred_mask: ``(B, L)`` mask over prediction units (1 = masked) or ``None`` for no masking (then this
                equals ``ConvNeXt.forward_features``).

        Returns:
            ``(B, dims[-1], *grid)`` features, zero at masked units.
        """
        self.encoder.check_input(x)
        if pred_mask is None:
            return self.encoder.forward_features(x)
        grid = [s // p for s, p in zip(x.shape[2:], self.pred_patch_size)]
        keep = (1.0 - pred_mask.to(x.dtype)).reshape(x.shape[0], 1, *grid)
        x = x * self._upsample(keep, x.shape[2:])
        for down, stage in zip(self.encoder.downsample_layers, self.encoder.stages):
            x = down(x)
            k = self._upsample(keep, x.shape[2:]).to(x.dtype)
            x = x * k
            for block in stage:
                x = block(x) * k
        return x

    def forward_decoder(self, features: torch.Tensor, pred_mask: torch.Tensor) -> torch.Tensor:
        """``(B, C_enc, *grid)`` features + ``(B, L)`` mask -> ``(B, L, P)`` pixel predictions."""
        x = self.decoder_embed(features)
        m = pred_mask.to(x.dtype).reshape(x.shape[0], 1, *x.shape[2:])
        x = x * (1.0 - m) + self.mask_token.to(x.dtype) * m
        x = self.decoder_pred(self.decoder(x))
        return x.flatten(2).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask, encode, decode.

        Args:
            x: ``(B, C, *spatial)`` images, each size a multiple of ``mask_unit_size``.
            mask_ratio: overrides ``masking.mask_ratio`` for this call (0: no masking).
            generator: optional ``torch.Generator`` for the mask draw (no global RNG use when given).
            mask: optional ``(B, L_units)`` unit mask to use instead of drawing one (1 = masked).

        Returns:
            ``pred (B, L, P)`` and ``mask (B, L)`` over prediction units (float, 1 = masked).
        """
        self.encoder.check_input(x)
        grid = self.unit_grid(x.shape[2:])
        if mask is None:
            mask = self.random_masking(x, mask_ratio, generator)
        elif mask.shape != (x.shape[0], math.prod(grid)):
            raise ValueError(f"mask must be (B, L_units) = {(x.shape[0], math.prod(grid))}, got {tuple(mask.shape)}.")
        pred_mask = self._unit_to_pred_mask(mask.float(), x.shape[2:])
        pred = self.forward_decoder(self.forward_encoder(x, pred_mask), pred_mask)
        return pred, pred_mask


def convnext_mae_tiny(spatial_dims: int = 2, in_channels: int = 3, **kwargs) -> ConvNeXtMAE:
    """:class:`ConvNeXtMAE` with a ConvNeXt-Tiny encoder (FCMAE defaults: 32-px units, ratio 0.6, decoder 512).

    Keyword arguments override any of these (``masking``, ``depths``, ``decoder_dim``, ...)."""
    depths, dims = CONVNEXT_CONFIGS["tiny"]
    return ConvNeXtMAE(spatial_dims, in_channels, **{"depths": depths, "dims": dims, **kwargs})


def convnext_mae_small(spatial_dims: int = 2, in_channels: int = 3, **kwargs) -> ConvNeXtMAE:
    """:class:`ConvNeXtMAE` with a ConvNeXt-Small encoder (depths (3, 3, 27, 3)); otherwise as
    :func:`convnext_mae_tiny`."""
    depths, dims = CONVNEXT_CONFIGS["small"]
    return ConvNeXtMAE(spatial_dims, in_channels, **{"depths": depths, "dims": dims, **kwargs})


def convnext_mae_to_convnext(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a :class:`ConvNeXtMAE` state dict onto :class:`ConvNeXt` (encoder only).

    Keeps ``encoder.*`` keys without the prefix; the decoder and mask token are dropped. The classifier's
    ``head.*`` stays at its initialisation. Pass the result to
    :func:`~monai_ssl.networks.weights.load_mapped_state_dict` for a report.
    """
    out = {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
    if not out:
        raise ValueError("state_dict holds no ConvNeXtMAE encoder keys (encoder.*).")
    return out
