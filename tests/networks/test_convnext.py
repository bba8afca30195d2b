"""ConvNeXt 2D/3D: shapes, head API, layer scale, stochastic depth, LayerNorm channels-first."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_ssl.networks.nets import ConvNeXt, ConvNeXtBlock, LayerNormChannelsFirst, convnext_small, convnext_tiny

TINY = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("spatial_dims,shape", [(2, (2, 1, 64, 96)), (3, (2, 3, 32, 32, 64)), (2, (1, 3, 32, 32))])
def test_shapes_2d_3d_channels_non_square(spatial_dims, shape):
    net = ConvNeXt(spatial_dims, shape[1], num_classes=5, **TINY)
    x = torch.rand(shape)
    feats = net.forward_features(x)
    assert feats.shape == (shape[0], 64, *[s // 32 for s in shape[2:]])
    assert net.forward_head(feats).shape == (shape[0], 5)
    assert net.forward_head(feats, pre_logits=True).shape == (shape[0], 64)
    assert net(x).shape == (shape[0], 5)


def test_head_is_gap_ln_linear():
    net = ConvNeXt(2, 1, num_classes=3, **TINY).eval()
    feats = torch.randn(2, 64, 2, 3)
    pooled = F.layer_norm(feats.mean((2, 3)), (64,), net.head.norm.weight, net.head.norm.bias, 1e-6)
    torch.testing.assert_close(net.forward_head(feats), net.head.fc(pooled))


def test_reset_classifier_and_no_head():
    net = ConvNeXt(2, 1, num_classes=3, **TINY)
    net.reset_classifier(7)
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 7)
    net.reset_classifier(0)
    assert net(torch.rand(1, 1, 32, 32)).shape == (1, 64)
    enc = ConvNeXt(2, 1, use_head=False, **TINY)
    assert not any(k.startswith("head") for k in enc.state_dict())
    with pytest.raises(RuntimeError, match="use_head=False"):
        enc.forward_head(torch.rand(1, 64, 1, 1))


def test_layer_scale_init_and_residual():
    blk = ConvNeXtBlock(2, 8, layer_scale_init_value=1e-6)
    assert torch.allclose(blk.gamma, torch.full((8,), 1e-6))
    x = torch.randn(2, 8, 9, 9)
    # with gamma = 1e-6 the block is almost the identity
    assert (blk(x) - x).abs().max() < 1e-3
    assert ConvNeXtBlock(2, 8, layer_scale_init_value=0).gamma is None


def test_stochastic_depth_rates_and_train_eval():
    net = ConvNeXt(2, 1, num_classes=0, depths=(2, 2), dims=(8, 16), drop_path_rate=0.5)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in net.stages for b in s]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.5) and rates == sorted(rates)
    for s in net.stages:
        for b in s:
            b.gamma.data.fill_(1.0)
    x = torch.rand(4, 1, 32, 32)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    assert not torch.allclose(net(x), net(x))


def test_layernorm_channels_first_matches_layer_norm():
    ln = LayerNormChannelsFirst(6)
    ln.weight.data.uniform_()
    ln.bias.data.uniform_()
    x = torch.randn(2, 6, 3, 4, 5)
    ref = F.layer_norm(x.permute(0, 2, 3, 4, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(ln(x), ref)


def test_factories_parameter_counts():
    # ConvNeXt-Tiny ~28.6 M with a 1000-class head, Small ~50 M (published sizes); built on "meta" (no init cost)
    with torch.device("meta"):
        _check_factories()


def _check_factories():
    assert 28.0e6 < _count(convnext_tiny(2, 3, 1000)) < 29.0e6
    assert 49.5e6 < _count(convnext_small(2, 3, 1000)) < 50.5e6
    t = convnext_tiny(3, 1, 2)
    assert t.depths == (3, 3, 9, 3) and t.dims == (96, 192, 384, 768) and t.spatial_dims == 3


def test_bad_input_errors():
    net = ConvNeXt(2, 1, num_classes=2, **TINY)
    with pytest.raises(ValueError, match="divisible by the total stride 32"):
        net(torch.rand(1, 1, 40, 32))
    with pytest.raises(ValueError, match="input channels"):
        net(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="spatial dims"):
        net(torch.rand(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="spatial_dims"):
        ConvNeXt(1, 1)
