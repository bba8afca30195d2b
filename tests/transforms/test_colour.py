"""Colour path: ToRGB, SimCLR's colour jitter and greyscale (Chen et al. 2020), HSV conversions."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from monai_ssl.transforms import RandColorJitter, RandGrayscale, ToRGB, ToRGBd, simclr_augmentations
from monai_ssl.transforms.colour import hsv_to_rgb, rgb_to_hsv


def test_to_rgb_channels():
    grey = torch.rand(1, 5, 6)
    out = ToRGB()(grey)
    assert out.shape == (3, 5, 6) and all(torch.equal(out[c], grey[0]) for c in range(3))
    rgba = np.random.rand(4, 5, 6)
    assert ToRGB()(rgba).shape == (3, 5, 6)
    assert ToRGBd("image")({"image": torch.rand(3, 4, 4)})["image"].shape == (3, 4, 4)
    with pytest.raises(ValueError, match="channel-last"):
        ToRGB()(torch.rand(5, 6, 3))


def test_hsv_matches_colorsys():
    rgb = torch.rand(3, 7, 9)
    hsv = rgb_to_hsv(rgb)
    for y, x in [(0, 0), (3, 4), (6, 8)]:
        ref = colorsys.rgb_to_hsv(*rgb[:, y, x].tolist())
        assert hsv[:, y, x].tolist() == pytest.approx(ref, abs=1e-5)
    torch.testing.assert_close(hsv_to_rgb(hsv), rgb, atol=1e-5, rtol=0)


def test_colour_jitter_changes_colour_seeded_and_in_range():
    img = torch.rand(3, 16, 16)
    a = RandColorJitter(prob=1.0).set_random_state(3)(img)
    b = RandColorJitter(prob=1.0).set_random_state(3)(img)
    c = RandColorJitter(prob=1.0).set_random_state(4)(img)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, img)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # a pure hue rotation by 1/3 of the circle maps red to green
    hue_only = RandColorJitter(0.0, 0.0, 0.0, 0.2, prob=1.0)
    hue_only._do, hue_only._order, hue_only._factors = True, [3], [1.0, 1.0, 1.0, 1 / 3]
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    torch.testing.assert_close(hue_only(red, randomize=False)[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5,
                               rtol=0)
    assert torch.equal(RandColorJitter(prob=0.0)(img), img)
    with pytest.raises(ValueError, match="RGB"):
        RandColorJitter()(torch.rand(1, 4, 4))


def test_grayscale_and_simclr_rgb_chain():
    img = torch.rand(3, 8, 8)
    g = RandGrayscale(prob=1.0)(img)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    chain = simclr_augmentations(16, channels=3)
    assert any(isinstance(t, RandColorJitter) for t in chain.transforms)
    assert any(isinstance(t, RandGrayscale) and t.prob == 0.2 for t in chain.transforms)
    jitter = next(t for t in chain.transforms if isinstance(t, RandColorJitter))
    assert jitter.strengths == pytest.approx((0.8, 0.8, 0.8, 0.2)) and jitter.prob == 0.8
    chain.set_random_state(0)
    out = chain(torch.rand(3, 20, 20))
    assert out.shape == (3, 16, 16)
    assert not any(isinstance(t, RandColorJitter) for t in simclr_augmentations(16).transforms)  # grey: as before
    with pytest.raises(ValueError, match="channels"):
        simclr_augmentations(16, channels=2)
