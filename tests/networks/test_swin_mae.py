"""Swin-MAE (VIS-MAE) on MONAI's SwinTransformer: block masking, full-grid encoder, decoder, SwinUNETR transfer."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.nets import SwinUNETR

from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.masking import EntropyGuidedMasking
from monai_ssl.networks.nets import PatchExpand, SwinMAE, swin_mae_swinunetr, swin_mae_tiny, swin_mae_to_swinunetr
from monai_ssl.networks.weights import load_mapped_state_dict

SMALL = dict(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), decoder_depths=(1, 1, 1, 1))


@pytest.mark.parametrize(
    "spatial_dims,shape,patch",
    [(2, (2, 1, 64, 96), 2), (2, (2, 3, 64, 64), 4), (3, (2, 1, 32, 32, 64), 2), (3, (1, 3, 32, 32, 32), 2)],
)
def test_shapes_exact_ratio_block_mask(spatial_dims, shape, patch):
    net = SwinMAE(spatial_dims, shape[1], patch_size=patch, window_size=4, **SMALL)
    x = torch.rand(shape)
    pred, mask = net(x)
    tokens = [s // patch for s in shape[2:]]
    units = [s // 16 for s in shape[2:]]
    assert net.pred_patch_size == (patch,) * spatial_dims
    assert pred.shape == (shape[0], math.prod(tokens), patch**spatial_dims * shape[1])
    assert mask.shape == (shape[0], math.prod(tokens))
    per_unit = (16 // patch) ** spatial_dims
    assert torch.all(mask.sum(1) == round(0.75 * math.prod(units)) * per_unit)
    # each 16-px unit is masked as a whole block of tokens
    blocks = mask.reshape(shape[0], *[v for u in units for v in (u, 16 // patch)])
    perm = [0] + [1 + 2 * i for i in range(spatial_dims)] + [2 + 2 * i for i in range(spatial_dims)]
    blocks = blocks.permute(perm).reshape(shape[0], math.prod(units), per_unit)
    assert torch.all((blocks.sum(-1) == 0) | (blocks.sum(-1) == per_unit))


def test_encoder_sees_full_grid_with_mask_tokens():
    torch.manual_seed(0)
    net = SwinMAE(2, 1, window_size=4, **SMALL).eval()
    x = torch.rand(2, 1, 64, 64)
    unit_mask = torch.zeros(2, 16)
    unit_mask[0, :12] = 1
    unit_mask[1, 4:] = 1
    _, tmask = net(x, mask=unit_mask)
    feats = net.forward_encoder(x, tmask, normalize=False)
    # encoder input length == full token grid (32 x 32), masked tokens equal the mask token exactly
    assert feats[0].shape == (2, 12, 32, 32)
    tokens = feats[0].flatten(2).transpose(1, 2)  # (B, L, F)
    assert tokens.shape[1] == 32 * 32
    m = tmask.bool()
    torch.testing.assert_close(tokens[m], net.mask_token.reshape(1, -1).expand(int(m.sum()), -1))
    visible = net.encoder.patch_embed(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens[~m], visible[~m])
    assert [f.shape[1] for f in feats] == [12, 24, 48, 96, 192]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]


def test_masked_pixels_do_not_reach_the_encoder():
    torch.manual_seed(0)
    net = SwinMAE(2, 1, window_size=4, **SMALL).eval()
    x = torch.rand(1, 1, 64, 64)
    unit_mask = torch.zeros(1, 16)
    unit_mask[0, [1, 2, 7, 8, 11, 12, 13, 14, 15, 0, 3, 4]] = 1
    pix = unit_mask.reshape(1, 1, 4, 4).repeat_interleave(16, 2).repeat_interleave(16, 3)
    x2 = torch.where(pix.bool(), torch.rand_like(x), x)
    p1, _ = net(x, mask=unit_mask)
    p2, _ = net(x2, mask=unit_mask)
    torch.testing.assert_close(p1, p2)


def test_loss_only_on_masked_tokens_and_gradients():
    torch.manual_seed(0)
    net = SwinMAE(2, 1, window_size=4, mask_unit_size=8, **SMALL)
    x = torch.rand(2, 1, 32, 32)
    pred, mask = net(x, generator=torch.Generator().manual_seed(0))
    assert torch.all(mask.sum(1) == 12 * 16)
    loss_fn = MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2)
    loss = loss_fn(pred, x, mask)
    changed = pred.detach().clone()
    changed[mask == 0] = -7.0
    torch.testing.assert_close(loss_fn(changed, x, mask), loss.detach())
    loss.backward()
    assert net.mask_token.grad.abs().sum() > 0
    assert net.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert net.decoder_pred.weight.grad.abs().sum() > 0


def test_entropy_mode_and_generator():
    net = SwinMAE(2, 1, window_size=4, masking=EntropyGuidedMasking(0.5, beta=50.0, lam=1.0), mask_unit_size=8,
                  **SMALL)
    x = torch.full((2, 1, 32, 32), 0.5)
    x[:, :, :, :16] = torch.rand(2, 1, 32, 16)  # left half textured
    units = net.random_masking(x, generator=torch.Generator().manual_seed(0)).reshape(2, 4, 4)
    assert torch.all(units[:, :, :2] == 1) and torch.all(units[:, :, 2:] == 0)
    _, a = net(x, generator=torch.Generator().manual_seed(5))
    _, b = net(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    _, none = net(x, mask_ratio=0.0)
    assert none.sum() == 0


def test_patch_expand_layout():
    pe = PatchExpand(2, 8)
    x = torch.randn(1, 8, 3, 5)
    y = pe(x)
    assert y.shape == (1, 4, 6, 10)
    # output pixel (2i + a, 2j + b) comes only from input token (i, j)
    x2 = x.clone()
    x2[:, :, 1, 2] += 1.0
    diff = (pe(x2) - y).abs().sum(1)[0]
    assert torch.all(diff[2:4, 4:6] > 0) and diff.sum() == diff[2:4, 4:6].sum()
    assert PatchExpand(3, 8)(torch.randn(1, 8, 2, 3, 4)).shape == (1, 4, 4, 6, 8)


@pytest.mark.parametrize("spatial_dims,feature_size,shape", [(2, 24, (2, 1, 32, 64)), (2, 48, (1, 3, 64, 32)),
                                                              (3, 12, (1, 1, 32, 32, 32))])
def test_transfer_to_swinunetr_equal_encoder_features(spatial_dims, feature_size, shape):
    torch.manual_seed(0)
    mae = SwinMAE(spatial_dims, shape[1], feature_size=feature_size, drop_path_rate=0.0)  # MONAI defaults
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(0.02 * torch.randn_like(p))
    seg = SwinUNETR(in_channels=shape[1], out_channels=3, feature_size=feature_size, spatial_dims=spatial_dims)
    mapped = swin_mae_to_swinunetr(mae.state_dict())
    report = load_mapped_state_dict(seg, mapped)
    encoder_keys = [k for k in mae.state_dict() if k.startswith("encoder.")]
    assert report.num_source == len(encoder_keys) and report.loaded_fraction == 1.0
    assert not report.unexpected and not report.mismatched
    assert all(k.startswith("swinViT.") for k in report.loaded)
    assert not [k for k in report.missing if k.startswith("swinViT.")]  # 100 % of the SwinUNETR encoder set
    mae.eval()
    seg.eval()
    x = torch.rand(shape)
    with torch.no_grad():
        ours = mae.forward_encoder(x, None)
        theirs = seg.swinViT(x, seg.normalize)
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    if spatial_dims == 2:  # (3D 32^3 would hit InstanceNorm on a 1-voxel bottleneck inside SwinUNETR)
        with torch.no_grad():
            assert seg(x).shape == (shape[0], 3, *shape[2:])


def test_bad_inputs():
    net = SwinMAE(2, 1, window_size=4, **SMALL)
    with pytest.raises(ValueError, match="multiple of the encoder stride 32"):
        net(torch.rand(1, 1, 48, 64))
    with pytest.raises(ValueError, match="input channels"):
        net(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="L_units"):
        net(torch.rand(1, 1, 64, 64), mask=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        SwinMAE(2, 1, patch_size=4, mask_unit_size=6, **SMALL)
    with pytest.raises(ValueError, match="four stages"):
        SwinMAE(2, 1, depths=(2, 2, 2), num_heads=(3, 6, 12))
    with pytest.raises(ValueError, match="encoder keys"):
        swin_mae_to_swinunetr({"mask_token": torch.zeros(1)})


def test_size_factories():
    tiny = swin_mae_tiny()  # not on the meta device: MONAI's SwinTransformer reads its drop-path rates with .item()
    unetr = swin_mae_swinunetr(2, 1, feature_size=24, decoder_depths=(1, 1, 1, 1))
    # VIS-MAE: width 96, patch 4, one 16-px mask unit = 4x4 tokens, depths (2, 2, 2, 2)
    assert tiny.feature_size == 96 and tiny.patch_size == (4, 4) and tiny.tokens_per_unit == (4, 4)
    assert [len(getattr(tiny.encoder, f"layers{i}")[0].blocks) for i in range(1, 5)] == [2, 2, 2, 2]
    assert tiny.masking_ratio == 0.75 and tiny.mask_mode == "random"
    # loads into MONAI's SwinUNETR of the same feature size
    assert unetr.patch_size == (2, 2) and unetr.feature_size == 24 and len(unetr.decoder_layers[0].blocks) == 1
    target = SwinUNETR(in_channels=1, out_channels=2, feature_size=24, spatial_dims=2)
    report = load_mapped_state_dict(target, swin_mae_to_swinunetr(unetr.state_dict()))
    assert report.loaded_fraction == 1.0, report.summary()
