"""ConvNeXt-MAE (FCMAE-style, masked-dense): mask ratio, no leakage, loss on masked units, export to ConvNeXt."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.masking import EntropyGuidedMasking, RandomMasking, build_masking
from monai_ssl.networks.nets import (
    ConvNeXt,
    ConvNeXtMAE,
    convnext_mae_small,
    convnext_mae_tiny,
    convnext_mae_to_convnext,
)
from monai_ssl.networks.weights import load_mapped_state_dict

CFG = dict(depths=(1, 1), dims=(8, 16), decoder_dim=16)  # stride 8


@pytest.mark.parametrize(
    "spatial_dims,shape,unit",
    [(2, (3, 1, 32, 48), 16), (2, (2, 3, 64, 64), 8), (3, (2, 1, 16, 16, 32), 8), (3, (2, 3, 16, 32, 16), 16)],
)
def test_shapes_and_exact_ratio(spatial_dims, shape, unit):
    net = ConvNeXtMAE(spatial_dims, shape[1], mask_unit_size=unit, masking=RandomMasking(0.6), **CFG)
    x = torch.rand(shape)
    pred, mask = net(x)
    n_pred = math.prod(s // 8 for s in shape[2:])
    n_units = math.prod(s // unit for s in shape[2:])
    per_unit = (unit // 8) ** spatial_dims
    assert net.pred_patch_size == (8,) * spatial_dims
    assert pred.shape == (shape[0], n_pred, 8**spatial_dims * shape[1])
    assert mask.shape == (shape[0], n_pred)
    assert torch.all(mask.sum(1) == round(0.6 * n_units) * per_unit)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_tiny_defaults_are_fcmae():
    with torch.device("meta"):
        net = convnext_mae_tiny(2, 3)
    assert net.pred_patch_size == (32, 32) and net.mask_unit_size == (32, 32)
    assert net.masking_ratio == 0.6 and net.decoder_embed.out_channels == 512
    assert net.decoder_pred.out_channels == 32 * 32 * 3
    assert net.mask_token.shape == (1, 512, 1, 1)


def test_no_leakage_from_masked_units():
    """Masked-dense encoding: changing masked pixels changes neither visible features nor visible predictions."""
    torch.manual_seed(0)
    net = ConvNeXtMAE(2, 1, mask_unit_size=16, **CFG).eval()
    with torch.no_grad():  # full-strength residual branches (layer scale 1 instead of 1e-6)
        for block in [*net.encoder.stages[0], *net.encoder.stages[1], net.decoder]:
            block.gamma.fill_(1.0)
    x = torch.rand(2, 1, 64, 64)
    unit_mask = torch.zeros(2, 16)
    unit_mask[:, [0, 5, 6, 9, 15]] = 1
    pix = unit_mask.reshape(2, 1, 4, 4).repeat_interleave(16, 2).repeat_interleave(16, 3)
    x2 = torch.where(pix.bool(), torch.rand_like(x) * 5, x)
    pred1, m = net(x, mask=unit_mask)
    pred2, _ = net(x2, mask=unit_mask)
    feats1 = net.forward_encoder(x, m)
    feats2 = net.forward_encoder(x2, m)
    torch.testing.assert_close(feats1, feats2)
    # features at masked units are zero
    keep = (1 - m).reshape(2, 1, 8, 8)
    assert torch.all(feats1 * (1 - keep) == 0)
    # a plain dense ConvNeXt (no re-masking) does leak masked pixels into visible features
    plain1 = net.encoder.forward_features(x * (1 - pix)) * keep
    plain2 = net.encoder.forward_features(x2 * (1 - pix) + pix) * keep
    assert (plain1 - plain2).abs().max() > 1e-3
    torch.testing.assert_close(pred1, pred2)


def test_loss_only_on_masked_units():
    torch.manual_seed(0)
    net = ConvNeXtMAE(2, 1, mask_unit_size=8, **CFG)
    x = torch.rand(2, 1, 32, 32)
    pred, mask = net(x)
    loss_fn = MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2, norm_pix_loss=True)
    loss = loss_fn(pred, x, mask)
    pred_changed = pred.detach().clone()
    pred_changed[mask == 0] += 100.0  # visible predictions do not matter
    torch.testing.assert_close(loss_fn(pred_changed, x, mask), loss.detach())
    loss.backward()
    assert net.mask_token.grad is not None and net.mask_token.grad.abs().sum() > 0
    assert net.encoder.downsample_layers[0][0].weight.grad.abs().sum() > 0


def test_entropy_mode_prefers_textured_units():
    torch.manual_seed(0)
    net = ConvNeXtMAE(2, 1, mask_unit_size=8, masking=EntropyGuidedMasking(0.5, beta=50.0, lam=1.0), **CFG)
    x = torch.full((4, 1, 32, 32), 0.5)
    x[:, :, :16] = torch.rand(4, 1, 16, 32)  # top half noisy, bottom half constant
    _, mask = net(x, generator=torch.Generator().manual_seed(1))
    grid = mask.reshape(4, 4, 4)
    assert torch.all(grid[:, :2].sum((1, 2)) == 8) and torch.all(grid[:, 2:] == 0)


def test_generator_reproducible_and_mask_ratio_override():
    net = ConvNeXtMAE(2, 1, mask_unit_size=8, **CFG)
    x = torch.rand(2, 1, 32, 32)
    _, m1 = net(x, generator=torch.Generator().manual_seed(3))
    _, m2 = net(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m1, m2)
    _, m0 = net(x, mask_ratio=0.0)
    assert m0.sum() == 0


def test_export_to_convnext_equal_features():
    torch.manual_seed(0)
    mae = ConvNeXtMAE(2, 3, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), decoder_dim=16)
    with torch.no_grad():  # move off the near-identity init so the comparison is meaningful
        for p in mae.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    clf = ConvNeXt(2, 3, num_classes=4, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    report = load_mapped_state_dict(clf, convnext_mae_to_convnext(mae.state_dict()))
    assert report.loaded_fraction == 1.0 and not report.mismatched and not report.unexpected
    assert sorted(report.missing) == ["head.fc.bias", "head.fc.weight", "head.norm.bias", "head.norm.weight"]
    mae.eval()
    clf.eval()
    x = torch.rand(2, 3, 64, 96)
    torch.testing.assert_close(clf.forward_features(x), mae.forward_encoder(x, None))
    torch.testing.assert_close(clf.forward_features(x), mae.encoder.forward_features(x))
    # all-visible masked-dense path equals the plain encoder
    zeros = torch.zeros(2, 6)
    torch.testing.assert_close(mae.forward_encoder(x, zeros), clf.forward_features(x))


def test_bad_inputs():
    with pytest.raises(ValueError, match="multiple of the encoder stride"):
        ConvNeXtMAE(2, 1, mask_unit_size=12, **CFG)
    with pytest.raises(ValueError, match="mask_mode"):
        ConvNeXtMAE(2, 1, masking=build_masking("grid", 0.6), **CFG)
    net = ConvNeXtMAE(2, 1, mask_unit_size=16, **CFG)
    with pytest.raises(ValueError, match="mask_unit_size"):
        net(torch.rand(1, 1, 40, 32))
    with pytest.raises(ValueError, match="L_units"):
        net(torch.rand(1, 1, 32, 32), mask=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="encoder"):
        convnext_mae_to_convnext({"decoder_pred.weight": torch.zeros(1)})


def test_size_factories_take_overrides():
    with torch.device("meta"):
        small = convnext_mae_small(2, 1)
        tiny = convnext_mae_tiny(2, 1, depths=(1, 1, 1, 1), decoder_dim=32, masking=EntropyGuidedMasking(0.5))
    assert [len(s) for s in small.encoder.stages] == [3, 3, 27, 3] and small.masking_ratio == 0.6
    assert [len(s) for s in tiny.encoder.stages] == [1, 1, 1, 1] and tiny.encoder.num_features == 768
    assert tiny.decoder_embed.out_channels == 32 and tiny.mask_mode == "entropy" and tiny.masking_ratio == 0.5
