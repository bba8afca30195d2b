"""Tests of MaskedReconstructionLoss."""

from __future__ import annotations

import pytest
import torch

from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.patching import patchify


def _setup(shape=(2, 3, 8, 12), patch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(shape, generator=g)
    target = patchify(image, patch)
    pred = torch.randn(target.shape, generator=g)
    mask = (torch.rand(target.shape[:2], generator=g) > 0.5).float()
    mask[:, 0] = 1.0
    return image, pred, mask, target


def test_only_masked_patches_count():
    image, pred, mask, _ = _setup()
    loss_fn = MaskedReconstructionLoss(4, spatial_dims=2)
    base = loss_fn(pred, image, mask)
    changed = pred.clone()
    changed[mask == 0] += 100.0
    assert torch.allclose(loss_fn(changed, image, mask), base)
    changed = pred.clone()
    changed[mask == 1] += 1.0
    assert not torch.allclose(loss_fn(changed, image, mask), base)


def test_value_matches_manual():
    image, pred, mask, target = _setup()
    loss = MaskedReconstructionLoss(4)(pred, image, mask)
    per_patch = ((pred - target) ** 2).mean(-1)
    assert torch.allclose(loss, per_patch[mask.bool()].mean())
    # perfect prediction -> 0
    assert MaskedReconstructionLoss(4)(target, image, mask).item() == pytest.approx(0.0, abs=1e-10)


def test_norm_pix_targets_3d():
    image, pred, mask, target = _setup(shape=(2, 1, 4, 8, 4), patch=(2, 4, 2))
    loss_fn = MaskedReconstructionLoss((2, 4, 2), spatial_dims=3, norm_pix_loss=True)
    t = loss_fn.target(image)
    assert torch.allclose(t.mean(-1), torch.zeros(t.shape[:2]), atol=1e-5)
    assert torch.allclose(t.std(-1, unbiased=False), torch.ones(t.shape[:2]), atol=1e-3)
    # an affine change of intensity does not change norm-pix targets
    assert torch.allclose(loss_fn(pred, image * 2 + 1, mask), loss_fn(pred, image, mask), atol=1e-4)


def test_gradient_only_on_masked_and_fp32_under_autocast():
    image, pred, mask, _ = _setup()
    pred = pred.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = MaskedReconstructionLoss(4)(pred, image, mask)
    assert loss.dtype == torch.float32
    loss.backward()
    assert (pred.grad[mask == 0] == 0).all() and (pred.grad[mask == 1] != 0).any()


def test_empty_mask_and_errors():
    image, pred, mask, _ = _setup()
    assert MaskedReconstructionLoss(4)(pred, image, torch.zeros_like(mask)).item() == 0.0
    with pytest.raises(ValueError, match="does not match"):
        MaskedReconstructionLoss(2)(pred, image, mask)
    with pytest.raises(ValueError, match="mask shape"):
        MaskedReconstructionLoss(4)(pred, image, mask[:, :3])
    with pytest.raises(ValueError, match="spatial_dims"):
        MaskedReconstructionLoss(4, spatial_dims=4)
