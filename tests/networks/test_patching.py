"""Tests of patchify / unpatchify."""

from __future__ import annotations

import pytest
import torch

from monai_ssl.networks.patching import patch_grid, patchify, unpatchify


@pytest.mark.parametrize(
    "shape,patch",
    [((2, 1, 8, 12), 4), ((2, 3, 8, 12), (4, 2)), ((1, 2, 4, 6, 8), 2), ((2, 1, 4, 6, 8), (2, 3, 4))],
)
def test_roundtrip(shape, patch):
    x = torch.randn(shape)
    p = patchify(x, patch)
    nd = len(shape) - 2
    pt = (patch,) * nd if isinstance(patch, int) else patch
    grid = patch_grid(shape[2:], pt)
    assert p.shape == (shape[0], torch.tensor(grid).prod().item(), torch.tensor(pt).prod().item() * shape[1])
    assert torch.equal(unpatchify(p, patch, shape[2:]), x)


def test_order_matches_conv_patch_embedding():
    """Patch i of patchify is the receptive field of output token i of a strided conv (MONAI order)."""
    x = torch.randn(2, 3, 8, 12, 4)
    conv = torch.nn.Conv3d(3, 5, kernel_size=(4, 3, 2), stride=(4, 3, 2), bias=False)
    tokens = conv(x).flatten(2).transpose(1, 2)  # (B, L, 5)
    # the same linear map applied to patchified values, laid out (p0, p1, p2, C)
    w = conv.weight.permute(0, 2, 3, 4, 1).reshape(5, -1)
    assert torch.allclose(patchify(x, (4, 3, 2)) @ w.T, tokens, atol=1e-5)


def test_channel_last_layout():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    p = patchify(x, 2)
    # first patch: pixels (0,0),(0,1),(1,0),(1,1), channels interleaved
    assert p[0, 0].tolist() == [0, 16, 1, 17, 4, 20, 5, 21]


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.randn(1, 1, 10, 8), 4)
    with pytest.raises(ValueError, match="spatial dims"):
        patchify(torch.randn(1, 1, 8, 8), (4, 4, 4))
    with pytest.raises(ValueError, match="tile"):
        unpatchify(torch.randn(1, 5, 16), 4, (8, 8))
