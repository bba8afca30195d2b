"""The three MAEs with a mask-generator object draw the masks the masking functions draw, bit for bit, and give the
predictions the per-network knobs (``masking_ratio``, ``mask_mode``, ``entropy_*``) gave before the object existed.

``RECORDED`` was printed by running these cases on the code before the change (commit 7c80d24): per sample the masked
units of ``forward(x, generator=Generator().manual_seed(2))`` (for Swin/ConvNeXt the unit mask, read off the token
mask), and ``pred.sum()`` / ``pred.abs().sum()`` in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

from monai_ssl.networks.masking import (
    EntropyGuidedMasking,
    RandomMasking,
    block_mask_to_tokens,
    entropy_guided_mask,
    random_unit_mask,
    unit_entropy,
)
from monai_ssl.networks.nets import ConvNeXtMAE, MaskedAutoencoderViT, SwinMAE

VIT = {"hidden_size": 32, "mlp_dim": 48, "num_heads": 4, "decoder_hidden_size": 16, "decoder_mlp_dim": 32,
       "decoder_num_layers": 1, "decoder_num_heads": 4}
SWIN = {"feature_size": 12, "window_size": 4, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2),
        "decoder_depths": (1, 1, 1, 1)}
CONVNEXT = {"depths": (1, 1), "dims": (8, 16), "decoder_dim": 16}
VIT2D = {"in_channels": 1, "img_size": (32, 48), "patch_size": 8, "spatial_dims": 2, "num_layers": 2, **VIT}
VIT3D = {"in_channels": 2, "img_size": (16, 16, 24), "patch_size": 8, "spatial_dims": 3, "num_layers": 1, **VIT}

# name: (class, constructor kwargs, EntropyGuidedMasking kwargs or None for the default masking, input shape)
CASES = {
    "vit2d_random": (MaskedAutoencoderViT, VIT2D, None, (3, 1, 32, 48)),
    "vit2d_entropy": (MaskedAutoencoderViT, VIT2D,
                      {"mask_ratio": 0.5, "beta": 3.0, "lam": 0.75, "bins": 16, "value_range": (0.0, 2.0)},
                      (3, 1, 32, 48)),
    "vit3d_entropy_default": (MaskedAutoencoderViT, VIT3D, {}, (2, 2, 16, 16, 24)),
    "swin2d_random": (SwinMAE, {"spatial_dims": 2, "in_channels": 1, "mask_unit_size": 8, **SWIN}, None,
                      (2, 1, 64, 64)),
    "swin2d_entropy": (SwinMAE, {"spatial_dims": 2, "in_channels": 1, "mask_unit_size": 16, **SWIN},
                       {"mask_ratio": 0.6, "beta": -1.0, "lam": 0.5, "bins": 8}, (2, 1, 64, 96)),
    "convnext2d_random": (ConvNeXtMAE, {"spatial_dims": 2, "in_channels": 1, "mask_unit_size": 16, **CONVNEXT}, None,
                          (2, 1, 32, 48)),
    "convnext3d_entropy": (ConvNeXtMAE, {"spatial_dims": 3, "in_channels": 1, "mask_unit_size": 8, **CONVNEXT},
                           {"mask_ratio": 0.5, "beta": 2.0, "lam": 1.0}, (2, 1, 16, 16, 32)),
}
RECORDED = {  # masked units per sample, pred.sum(), pred.abs().sum()
    "vit2d_random": ([[0, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16, 19, 21, 22, 23],
                      [0, 1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 16, 18, 19, 20, 21, 22, 23],
                      [0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 14, 15, 16, 17, 18, 21, 23]], -151.728448, 2509.22695),
    "vit2d_entropy": ([[0, 4, 5, 7, 8, 11, 13, 14, 15, 18, 19, 23], [1, 4, 7, 8, 9, 10, 11, 12, 18, 20, 21, 22],
                       [1, 3, 4, 6, 7, 9, 11, 12, 15, 16, 18, 23]], -226.732117, 2575.14568),
    "vit3d_entropy_default": ([[0, 1, 2, 4, 5, 6, 8, 9, 10], [0, 1, 2, 3, 4, 6, 7, 9, 11]], 78.1427969, 3522.41653),
    "swin2d_random": ([[0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16, 19, 21, 22, 23, 24, 25, 26, 32, 33, 34,
                        36, 38, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 62, 63],
                       [0, 1, 2, 4, 5, 7, 9, 10, 11, 12, 14, 16, 17, 19, 20, 21, 22, 23, 25, 26, 28, 29, 30, 31, 35,
                        36, 37, 39, 40, 41, 42, 43, 45, 46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 59, 60, 62, 63]],
                      -225.610358, 7884.1867),
    "swin2d_entropy": ([[0, 2, 4, 5, 8, 10, 11, 12, 13, 15, 16, 18, 19, 23],
                        [1, 2, 7, 8, 9, 10, 12, 14, 18, 19, 20, 21, 22, 23]], -545.784913, 11872.418),
    "convnext2d_random": ([[0, 2, 4, 5], [0, 2, 4, 5]], -0.341018342, 3.45404389),
    "convnext3d_entropy": ([[0, 2, 4, 6, 7, 8, 12, 13], [0, 2, 5, 8, 9, 11, 12, 15]], 0.956341848, 13.9280385),
}


def _build(name):
    cls, kwargs, entropy, shape = CASES[name]
    masking = None if entropy is None else EntropyGuidedMasking(**entropy)
    torch.manual_seed(0)
    net = cls(**kwargs, masking=masking).eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    return net, x, entropy


def _unit_size(net):
    return net.patch_size if isinstance(net, MaskedAutoencoderViT) else net.mask_unit_size


def _old_style_mask(net, x, entropy, seed, ratio=None):
    """The masks the networks drew before the masking object, straight from the masking functions."""
    g = torch.Generator().manual_seed(seed)
    unit = _unit_size(net)
    if ratio is None:
        ratio = (0.6 if isinstance(net, ConvNeXtMAE) else 0.75) if entropy is None else entropy.get("mask_ratio", 0.75)
    if entropy is None:
        grid = [s // u for s, u in zip(x.shape[2:], unit)]
        return random_unit_mask(x.shape[0], math.prod(grid), ratio, x.device, g)
    h = unit_entropy(x, unit, bins=entropy.get("bins", 32), value_range=entropy.get("value_range", (0.0, 1.0)))
    return entropy_guided_mask(h, ratio, entropy.get("beta", 1.0), entropy.get("lam", 0.5), generator=g)


def _unit_mask_of(net, token_mask, x):
    """Unit mask from the token/prediction-unit mask a Swin/ConvNeXt forward returns."""
    tokens = [s // p for s, p in zip(x.shape[2:], net.pred_patch_size)]
    per_unit = [u // p for u, p in zip(net.mask_unit_size, net.pred_patch_size)]
    view = token_mask.reshape(x.shape[0], *tokens)[(slice(None), *[slice(None, None, s) for s in per_unit])]
    return view.reshape(x.shape[0], -1)


@pytest.mark.parametrize("name", list(CASES))
def test_same_masks_and_predictions_as_before(name):
    net, x, _ = _build(name)
    with torch.no_grad():
        pred, mask = net(x, generator=torch.Generator().manual_seed(2))
    units = mask if isinstance(net, MaskedAutoencoderViT) else _unit_mask_of(net, mask, x)
    masked, pred_sum, pred_abs = RECORDED[name]
    assert [row.nonzero().flatten().tolist() for row in units] == masked
    p = pred.double()
    assert abs(p.abs().sum().item() - pred_abs) <= 1e-5 * pred_abs
    assert abs(p.sum().item() - pred_sum) <= 1e-5 * pred_abs


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("ratio", [None, 0.25])
def test_bit_identical_to_masking_functions(name, ratio):
    net, x, entropy = _build(name)
    mask_ref, ids_shuffle, ids_restore = _old_style_mask(net, x, entropy, seed=5, ratio=ratio)
    with torch.no_grad():
        pred, mask = net(x, mask_ratio=ratio, generator=torch.Generator().manual_seed(5))
        if isinstance(net, MaskedAutoencoderViT):
            assert torch.equal(mask, mask_ref)
            # the visible-only encoder on the reference shuffle, decoded with the reference restore order
            tokens = net.patch_embedding(x)
            keep = tokens.shape[1] - int(mask_ref[0].sum())
            tokens = torch.gather(tokens, 1, ids_shuffle[:, :keep, None].expand(-1, -1, tokens.shape[2]))
            for blk in net.blocks:
                tokens = blk(tokens)
            expected = net.forward_decoder(net.norm(tokens), ids_restore)
        else:
            grid = [s // u for s, u in zip(x.shape[2:], net.mask_unit_size)]
            per_unit = [u // p for u, p in zip(net.mask_unit_size, net.pred_patch_size)]
            assert torch.equal(mask, block_mask_to_tokens(mask_ref, grid, per_unit))
            expected, _ = net(x, mask=mask_ref)
    assert torch.equal(pred, expected)


def test_default_masking_is_random_at_the_old_default_ratio():
    for net, ratio in ((MaskedAutoencoderViT(1, 32, 8, spatial_dims=2, num_layers=1, **VIT), 0.75),
                       (SwinMAE(2, 1, **SWIN), 0.75), (ConvNeXtMAE(2, 1, **CONVNEXT), 0.6)):
        assert isinstance(net.masking, RandomMasking) and net.masking.mask_ratio == ratio
        assert net.masking_ratio == ratio and net.mask_mode == "random"


def test_bad_masking_argument():
    with pytest.raises(TypeError, match="MaskGenerator"):
        SwinMAE(2, 1, masking=0.75, **SWIN)
    with pytest.raises(TypeError, match="MaskGenerator"):
        ConvNeXtMAE(2, 1, masking="entropy", **CONVNEXT)
    with pytest.raises(ValueError, match="mask_ratio"):  # the ViT encoder needs a visible patch
        MaskedAutoencoderViT(1, 32, 8, spatial_dims=2, num_layers=1, masking=RandomMasking(1.0), **VIT)
