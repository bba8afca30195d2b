"""Swin-MAE, VIS-MAE's pretraining network, on MONAI's ``SwinTransformer`` (the SwinUNETR encoder).

VIS-MAE: Liu et al., "VIS-MAE: An Efficient Self-supervised Learning Approach on Medical Image Segmentation and
Classification", MLMI 2024, arXiv:2402.01034. The encoder is ``monai.networks.nets.swin_unetr.SwinTransformer``
unchanged; the only difference in the forward pass is that, right after the patch embedding, tokens of masked
units are replaced by one learned mask token, so the encoder always sees the full token grid (SimMIM-style, not
ViT-MAE's visible-only encoding). The decoder is the up-path of a Swin-Unet without skip connections (patch
expanding + MONAI ``BasicLayer`` Swin blocks per level) followed by a linear layer to the pixels of each token.

Mask unit choice: a unit is ``mask_unit_size`` pixels (16 by default, as VIS-MAE's 4x4 tokens of 4 px). With
MONAI's default ``patch_size=2`` a unit is therefore 8x8 tokens; with ``patch_size=4`` it is 4x4 tokens,
exactly VIS-MAE. Masks are drawn per unit by the ``masking`` generator and expanded to the token grid.

Difference to VIS-MAE's own encoder: MONAI's SwinTransformer downsamples after every stage (four patch
mergings, total stride ``16 * patch_size``) where Swin-T has three; the decoder mirrors MONAI's layout, so
it has four expansion levels. Weights transfer with :func:`swin_mae_to_swinunetr`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from monai.networks.nets.swin_unetr import BasicLayer, SwinTransformer
from torch import nn

from ..masking import MaskGenerator, block_mask_to_tokens, check_masking

__all__ = [
    "PatchExpand",
    "SwinMAE",
    "swin_mae_swinunetr",
    "swin_mae_tiny",
    "swin_mae_to_swinunetr",
    "SWIN_MAE_ENCODER_PREFIX",
]

SWIN_MAE_ENCODER_PREFIX = "encoder."


class PatchExpand(nn.Module):
    """Swin-Unet patch expanding: Linear ``C -> 2^d * C/2``, rearrange each token into a ``2^d`` block of
    ``C/2`` channels, LayerNorm. Channels-first in and out: ``(B, C, *S) -> (B, C/2, *2S)``.

    Args:
        spatial_dims: 2 or 3.
        dim: input channels ``C`` (even).
    """

    def __init__(self, spatial_dims: int, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"PatchExpand needs an even channel count, got {dim}.")
        self.spatial_dims, self.out_dim = spatial_dims, dim // 2
        self.expand = nn.Linear(dim, (2**spatial_dims) * self.out_dim, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, nd = x.shape[0], self.spatial_dims
        sizes = x.shape[2:]
        x = self.expand(x.movedim(1, -1))  # (B, *S, 2^d * C/2)
        x = x.reshape(b, *sizes, *([2] * nd), self.out_dim)
        # (B, S0, S1[, S2], 2, 2[, 2], C') -> (B, S0, 2, S1, 2[, S2, 2], C')
        perm = [0]
        for i in range(nd):
            perm += [1 + i, 1 + nd + i]
        x = x.permute(*perm, 1 + 2 * nd).reshape(b, *[2 * s for s in sizes], self.out_dim)
        return self.norm(x).movedim(-1, 1)


class SwinMAE(nn.Module):
    """VIS-MAE Swin masked autoencoder (block masking, mask tokens in the encoder, Swin-Unet decoder).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels ``C``.
        feature_size: embedding width (SwinUNETR's ``feature_size``; 24/48 are MONAI's usual values).
        patch_size: patch embedding size (MONAI default 2; VIS-MAE uses 4).
        window_size: attention window (int or per dim).
        depths: Swin blocks per encoder stage (four stages, as MONAI's SwinTransformer).
        num_heads: heads per encoder stage.
        decoder_depths: Swin blocks per decoder level, deepest level first (widths ``8F, 4F, 2F, F``);
            default ``(2, 2, 2, 2)``.
        mlp_ratio, qkv_bias, drop_path_rate, attn_drop_rate: Swin block settings (encoder).
        downsample, use_v2: passed to MONAI's ``SwinTransformer`` (must match the SwinUNETR to load into).
        masking: mask generator over mask units, e.g. :class:`~monai_ssl.networks.masking.RandomMasking` or
            :class:`~monai_ssl.networks.masking.EntropyGuidedMasking`; ``None``: ``RandomMasking(0.75)`` (VIS-MAE).
            Each sample gets exactly ``round(mask_ratio * L_units)`` masked units.
        mask_unit_size: mask unit edge in pixels, a multiple of ``patch_size`` (default 16).

    Forward: ``x (B, C, *spatial)`` -> ``(pred (B, L, P), mask (B, L))`` over tokens (``L = prod(spatial /
    patch_size)``, row-major), ``P = prod(patch_size) * C``, mask 1 = masked; ``pred_patch_size`` is the patch
    size. Spatial sizes must be multiples of ``16 * patch_size`` and of ``mask_unit_size``.

    Example::

        net = SwinMAE(spatial_dims=2, in_channels=1, feature_size=24, masking=RandomMasking(0.75))
        pred, mask = net(torch.rand(2, 1, 64, 64))  # (2, 1024, 4), (2, 1024)
        loss = MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2)(pred, images, mask)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        feature_size: int = 48,
        patch_size: int = 2,
        window_size: int | Sequence[int] = 7,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        decoder_depths: Sequence[int] = (2, 2, 2, 2),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        attn_drop_rate: float = 0.0,
        downsample: str = "merging",
        use_v2: bool = False,
        masking: MaskGenerator | None = None,
        mask_unit_size: int | Sequence[int] = 16,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if len(depths) != 4 or len(num_heads) != 4 or len(decoder_depths) != 4:
            raise ValueError("MONAI's SwinTransformer has four stages: depths, num_heads, decoder_depths need 4 values")
        self.masking = check_masking(masking, 0.75)
        nd = spatial_dims
        self.spatial_dims, self.in_channels, self.feature_size = nd, in_channels, feature_size
        self.patch_size = (int(patch_size),) * nd
        self.pred_patch_size = self.patch_size
        window = (int(window_size),) * nd if isinstance(window_size, int) else tuple(int(w) for w in window_size)
        unit = (int(mask_unit_size),) * nd if isinstance(mask_unit_size, int) else tuple(int(u) for u in mask_unit_size)
        if len(unit) != nd or any(u % p for u, p in zip(unit, self.patch_size)):
            raise ValueError(f"mask_unit_size {unit} must be a multiple of patch_size {self.patch_size} per dim.")
        self.mask_unit_size = unit
        self.tokens_per_unit = tuple(u // p for u, p in zip(unit, self.patch_size))
        self.stride = self.patch_size[0] * 2**4

        self.encoder = SwinTransformer(
            in_chans=in_channels,
            embed_dim=feature_size,
            window_size=window,
            patch_size=self.patch_size,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_rate=0.0,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            norm_layer=nn.LayerNorm,
            spatial_dims=nd,
            downsample=downsample,
            use_v2=use_v2,
        )
        self.mask_token = nn.Parameter(torch.zeros(1, feature_size, *([1] * nd)))

        widths = [feature_size * 2**i for i in range(4)]  # F, 2F, 4F, 8F
        self.decoder_expand = nn.ModuleList()
        self.decoder_layers = nn.ModuleList()
        for level, depth in zip(range(3, -1, -1), decoder_depths):
            self.decoder_expand.append(PatchExpand(nd, 2 * widths[level]))
            self.decoder_layers.append(
                BasicLayer(
                    dim=widths[level], depth=int(depth), num_heads=int(num_heads[level]), window_size=window,
                    drop_path=[0.0] * int(depth), mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, downsample=None,
                )
            )
        self.decoder_norm = nn.LayerNorm(feature_size)
        self.decoder_pred = nn.Linear(feature_size, math.prod(self.patch_size) * in_channels)
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ shapes and masks
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for a wrong rank/channels or sizes that are not multiples of the stride/unit."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected (B, C, *spatial) with {self.spatial_dims} spatial dims, got {tuple(x.shape)}.")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)}).")
        for s, u in zip(x.shape[2:], self.mask_unit_size):
            if s % self.stride or s % u:
                raise ValueError(
                    f"spatial size {tuple(x.shape[2:])} must be a multiple of the encoder stride {self.stride} "
                    f"(16 * patch_size) and of mask_unit_size {self.mask_unit_size}."
                )

    def unit_grid(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Mask units per dim for an input of size ``spatial``."""
        return tuple(int(s) // u for s, u in zip(spatial, self.mask_unit_size))

    def token_grid(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Tokens per dim after the patch embedding."""
        return tuple(int(s) // p for s, p in zip(spatial, self.patch_size))

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
        return self.masking(x, self.mask_unit_size, generator=generator, mask_ratio=mask_ratio)[0]

    # ------------------------------------------------------------------ forward
    def forward_encoder(
        self, x: torch.Tensor, token_mask: torch.Tensor | None = None, normalize: bool = True
    ) -> list[torch.Tensor]:
        """MONAI ``SwinTransformer.forward`` with masked tokens replaced by the mask token after the embedding.

        Args:
            x: ``(B, C, *spatial)``.
            token_mask: ``(B, L_tokens)`` (1 = masked) or ``None``: then the output equals
                ``SwinUNETR.swinViT(x, normalize)`` for the mapped weights.
            normalize: parameter-free LayerNorm on each output, as SwinUNETR does.

        Returns:
            five feature maps ``(B, F * 2^i, *spatial / (patch_size * 2^i))``, ``i = 0..4``; the first is the
            (masked) full-grid embedding the encoder stages consume.
        """
        enc = self.encoder
        x0 = enc.patch_embed(x)
        if token_mask is not None:
            grid = x0.shape[2:]
            m = token_mask.to(x0.dtype).reshape(x0.shape[0], 1, *grid)
            x0 = x0 * (1.0 - m) + self.mask_token.to(x0.dtype) * m
        x0 = enc.pos_drop(x0)
        outs = [enc.proj_out(x0, normalize)]
        h = x0
        for i in range(4):
            if enc.use_v2:
                h = getattr(enc, f"layers{i + 1}c")[0](h.contiguous())
            h = getattr(enc, f"layers{i + 1}")[0](h.contiguous())
            outs.append(enc.proj_out(h, normalize))
        return outs

    def forward_decoder(self, features: torch.Tensor) -> torch.Tensor:
        """Deepest encoder map ``(B, 16F, *G/16)`` -> ``(B, L_tokens, P)`` pixel predictions per token."""
        h = features
        for expand, layer in zip(self.decoder_expand, self.decoder_layers):
            h = layer(expand(h).contiguous())
        h = self.decoder_norm(h.flatten(2).transpose(1, 2))
        return self.decoder_pred(h)

    def forward(
        self,
        x: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask units, encode the full grid, decode to pixels.

        Args:
            x: ``(B, C, *spatial)``.
            mask_ratio: overrides ``masking.mask_ratio`` for this call (0: no masking).
            generator: optional ``torch.Generator`` for the mask draw.
            mask: optional ``(B, L_units)`` unit mask (1 = masked) instead of drawing one.

        Returns:
            ``pred (B, L_tokens, prod(patch_size) * C)`` and the token mask ``(B, L_tokens)`` (float).
        """
        self.check_input(x)
        ugrid = self.unit_grid(x.shape[2:])
        if mask is None:
            mask = self.random_masking(x, mask_ratio, generator)
        elif tuple(mask.shape) != (x.shape[0], math.prod(ugrid)):
            raise ValueError(f"mask must be (B, L_units) = {(x.shape[0], math.prod(ugrid))}, got {tuple(mask.shape)}.")
        token_mask = block_mask_to_tokens(mask.float(), ugrid, self.tokens_per_unit)
        feats = self.forward_encoder(x, token_mask, normalize=True)
        return self.forward_decoder(feats[-1]), token_mask


def swin_mae_tiny(spatial_dims: int = 2, in_channels: int = 1, **kwargs) -> SwinMAE:
    """VIS-MAE's Swin-T width (Liu et al., 2024): embedding 96, patch 4 (one 16-px mask unit = 4x4 tokens),
    depths (2, 2, 2, 2), heads (3, 6, 12, 24), window 7, decoder depths (2, 2, 2, 2). Inputs must be multiples of
    64 px (MONAI's encoder downsamples four times). Keyword arguments override any of these (``masking``, ...)."""
    cfg = {"feature_size": 96, "patch_size": 4, "window_size": 7, "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24),
               "decoder_depths": (2, 2, 2, 2), "mask_unit_size": 16}
    return SwinMAE(spatial_dims, in_channels, **{**cfg, **kwargs})


def swin_mae_swinunetr(spatial_dims: int = 2, in_channels: int = 1, feature_size: int = 48, **kwargs) -> SwinMAE:
    """Swin-MAE whose encoder is that of MONAI's default ``SwinUNETR(feature_size=feature_size)``: patch 2,
    depths (2, 2, 2, 2), heads (3, 6, 12, 24), window 7, 16-px mask units (8x8 tokens). Inputs must be multiples
    of 32 px. Keyword arguments override any of these (``masking``, ``decoder_depths``, ...)."""
    cfg = {"patch_size": 2, "window_size": 7, "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24), "mask_unit_size": 16}
    return SwinMAE(spatial_dims, in_channels, feature_size=feature_size, **{**cfg, **kwargs})


def swin_mae_to_swinunetr(state_dict: Mapping[str, torch.Tensor], prefix: str = "swinViT.") -> dict[str, torch.Tensor]:
    """Map a :class:`SwinMAE` state dict onto ``monai.networks.nets.SwinUNETR``.

    The encoder is MONAI's ``SwinTransformer`` itself, so every ``encoder.*`` key maps to ``swinViT.*`` one to
    one (build the SwinUNETR with the same ``feature_size``, ``depths``, ``num_heads``, ``window_size``,
    ``patch_size``, ``downsample`` and ``use_v2``). The mask token and the Swin-Unet decoder are dropped: MONAI's
    SwinUNETR decoder is convolutional (``UnetrUpBlock``/``UnetrBasicBlock``), so no decoder tensor has a
    counterpart of the same role and shape there. Use ``prefix=""`` to load into a bare ``SwinTransformer``.

    Returns:
        ``{target key: tensor}`` for :func:`~monai_ssl.networks.weights.load_mapped_state_dict`.
    """
    n = len(SWIN_MAE_ENCODER_PREFIX)
    out = {prefix + k[n:]: v for k, v in state_dict.items() if k.startswith(SWIN_MAE_ENCODER_PREFIX)}
    if not out:
        raise ValueError("state_dict holds no SwinMAE encoder keys (encoder.*).")
    return out
