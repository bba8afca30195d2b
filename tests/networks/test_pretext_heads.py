"""Pretext-task heads wrapping a shared backbone."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import ResNet
from torch import nn

from monai_ssl.networks.blocks import (
    PRETEXT_HEADS,
    JigsawHead,
    RelativeLocationHead,
    RotationHead,
    build_pretext_head,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _pooled_encoder() -> nn.Module:
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 16], spatial_dims=2, n_input_channels=1, feed_forward=False)


def _map_encoder() -> nn.Module:  # returns (N, F, h, w) feature maps
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())


def test_rotation_head_shapes_and_gradient():
    enc = _pooled_encoder()
    head = RotationHead(enc, 16)
    logits = head(torch.rand(3, 1, 16, 16))
    assert logits.shape == (3, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    assert head.encoder is enc
    assert RotationHead(_map_encoder(), 6, hidden_features=8)(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_jigsaw_head_shares_encoder_and_is_order_sensitive():
    calls = []
    enc = _map_encoder()
    enc.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    head = JigsawHead(enc, 6, num_tiles=9, num_classes=12, hidden_features=16).eval()
    tiles = torch.rand(2, 9, 1, 5, 5)
    logits = head(tiles)
    assert logits.shape == (2, 12)
    assert calls == [torch.Size([18, 1, 5, 5])]  # one shared pass over all tiles
    shuffled = tiles[:, torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 8])]
    assert not torch.allclose(head(shuffled), logits)  # concatenation keeps slot order
    reduced = JigsawHead(_map_encoder(), 6, num_classes=5, tile_features=3, hidden_features=4)
    assert reduced(tiles).shape == (2, 5)


def test_relative_location_head():
    enc = _pooled_encoder()
    head = RelativeLocationHead(enc, 16, hidden_features=8)
    out = head(torch.rand(4, 2, 1, 12, 12))
    assert out.shape == (4, 8)
    out.mean().backward()
    assert enc.conv1.weight.grad is not None


def test_heads_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        RotationHead(_map_encoder(), 6)(torch.rand(2, 9, 1, 4, 4))
    with pytest.raises(ValueError, match="expected 9 tiles"):
        JigsawHead(_map_encoder(), 6, num_classes=3)(torch.rand(2, 4, 1, 4, 4))
    with pytest.raises(ValueError, match="centre, neighbour"):
        RelativeLocationHead(_map_encoder(), 6)(torch.rand(2, 3, 1, 4, 4))


def test_build_pretext_head():
    enc = _map_encoder()
    assert set(PRETEXT_HEADS) == {"rotation", "jigsaw", "relative_location"}
    head = build_pretext_head("jigsaw", enc, 6, num_classes=7, hidden_features=4)
    assert isinstance(head, JigsawHead) and head.encoder is enc
    assert head(torch.rand(2, 9, 1, 4, 4)).shape == (2, 7)
    with pytest.raises(ValueError, match="unknown pretext task"):
        build_pretext_head("colourisation", enc, 6)
