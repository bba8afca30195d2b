"""Tests of the ViT masked autoencoder and its transfer onto MONAI ViT / UNETR."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNETR, ViT

from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.masking import EntropyGuidedMasking, RandomMasking, build_masking
from monai_ssl.networks.nets import (
    MaskedAutoencoderViT,
    mae_vit_base_patch16,
    mae_vit_large_patch16,
    mae_vit_small_patch16,
    sincos_position_embedding,
)
from monai_ssl.networks.patching import patchify
from monai_ssl.networks.nets.mae import mae_vit_to_monai_vit
from monai_ssl.networks.weights import load_mapped_state_dict

SMALL = dict(hidden_size=40, mlp_dim=64, num_layers=2, num_heads=4, decoder_hidden_size=32, decoder_mlp_dim=48,
             decoder_num_layers=1, decoder_num_heads=4)


@pytest.mark.parametrize(
    "channels,img,patch,dims",
    [(1, (32, 48), 8, 2), (3, (16, 40), (8, 4), 2), (1, (16, 16, 24), 8, 3), (3, (16, 8, 8), (4, 8, 4), 3)],
)
def test_shapes_and_exact_ratio(channels, img, patch, dims):
    model = MaskedAutoencoderViT(channels, img, patch, spatial_dims=dims, masking=RandomMasking(0.75), **SMALL)
    x = torch.rand(3, channels, *img)
    pred, mask = model(x)
    n = model.num_patches
    patch_numel = torch.tensor(model.pred_patch_size).prod().item()
    assert pred.shape == patchify(x, patch).shape == (3, n, patch_numel * channels)
    assert mask.shape == (3, n)
    assert torch.equal(mask.sum(1), torch.full((3,), float(round(0.75 * n))))
    # visible-only encoder: sequence length = number of visible patches
    latent, mask2, ids_restore = model.forward_encoder(x)
    assert latent.shape == (3, n - round(0.75 * n), 40)
    assert ids_restore.shape == (3, n)


def test_encoder_ignores_masked_pixels():
    model = MaskedAutoencoderViT(1, (32, 32), 8, spatial_dims=2, masking=RandomMasking(0.5), **SMALL).eval()
    x = torch.rand(2, 1, 32, 32)
    latent, mask, _ = model.forward_encoder(x, generator=torch.Generator().manual_seed(0))
    # scramble the pixels of masked patches only
    pix = patchify(x, 8)
    pix[mask.bool()] = torch.rand_like(pix[mask.bool()])
    from monai_ssl.networks.patching import unpatchify

    x2 = unpatchify(pix, 8, (32, 32))
    latent2, mask2, _ = model.forward_encoder(x2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, mask2)
    assert torch.allclose(latent, latent2, atol=1e-6)
    # while changing a visible patch does change the latents
    pix[~mask.bool()] += 1.0
    latent3, _, _ = model.forward_encoder(unpatchify(pix, 8, (32, 32)), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(latent, latent3, atol=1e-3)


def test_decoder_restores_grid_order():
    """A token's prediction is tied to its grid position, whatever the shuffle."""
    model = MaskedAutoencoderViT(1, (16, 16), 4, spatial_dims=2, masking=RandomMasking(0.5), **SMALL).eval()
    latent, mask, ids_restore = model.forward_encoder(torch.rand(1, 1, 16, 16),
                                                      generator=torch.Generator().manual_seed(1))
    pred = model.forward_decoder(latent, ids_restore)
    # decoding the visible latents in another visible order (with a consistent ids_restore) is equivariant
    keep = latent.shape[1]
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    perm = torch.randperm(keep, generator=torch.Generator().manual_seed(2))
    ids_shuffle2 = torch.cat([ids_shuffle[:, :keep][:, perm], ids_shuffle[:, keep:]], dim=1)
    pred2 = model.forward_decoder(latent[:, perm], torch.argsort(ids_shuffle2, dim=1))
    assert torch.allclose(pred, pred2, atol=1e-5)


def test_entropy_mask_mode_prefers_texture():
    model = MaskedAutoencoderViT(
        1, (32, 32), 8, spatial_dims=2, masking=EntropyGuidedMasking(0.5, beta=5.0, lam=1.0), **SMALL,
    )
    x = torch.full((64, 1, 32, 32), 0.5)
    x[..., :16] = torch.rand(64, 1, 32, 16, generator=torch.Generator().manual_seed(0))
    _, mask = model(x, generator=torch.Generator().manual_seed(0))
    textured = torch.zeros(4, 4, dtype=torch.bool)
    textured[:, :2] = True
    assert mask[:, textured.flatten()].sum() / mask.sum() > 0.8
    assert torch.equal(mask.sum(1), torch.full((64,), 8.0))


def test_mask_ratio_zero_and_features():
    model = MaskedAutoencoderViT(1, (16, 24), 8, spatial_dims=2, **SMALL).eval()
    x = torch.rand(2, 1, 16, 24)
    pred, mask = model(x, mask_ratio=0.0)
    assert mask.sum() == 0 and pred.shape == (2, 6, 64)
    assert torch.allclose(model.forward_features(x), model.forward_encoder(x, mask_ratio=0.0)[0])


def test_vit_transfer_2d_outputs_match():
    model = MaskedAutoencoderViT(3, (32, 48), 16, spatial_dims=2, qkv_bias=True, **SMALL).eval()
    vit = ViT(3, (32, 48), 16, hidden_size=40, mlp_dim=64, num_layers=2, num_heads=4, classification=False,
              spatial_dims=2, qkv_bias=True).eval()
    encoder_keys = [k for k in model.state_dict() if not k.startswith(("decoder", "mask_token"))]
    report = load_mapped_state_dict(vit, mae_vit_to_monai_vit(model.state_dict()), min_loaded_fraction=1.0)
    assert sorted(report.loaded) == sorted(encoder_keys)  # 100 % of encoder keys
    assert report.loaded_fraction == 1.0 and not report.unexpected and not report.mismatched
    assert all("norm_cross_attn" in k for k in report.missing)  # unused by ViT without cross-attention
    x = torch.rand(2, 3, 32, 48)
    assert torch.allclose(vit(x)[0], model.forward_features(x), atol=1e-5)


def test_unetr_transfer_3d_width_not_divisible_by_6():
    # hidden_size 40 is not divisible by 6: MONAI's 3D sin-cos table would raise, ours does not
    model = MaskedAutoencoderViT(1, (16, 16, 32), 16, hidden_size=40, mlp_dim=48, num_layers=12, num_heads=4,
                                 decoder_hidden_size=32, decoder_num_layers=1, decoder_num_heads=4,
                                 spatial_dims=3).eval()
    unetr = UNETR(1, 2, (16, 16, 32), feature_size=4, hidden_size=40, mlp_dim=48, num_heads=4, spatial_dims=3).eval()
    report = load_mapped_state_dict(unetr, mae_vit_to_monai_vit(model.state_dict(), prefix="vit."),
                                    min_loaded_fraction=1.0, verbose=False)
    assert report.loaded_fraction == 1.0
    assert all(k.startswith("vit.") for k in report.loaded)
    x = torch.rand(1, 1, 16, 16, 32)
    assert torch.allclose(unetr.vit(x)[0], model.forward_features(x), atol=1e-5)
    assert unetr(x).shape == (1, 2, 16, 16, 32)


def test_sincos_any_width():
    table = sincos_position_embedding((3, 4, 5), 38)
    assert table.shape == (1, 60, 38)
    assert torch.unique(table[0], dim=0).shape[0] == 60  # every position distinct
    assert torch.allclose(table.norm(dim=-1), table.norm(dim=-1)[0, 0].expand(1, 60))  # sin^2+cos^2 per freq


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_training_step(dtype):
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(1, (16, 16, 16), 8, spatial_dims=3, **SMALL)
    loss_fn = MaskedReconstructionLoss(8, spatial_dims=3, norm_pix_loss=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 16, 16, 16)
    before = model.blocks[0].attn.qkv.weight.detach().clone()
    with torch.autocast("cpu", dtype=dtype):
        pred, mask = model(x)
        loss = loss_fn(pred, x, mask)
    assert pred.dtype == dtype and torch.isfinite(loss)
    loss.backward()
    assert model.mask_token.grad is not None and torch.isfinite(model.mask_token.grad).all()
    opt.step()
    assert not torch.equal(before, model.blocks[0].attn.qkv.weight)


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        MaskedAutoencoderViT(1, (30, 32), 8, spatial_dims=2, **SMALL)
    with pytest.raises(ValueError, match="mask_mode"):
        MaskedAutoencoderViT(1, 32, 8, spatial_dims=2, masking=build_masking("grid", 0.75), **SMALL)
    model = MaskedAutoencoderViT(1, 32, 8, spatial_dims=2, **SMALL)
    with pytest.raises(ValueError, match="does not match"):
        model(torch.rand(1, 3, 32, 32))


@pytest.mark.slow  # ~15 s on 2 CPU cores (Dynamo start-up)
def test_torch_compile_dynamic_shapes():
    """Dynamo traces the masking (no data-dependent Python control flow), also with symbolic batch sizes."""
    model = MaskedAutoencoderViT(1, (16, 16, 16), 8, spatial_dims=3, masking=EntropyGuidedMasking(), **SMALL)
    compiled = torch.compile(model, backend="eager", dynamic=True, fullgraph=True)
    for b in (2, 3):
        pred, mask = compiled(torch.rand(b, 1, 16, 16, 16))
        assert pred.shape == (b, 8, 512) and torch.equal(mask.sum(1), torch.full((b,), 6.0))


def test_size_factories():
    with torch.device("meta"):
        base = mae_vit_base_patch16()
        large = mae_vit_large_patch16(in_channels=1, img_size=(96, 96, 96), spatial_dims=3)
        small = mae_vit_small_patch16(img_size=64, num_layers=2, masking=EntropyGuidedMasking(0.6))
    # ViT-B/16 and ViT-L/16 encoders with MAE's 512-wide, 8-block decoder (He et al. 2022)
    assert base.patch_size == (16, 16) and base.in_channels == 3 and base.img_size == (224, 224)
    assert (base.hidden_size, len(base.blocks), base.blocks[0].attn.num_heads) == (768, 12, 12)
    assert base.blocks[0].mlp.linear1.out_features == 3072 and base.blocks[0].attn.qkv.bias is not None
    assert (base.decoder_embed.out_features, len(base.decoder_blocks), base.decoder_blocks[0].attn.num_heads) == (
        512, 8, 16)
    assert (large.hidden_size, len(large.blocks), large.num_patches) == (1024, 24, 216)
    assert isinstance(base.masking, RandomMasking) and base.masking_ratio == 0.75
    # keyword overrides win over the preset
    assert (small.hidden_size, len(small.blocks), small.decoder_embed.out_features) == (384, 2, 256)
    assert small.mask_mode == "entropy" and small.masking_ratio == 0.6
