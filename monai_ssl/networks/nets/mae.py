"""ViT masked autoencoder (MAE: He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022) for 2D
and 3D images, with any mask generator of :mod:`monai_ssl.networks.masking` (random or entropy-guided).

The encoder sees only the visible patches (masking by ``argsort`` of per-sample noise, fully on
device), a light decoder inserts a shared mask token at the masked positions, restores grid order and
predicts the pixels of every patch. Encoder parameter names are those of ``monai.networks.nets.ViT``
(``patch_embedding.patch_embeddings``, ``patch_embedding.position_embeddings``,
``blocks.{i}.{norm1, attn.qkv, attn.out_proj, norm2, mlp.linear1, mlp.linear2}``, ``norm``), so
:func:`mae_vit_to_monai_vit` (this module's export map, used by the ``mae_vit`` / ``mae_vit_unetr`` kinds of
:func:`monai_ssl.networks.load_pretrained`) maps them 1:1 onto ``ViT`` / ``UNETR.vit``.
Attention uses ``F.scaled_dot_product_attention``; the model trains under ``torch.autocast``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_ssl.networks.masking import MaskGenerator, check_masking
from monai_ssl.networks.patching import patch_grid

__all__ = [
    "MAE_VIT_ENCODER_PREFIXES",
    "MaskedAutoencoderViT",
    "mae_vit_base_patch16",
    "mae_vit_large_patch16",
    "mae_vit_small_patch16",
    "mae_vit_to_monai_vit",
    "sincos_position_embedding",
]


def sincos_position_embedding(grid_size: Sequence[int], embed_dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed sin-cos position table for a 1D/2D/3D token grid, any ``embed_dim``.

    The ``embed_dim // 2`` frequencies are split as evenly as possible over the axes (earlier axes get
    the remainder), each axis contributing ``[sin, cos]`` of ``coord * temperature^(-k / n_axis)``; an
    odd ``embed_dim`` gets one zero column. Unlike MONAI's 3D table, no divisibility by 6 is needed.

    Returns:
        ``(1, prod(grid_size), embed_dim)`` float32, tokens row-major over the grid.
    """
    grid = [int(g) for g in grid_size]
    nd = len(grid)
    n_freq = embed_dim // 2
    if n_freq < nd:
        raise ValueError(f"embed_dim={embed_dim} is too small for a {nd}D sin-cos embedding (needs >= {2 * nd}).")
    counts = [n_freq // nd + (1 if i < n_freq % nd else 0) for i in range(nd)]
    coords = torch.meshgrid(*[torch.arange(g, dtype=torch.float64) for g in grid], indexing="ij")
    parts = []
    for coord, n in zip(coords, counts):
        omega = 1.0 / temperature ** (torch.arange(n, dtype=torch.float64) / n)
        angle = coord.reshape(-1, 1) * omega.reshape(1, -1)
        parts += [torch.sin(angle), torch.cos(angle)]
    table = torch.cat(parts, dim=1)
    if table.shape[1] < embed_dim:
        table = F.pad(table, (0, embed_dim - table.shape[1]))
    return table.float().unsqueeze(0)


class _PatchEmbedding(nn.Module):
    """Strided-conv patch embedding + position table (names as MONAI's ``PatchEmbeddingBlock``)."""

    def __init__(self, in_channels, patch_size, grid, hidden_size, pos_embed_type, dropout_rate, spatial_dims):
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.patch_embeddings = conv(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)
        n = math.prod(grid)
        if pos_embed_type == "learnable":
            self.position_embeddings = nn.Parameter(torch.empty(1, n, hidden_size))
            nn.init.trunc_normal_(self.position_embeddings, std=0.02, a=-2.0, b=2.0)
        elif pos_embed_type == "sincos":
            self.register_buffer("position_embeddings", sincos_position_embedding(grid, hidden_size))
        else:  # "none": zeros, kept so the table maps onto MONAI's ViT
            self.register_buffer("position_embeddings", torch.zeros(1, n, hidden_size))
        self.dropout = nn.Dropout(dropout_rate)
        w = self.patch_embeddings.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embeddings.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embeddings(x).flatten(2).transpose(1, 2)  # (B, L, D)
        return self.dropout(x + self.position_embeddings.to(x.dtype))


class _SelfAttention(nn.Module):
    """Multi-head self-attention (names as MONAI's ``SABlock``: ``qkv``, ``out_proj``) on SDPA."""

    def __init__(self, hidden_size, num_heads, dropout_rate, qkv_bias, save_attn):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=qkv_bias)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.drop_output = nn.Dropout(dropout_rate)
        self.dropout_rate = dropout_rate
        self.save_attn = save_attn
        self.att_mat = torch.Tensor()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # qkv features are laid out (qkv, head, head_dim) like MONAI's "b h (qkv l d)" rearrange
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.dropout_rate if self.training else 0.0
        if self.save_attn:
            att = torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
            self.att_mat = att.detach()
            out = F.dropout(att, drop, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        return self.drop_output(self.out_proj(out.transpose(1, 2).reshape(b, n, d)))


class _MLP(nn.Module):
    def __init__(self, hidden_size, mlp_dim, dropout_rate):
        super().__init__()
        self.linear1 = nn.Linear(hidden_size, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, hidden_size)
        self.drop = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.linear2(self.drop(F.gelu(self.linear1(x)))))


class _TransformerBlock(nn.Module):
    """Pre-norm transformer block (names and maths as MONAI's ``TransformerBlock``)."""

    def __init__(self, hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias, save_attn):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attn = _SelfAttention(hidden_size, num_heads, dropout_rate, qkv_bias, save_attn)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = _MLP(hidden_size, mlp_dim, dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    """ViT masked autoencoder, 2D/3D, any channel count, non-square images.

    Arguments follow ``monai.networks.nets.MaskedAutoEncoderViT``; there is no class token (the encoder
    maps onto ``ViT(classification=False)``). ``masking`` replaces MONAI's ``masking_ratio``: the mask generator
    holds the rule and the ratio. Factories for the usual sizes: :func:`mae_vit_small_patch16`,
    :func:`mae_vit_base_patch16`, :func:`mae_vit_large_patch16`.

    Args:
        in_channels: image channels ``C``.
        img_size: image size (int or one per spatial dim), divisible by ``patch_size``.
        patch_size: patch size (int or one per spatial dim); also the prediction unit.
        hidden_size, mlp_dim, num_layers, num_heads: encoder width, MLP width, depth, heads.
        masking: mask generator (unit = one patch), e.g. :class:`~monai_ssl.networks.masking.RandomMasking` or
            :class:`~monai_ssl.networks.masking.EntropyGuidedMasking`; ``None``: ``RandomMasking(0.75)``. Its
            ``mask_ratio`` (the default share of patches masked per sample) must be below 1.
        decoder_hidden_size, decoder_mlp_dim, decoder_num_layers, decoder_num_heads: decoder config.
        proj_type: patch projection; only ``"conv"`` (strided convolution) is supported.
        pos_embed_type: encoder position table, ``"sincos"`` (fixed), ``"learnable"`` or ``"none"``.
        decoder_pos_embed_type: same for the decoder.
        dropout_rate: dropout in attention and MLPs.
        spatial_dims: 2 or 3.
        qkv_bias: bias in the qkv projections (MAE uses ``True``; MONAI's default is ``False``).
        save_attn: keep the last attention matrices in ``blocks[i].attn.att_mat`` (slower, no SDPA).

    Shapes:
        ``forward(x (B, C, *img_size)) -> (pred (B, L, prod(patch_size) * C), mask (B, L))`` with ``L`` the
        number of patches (row-major, see :func:`monai_ssl.networks.patching.patchify`), mask 1 = masked.
    """

    def __init__(
        self,
        in_channels: int,
        img_size: Sequence[int] | int,
        patch_size: Sequence[int] | int,
        hidden_size: int = 768,
        mlp_dim: int = 512,
        num_layers: int = 12,
        num_heads: int = 12,
        masking: MaskGenerator | None = None,
        decoder_hidden_size: int = 384,
        decoder_mlp_dim: int = 512,
        decoder_num_layers: int = 4,
        decoder_num_heads: int = 12,
        proj_type: str = "conv",
        pos_embed_type: str = "sincos",
        decoder_pos_embed_type: str = "sincos",
        dropout_rate: float = 0.0,
        spatial_dims: int = 3,
        qkv_bias: bool = False,
        save_attn: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not 0.0 <= dropout_rate <= 1.0:
            raise ValueError(f"dropout_rate should be between 0 and 1, got {dropout_rate}.")
        if hidden_size % num_heads or decoder_hidden_size % decoder_num_heads:
            raise ValueError("hidden_size / decoder_hidden_size must be divisible by num_heads / decoder_num_heads.")
        masking = check_masking(masking, 0.75)
        if not masking.mask_ratio < 1.0:
            raise ValueError(f"masking.mask_ratio should be in [0, 1) (a patch must stay visible), got {masking!r}.")
        if proj_type != "conv":
            raise ValueError(f"proj_type={proj_type!r} is not supported; use 'conv'.")
        for name, val in (("pos_embed_type", pos_embed_type), ("decoder_pos_embed_type", decoder_pos_embed_type)):
            if val not in ("sincos", "learnable", "none"):
                raise ValueError(f"{name} must be 'sincos', 'learnable' or 'none', got {val!r}.")
        nd = spatial_dims
        self.spatial_dims = nd
        self.img_size = (int(img_size),) * nd if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        self.patch_size = (int(patch_size),) * nd if isinstance(patch_size, int) else tuple(int(p) for p in patch_size)
        if len(self.img_size) != nd or len(self.patch_size) != nd:
            raise ValueError(f"img_size {img_size} / patch_size {patch_size} must have {nd} entries.")
        self.grid_size = patch_grid(self.img_size, self.patch_size)
        self.num_patches = math.prod(self.grid_size)
        self.pred_patch_size = self.patch_size
        self.in_channels = in_channels
        self.hidden_size = hidden_size
        self.masking = masking

        # encoder: names identical to monai.networks.nets.ViT
        self.patch_embedding = _PatchEmbedding(
            in_channels, self.patch_size, self.grid_size, hidden_size, pos_embed_type, dropout_rate, nd
        )
        self.blocks = nn.ModuleList(
            _TransformerBlock(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias, save_attn)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)
        # decoder
        self.decoder_embed = nn.Linear(hidden_size, decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_hidden_size))
        if decoder_pos_embed_type == "learnable":
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, decoder_hidden_size))
            nn.init.trunc_normal_(self.decoder_pos_embed, std=0.02, a=-2.0, b=2.0)
        elif decoder_pos_embed_type == "sincos":
            self.register_buffer("decoder_pos_embed", sincos_position_embedding(self.grid_size, decoder_hidden_size))
        else:
            self.register_buffer("decoder_pos_embed", torch.zeros(1, self.num_patches, decoder_hidden_size))
        self.decoder_blocks = nn.ModuleList(
            _TransformerBlock(decoder_hidden_size, decoder_mlp_dim, decoder_num_heads, dropout_rate, qkv_bias,
                              save_attn)
            for _ in range(decoder_num_layers)
        )
        self.decoder_norm = nn.LayerNorm(decoder_hidden_size)
        self.decoder_pred = nn.Linear(decoder_hidden_size, math.prod(self.patch_size) * in_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.img_size:
            raise ValueError(
                f"input shape {tuple(x.shape)} does not match (B, {self.in_channels}, *{self.img_size}) of this model."
            )

    @property
    def masking_ratio(self) -> float:
        """Default share of patches masked per sample (``masking.mask_ratio``)."""
        return self.masking.mask_ratio

    @property
    def mask_mode(self) -> str:
        """Name of the masking rule (``masking.mode``: ``"random"``, ``"entropy"``)."""
        return self.masking.mode

    def generate_mask(
        self, x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mask (B, L), ids_shuffle (B, L), ids_restore (B, L))`` for image ``x`` from ``self.masking``."""
        return self.masking(x, self.patch_size, generator=generator, mask_ratio=mask_ratio)

    def forward_encoder(
        self, x: torch.Tensor, mask_ratio: float | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches only.

        Args:
            x: ``(B, C, *img_size)``.
            mask_ratio: overrides ``masking.mask_ratio``; 0 encodes every patch in grid order.
            generator: optional ``torch.Generator`` on ``x.device`` for the mask draw.

        Returns:
            ``(latent (B, L_visible, hidden_size), mask (B, L), ids_restore (B, L))``.
        """
        self._check_input(x)
        ratio = self.masking_ratio if mask_ratio is None else float(mask_ratio)
        tokens = self.patch_embedding(x)
        b, n, d = tokens.shape
        if round(ratio * n) == 0:
            mask = torch.zeros(b, n, device=x.device)
            ids_restore = torch.arange(n, device=x.device).expand(b, n)
        else:
            mask, ids_shuffle, ids_restore = self.generate_mask(x, ratio, generator)
            keep = n - int(round(ratio * n))
            tokens = torch.gather(tokens, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens), mask, ids_restore

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder tokens ``(B, L, hidden_size)`` of the full (unmasked) image, as ``ViT(x)[0]``."""
        return self.forward_encoder(x, mask_ratio=0.0)[0]

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch from the visible latents: ``(B, L_visible, D) -> (B, L, prod(p) * C)``."""
        x = self.decoder_embed(latent)
        b, keep, d = x.shape
        n = ids_restore.shape[1]
        if keep < n:
            x = torch.cat([x, self.mask_token.to(x.dtype).expand(b, n - keep, d)], dim=1)
            x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, d))
        x = x + self.decoder_pos_embed.to(x.dtype)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))

    def forward(
        self, x: torch.Tensor, mask_ratio: float | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, C, *img_size) -> (pred (B, L, prod(patch_size) * C), mask (B, L))``."""
        latent, mask, ids_restore = self.forward_encoder(x, mask_ratio, generator)
        return self.forward_decoder(latent, ids_restore), mask


# parameter/buffer name prefixes of the MaskedAutoencoderViT encoder (names identical to monai ViT)
MAE_VIT_ENCODER_PREFIXES = ("patch_embedding.", "blocks.", "norm.")


def mae_vit_to_monai_vit(state_dict: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Map a :class:`MaskedAutoencoderViT` state dict onto ``monai.networks.nets.ViT`` (``classification=False``).

    The MAE encoder uses MONAI's parameter names (``patch_embedding.patch_embeddings``,
    ``patch_embedding.position_embeddings``, ``blocks.{i}.{norm1,attn.qkv,attn.out_proj,norm2,
    mlp.linear1,mlp.linear2}``, ``norm``), so the map keeps encoder keys, adds ``prefix`` and drops the
    decoder (``decoder_*``, ``mask_token``). The fixed sin-cos position table is exported as
    ``position_embeddings`` and loads into a learnable or sin-cos ViT alike.

    Args:
        state_dict: MAE weights (a ``MaskedAutoencoderViT.state_dict()`` or a loaded checkpoint).
        prefix: added to every key, e.g. ``"vit."`` for ``monai.networks.nets.UNETR``.

    Returns:
        ``{target key: tensor}`` (the ``mae_vit`` / ``mae_vit_unetr`` kinds of
        :func:`monai_ssl.networks.load_pretrained` load it with a report).
    """
    out = {}
    for k, v in state_dict.items():
        if k.startswith(MAE_VIT_ENCODER_PREFIXES):
            out[prefix + k] = v
    if not out:
        raise ValueError("state_dict holds no MaskedAutoencoderViT encoder keys (patch_embedding.*, blocks.*, norm.*).")
    return out


def _mae_vit_from(encoder: dict, decoder: dict, in_channels, img_size, spatial_dims, overrides: dict):
    """``MaskedAutoencoderViT`` from a size preset; ``overrides`` win over the preset."""
    cfg = {**encoder, **decoder, **overrides}
    return MaskedAutoencoderViT(in_channels, img_size, spatial_dims=spatial_dims, **cfg)


def mae_vit_small_patch16(
    in_channels: int = 1, img_size: Sequence[int] | int = 224, spatial_dims: int = 2, **kwargs
) -> MaskedAutoencoderViT:
    """ViT-S/16 MAE: encoder 384 wide, 12 blocks of 6 heads, MLP 1536; decoder 256 wide, 4 blocks of 8 heads,
    MLP 1024 (a lighter decoder for the smaller encoder; the mae_pretrain bundle's ``vit``); qkv bias.

    Keyword arguments override any of these or set the others of :class:`MaskedAutoencoderViT` (``masking``,
    ``patch_size``, ...).
    """
    encoder = {"patch_size": 16, "hidden_size": 384, "mlp_dim": 1536, "num_layers": 12, "num_heads": 6,
               "qkv_bias": True}
    decoder = {"decoder_hidden_size": 256, "decoder_mlp_dim": 1024, "decoder_num_layers": 4, "decoder_num_heads": 8}
    return _mae_vit_from(encoder, decoder, in_channels, img_size, spatial_dims, kwargs)


def mae_vit_base_patch16(
    in_channels: int = 3, img_size: Sequence[int] | int = 224, spatial_dims: int = 2, **kwargs
) -> MaskedAutoencoderViT:
    """ViT-B/16 MAE as in He et al. (2022): encoder 768 wide, 12 blocks of 12 heads, MLP 3072; decoder 512 wide,
    8 blocks of 16 heads, MLP 2048; qkv bias. Keyword arguments override any of these."""
    encoder = {"patch_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_layers": 12, "num_heads": 12,
               "qkv_bias": True}
    decoder = {"decoder_hidden_size": 512, "decoder_mlp_dim": 2048, "decoder_num_layers": 8, "decoder_num_heads": 16}
    return _mae_vit_from(encoder, decoder, in_channels, img_size, spatial_dims, kwargs)


def mae_vit_large_patch16(
    in_channels: int = 3, img_size: Sequence[int] | int = 224, spatial_dims: int = 2, **kwargs
) -> MaskedAutoencoderViT:
    """ViT-L/16 MAE as in He et al. (2022): encoder 1024 wide, 24 blocks of 16 heads, MLP 4096; decoder as
    :func:`mae_vit_base_patch16`. Keyword arguments override any of these."""
    encoder = {"patch_size": 16, "hidden_size": 1024, "mlp_dim": 4096, "num_layers": 24, "num_heads": 16,
               "qkv_bias": True}
    decoder = {"decoder_hidden_size": 512, "decoder_mlp_dim": 2048, "decoder_num_layers": 8, "decoder_num_heads": 16}
    return _mae_vit_from(encoder, decoder, in_channels, img_size, spatial_dims, kwargs)
