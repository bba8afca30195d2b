from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import (
    RandResizedCrop,
    RandResizedCropd,
    cxr_augmentations,
    mae_augmentations,
    simclr_augmentations,
)


def test_rand_resized_crop_area_and_ratio():
    crop = RandResizedCrop(32, scale=(0.2, 0.5), ratio=(0.5, 2.0)).set_random_state(0)
    for _ in range(50):
        crop.randomize((200, 300))
        start, size = crop._box
        frac = size[0] * size[1] / (200 * 300)
        assert 0.17 < frac < 0.55 and 0.45 < size[1] / size[0] < 2.2
        assert all(s + z <= n for s, z, n in zip(start, size, (200, 300)))
    out = crop(MetaTensor(torch.rand(1, 200, 300)))
    assert out.shape == (1, 32, 32)


def test_rand_resized_crop_3d_and_fallback():
    crop = RandResizedCrop((8, 8, 8), scale=(0.3, 1.0)).set_random_state(1)
    assert crop(torch.rand(2, 20, 24, 16)).shape == (2, 8, 8, 8)
    tall = RandResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0)).set_random_state(0)
    tall.randomize((10, 100))  # impossible at ratio 1 and full area -> centre square
    assert tall._box == ([0, 45], [10, 10])


def test_rand_resized_crop_dict_shares_draw():
    img = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64)
    out = RandResizedCropd(["a", "b"], 16, mode=["bilinear", "nearest"]).set_random_state(0)({"a": img, "b": img})
    assert out["a"].shape == out["b"].shape == (1, 16, 16)
    assert torch.corrcoef(torch.stack([out["a"].flatten(), out["b"].flatten()]))[0, 1] > 0.99


@pytest.mark.parametrize("factory,dims", [(simclr_augmentations, 2), (cxr_augmentations, 2), (mae_augmentations, 2)])
def test_chains_range_shape_and_randomness(factory, dims):
    chain = factory(48)
    chain.set_random_state(0)
    img = MetaTensor(torch.rand(1, 96, 80))
    a, b = chain(img.clone()), chain(img.clone())
    assert a.shape == b.shape == (1, 48, 48)
    assert 0 <= float(a.min()) and float(a.max()) <= 1 + 1e-6
    assert not torch.allclose(a, b)


def test_simclr_3d_and_reproducible():
    chain = simclr_augmentations(16, spatial_dims=3, rotate_degrees=10)
    img = torch.rand(1, 24, 24, 24)
    a = chain.set_random_state(5)(img.clone())
    b = chain.set_random_state(5)(img.clone())
    assert a.shape == (1, 16, 16, 16)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        simclr_augmentations(16, spatial_dims=4)


def test_cxr_chain_has_no_blur():
    from monai.transforms import RandGaussianSmooth

    assert not any(isinstance(t, RandGaussianSmooth) for t in cxr_augmentations(32).transforms)
    assert any(isinstance(t, RandGaussianSmooth) for t in simclr_augmentations(32).transforms)


def test_bad_crop_args():
    with pytest.raises(ValueError, match="scale"):
        RandResizedCrop(8, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        RandResizedCrop(8, ratio=(-1, 1))
