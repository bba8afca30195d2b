"""Tests of the shared mask generators (random, entropy-guided, block expansion) and their objects."""

from __future__ import annotations

import math

import pytest
import torch

from monai_ssl.networks.masking import (
    MASKING_MODES,
    EntropyGuidedMasking,
    MaskGenerator,
    RandomMasking,
    block_mask_to_tokens,
    build_masking,
    entropy_guided_mask,
    num_masked_units,
    random_unit_mask,
    unit_entropy,
)
from monai_ssl.networks.patching import patchify


def _check_triple(mask, ids_shuffle, ids_restore, num_masked):
    b, n = mask.shape
    assert torch.equal(mask.sum(1), torch.full((b,), float(num_masked)))
    # ids_restore inverts ids_shuffle, and the last K of the shuffle are exactly the masked units
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(n).expand(b, n))
    masked_from_shuffle = torch.zeros_like(mask).scatter_(1, ids_shuffle[:, n - num_masked :], 1.0)
    assert torch.equal(masked_from_shuffle, mask)


@pytest.mark.parametrize("num_units,ratio", [(64, 0.75), (49, 0.6), (10, 0.0), (10, 1.0), (7, 0.5)])
def test_random_mask_exact_ratio(num_units, ratio):
    g = torch.Generator().manual_seed(0)
    mask, ids_shuffle, ids_restore = random_unit_mask(8, num_units, ratio, generator=g)
    assert mask.shape == (8, num_units) and mask.dtype == torch.float32
    _check_triple(mask, ids_shuffle, ids_restore, int(round(ratio * num_units)))


def test_random_mask_reproducible_and_per_sample():
    m1 = random_unit_mask(4, 32, 0.5, generator=torch.Generator().manual_seed(3))[0]
    m2 = random_unit_mask(4, 32, 0.5, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(m1, m2)
    assert not torch.equal(m1[0], m1[1])  # each sample draws its own mask


def test_random_mask_is_uniform():
    mask = random_unit_mask(4000, 8, 0.25, generator=torch.Generator().manual_seed(0))[0]
    freq = mask.mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 0.25), atol=0.03)


def test_bad_ratio():
    with pytest.raises(ValueError, match="mask_ratio"):
        random_unit_mask(2, 4, 1.5)
    assert num_masked_units(196, 0.75) == 147


def test_unit_entropy_values_2d():
    img = torch.zeros(1, 1, 8, 8)
    # unit (0, 1): two values half/half -> 1 bit; unit (1, 0): 4 equiprobable bins -> 2 bits
    img[0, 0, 0:4, 4:8] = torch.tensor([0.0, 0.99]).repeat_interleave(8).reshape(4, 4)
    img[0, 0, 4:8, 0:4] = torch.tensor([0.0, 0.3, 0.6, 0.99]).repeat(4).reshape(4, 4)
    img[0, 0, 4:8, 4:8] = 0.5
    h = unit_entropy(img, 4, bins=32)
    assert h.shape == (1, 4)
    assert torch.allclose(h, torch.tensor([[0.0, 1.0, 2.0, 0.0]]), atol=1e-6)


def test_unit_entropy_matches_reference_loop_3d_rgb():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(2, 3, 8, 12, 4, generator=g) ** 2
    unit = (4, 6, 2)
    h = unit_entropy(img, unit, bins=8)
    # reference: patchify the luminance and histogram each unit separately
    lum = patchify(img.mean(1, keepdim=True), unit)  # (B, L, N)
    ref = torch.empty(lum.shape[:2])
    for b in range(lum.shape[0]):
        for i in range(lum.shape[1]):
            counts = torch.histc(lum[b, i], bins=8, min=0.0, max=1.0)
            p = counts[counts > 0] / counts.sum()
            ref[b, i] = -(p * p.log2()).sum()
    assert h.shape == (2, 2 * 2 * 2)
    assert torch.allclose(h, ref, atol=1e-5)
    assert (h >= 0).all() and (h <= math.log2(8) + 1e-6).all()


def test_unit_entropy_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        unit_entropy(torch.rand(1, 1, 10, 8), 4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        unit_entropy(torch.rand(8, 8), 4)


def _half_textured(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.full((batch, 1, 32, 32), 0.5)
    img[:, :, :, :16] = torch.rand(batch, 1, 32, 16, generator=g)  # left half textured
    return img


def test_entropy_mask_prefers_high_entropy():
    img = _half_textured(256)
    h = unit_entropy(img, 8)  # 4x4 units; columns 0-1 textured
    textured = torch.zeros(4, 4, dtype=torch.bool)
    textured[:, :2] = True
    textured = textured.flatten()
    mask, ids_shuffle, ids_restore = entropy_guided_mask(
        h, 0.5, beta=1.0, lam=1.0, generator=torch.Generator().manual_seed(0)
    )
    _check_triple(mask, ids_shuffle, ids_restore, 8)
    frac_textured = mask[:, textured].sum() / mask.sum()
    assert frac_textured > 0.7  # uniform would give 0.5
    # stronger beta -> more concentrated on textured units
    mask_strong = entropy_guided_mask(h, 0.5, beta=20.0, lam=1.0, generator=torch.Generator().manual_seed(0))[0]
    assert mask_strong[:, textured].sum() / mask_strong.sum() > frac_textured
    # negative beta favours the flat half
    mask_neg = entropy_guided_mask(h, 0.5, beta=-1.0, lam=1.0, generator=torch.Generator().manual_seed(0))[0]
    assert mask_neg[:, textured].sum() / mask_neg.sum() < 0.3


def test_entropy_mask_lambda_mix():
    img = _half_textured(512)
    h = unit_entropy(img, 8)
    textured = torch.zeros(4, 4, dtype=torch.bool)
    textured[:, :2] = True
    textured = textured.flatten()
    # lam = 0.5: half the masked units guided, the rest uniform -> between uniform and fully guided
    frac = {}
    for lam in (0.0, 0.5, 1.0):
        m = entropy_guided_mask(h, 0.5, beta=50.0, lam=lam, generator=torch.Generator().manual_seed(2))[0]
        assert torch.equal(m.sum(1), torch.full((512,), 8.0))
        frac[lam] = (m[:, textured].sum() / m.sum()).item()
    assert abs(frac[0.0] - 0.5) < 0.03
    assert frac[0.0] < frac[0.5] < frac[1.0]
    assert abs(frac[1.0] - 1.0) < 0.02


def test_entropy_mask_beta_zero_is_uniform():
    img = _half_textured(4000)
    h = unit_entropy(img, 8)
    mask = entropy_guided_mask(h, 0.25, beta=0.0, lam=1.0, generator=torch.Generator().manual_seed(0))[0]
    freq = mask.mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 0.25), atol=0.03)


def test_entropy_mask_constant_units_reachable():
    h = torch.zeros(2000, 8)
    h[:, :4] = 5.0
    mask = entropy_guided_mask(h, 0.5, beta=1.0, lam=1.0, generator=torch.Generator().manual_seed(0))[0]
    assert (mask[:, 4:].sum(0) > 0).all()


def test_block_mask_to_tokens():
    mask = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])  # 2x3 unit grid
    tok = block_mask_to_tokens(mask, (2, 3), 2)
    assert tok.shape == (1, 24)
    grid = tok.reshape(4, 6)
    assert torch.equal(grid, mask.reshape(2, 3).repeat_interleave(2, 0).repeat_interleave(2, 1))
    # 3D, anisotropic blocks
    m3 = random_unit_mask(2, 2 * 3 * 2, 0.5, generator=torch.Generator().manual_seed(0))[0]
    t3 = block_mask_to_tokens(m3, (2, 3, 2), (1, 2, 3))
    ref = m3.reshape(2, 2, 3, 2).repeat_interleave(2, 2).repeat_interleave(3, 3).reshape(2, -1)
    assert torch.equal(t3, ref)
    with pytest.raises(ValueError, match="unit_grid"):
        block_mask_to_tokens(mask, (2, 2), 2)


@pytest.mark.parametrize("shape,unit", [((3, 1, 32, 48), 8), ((2, 3, 16, 32, 8), (8, 16, 4))])
def test_masking_objects_wrap_the_functions(shape, unit):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    nd = len(shape) - 2
    usize = (unit,) * nd if isinstance(unit, int) else unit
    num_units = math.prod(s // u for s, u in zip(shape[2:], usize))
    got = RandomMasking(0.6)(x, unit, generator=torch.Generator().manual_seed(1))
    want = random_unit_mask(shape[0], num_units, 0.6, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    _check_triple(*got, round(0.6 * num_units))
    ent = EntropyGuidedMasking(0.5, beta=2.0, lam=0.75, bins=16, value_range=(0.0, 2.0))
    got = ent(x, unit, generator=torch.Generator().manual_seed(2), mask_ratio=0.25)  # per-call ratio override
    h = unit_entropy(x, unit, bins=16, value_range=(0.0, 2.0))
    want = entropy_guided_mask(h, 0.25, beta=2.0, lam=0.75, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    _check_triple(*got, round(0.25 * num_units))


def test_masking_objects_defaults_modes_and_errors():
    ent = EntropyGuidedMasking()
    assert (ent.mask_ratio, ent.beta, ent.lam, ent.bins, ent.value_range) == (0.75, 1.0, 0.5, 32, (0.0, 1.0))
    assert RandomMasking().mask_ratio == 0.75 and (RandomMasking.mode, ent.mode) == ("random", "entropy")
    assert set(MASKING_MODES) == {"random", "entropy"}
    assert isinstance(build_masking("random", 0.6), RandomMasking) and build_masking("random", 0.6).mask_ratio == 0.6
    built = build_masking("entropy", 0.5, beta=3.0)
    assert isinstance(built, EntropyGuidedMasking) and (built.mask_ratio, built.beta) == (0.5, 3.0)
    assert repr(RandomMasking(0.5)) == "RandomMasking(mask_ratio=0.5)"
    assert isinstance(ent, MaskGenerator)
    with pytest.raises(ValueError, match="mask_mode"):
        build_masking("grid")
    with pytest.raises(ValueError, match="mask_ratio"):
        RandomMasking(1.5)
    with pytest.raises(ValueError, match="lam"):
        EntropyGuidedMasking(lam=2.0)
    with pytest.raises(ValueError, match="bins"):
        EntropyGuidedMasking(bins=0)
    with pytest.raises(ValueError, match="value_range"):
        EntropyGuidedMasking(value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="divisible"):
        RandomMasking()(torch.rand(1, 1, 30, 32), 8)
    with pytest.raises(ValueError, match="unit_size"):
        RandomMasking()(torch.rand(1, 1, 32, 32), (8, 8, 8))
