from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.transforms import GaussianSmooth
from scipy.stats import ks_2samp

from monai_ssl.transforms import (
    BatchedRandViews,
    RandResizedCrop,
    batched_cxr_augmentations,
    batched_mae_augmentations,
    batched_simclr_augmentations,
    simclr_augmentations,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_resize_equals_per_sample_crop_then_resize():
    aug = BatchedRandViews(32, flip_prob=0.0)
    x = torch.rand(48, 2, 50, 60)
    p = aug.draw(48, (50, 60), _gen(1))
    out = aug.apply(x, p)
    assert out.shape == (48, 2, 32, 32)
    for i in range(48):
        crop = RandResizedCrop(32)
        crop._box = (p["start"][i].tolist(), p["size"][i].tolist())
        ref = crop(x[i], randomize=False)
        torch.testing.assert_close(out[i], ref.as_tensor(), atol=1e-5, rtol=0)


def test_crop_area_and_aspect_match_per_sample_distribution():
    shape = (90, 120)
    aug = BatchedRandViews(32)
    start, size = aug.draw_crops(20000, shape, _gen(2))
    assert (start >= 0).all() and (start + size <= torch.tensor(shape)).all() and (size > 0).all()
    ref = RandResizedCrop(32).set_random_state(3)
    boxes = []
    for _ in range(4000):
        ref.randomize(shape)
        boxes.append(ref._box[1])
    ref_size = np.array(boxes, dtype=float)
    area, ref_area = size.prod(1).double().numpy() / np.prod(shape), ref_size.prod(1) / np.prod(shape)
    aspect = np.log(size[:, 1].double().numpy() / size[:, 0].double().numpy())
    ref_aspect = np.log(ref_size[:, 1] / ref_size[:, 0])
    assert ks_2samp(area, ref_area).pvalue > 1e-3
    assert ks_2samp(aspect, ref_aspect).pvalue > 1e-3
    # the start is uniform over the free range: its mean relative position is ~1/2
    free = (torch.tensor(shape) - size).double()
    rel = (start.double()[free[:, 0] > 10, 0] / free[free[:, 0] > 10, 0])
    assert abs(rel.mean().item() - 0.5) < 0.02


def test_crop_falls_back_to_centred_square_when_no_box_fits():
    aug = BatchedRandViews(8, crop_scale=(1.0, 1.0), ratio=(2.0, 2.0))  # area 1 with aspect 2 never fits
    start, size = aug.draw_crops(5, (10, 30), _gen())
    assert (size == 10).all() and (start == torch.tensor([0, 10])).all()


def test_flip_rate_and_independence():
    aug = BatchedRandViews(16, spatial_dims=3)
    p = aug.draw(20000, (16, 16, 16), _gen(4))
    rate = p["flip"].float().mean(0)
    assert p["flip"].shape == (20000, 3)
    assert torch.all((rate - 0.5).abs() < 0.02)
    # axes and samples flip independently
    corr = np.corrcoef(p["flip"].float().numpy().T)
    assert np.abs(corr - np.eye(3)).max() < 0.05
    # the flip mirrors the output exactly
    x = torch.rand(1, 1, 16, 16, 16)
    q = aug.draw(1, (16, 16, 16), _gen())
    q["start"][:] = 0
    q["size"][:] = 16
    q["flip"][:] = torch.tensor([[False, True, False]])
    torch.testing.assert_close(aug.apply(x, q), x.flip(3))


def test_intensity_factor_ranges_and_rates():
    aug = batched_simclr_augmentations(32, color_strength=0.5)
    p = aug.draw(20000, (32, 32), _gen(5))
    assert p["brightness"].abs().max() <= 0.4 and p["contrast"].abs().max() <= 0.4
    assert p["brightness"].abs().max() > 0.39
    assert abs(p["jitter"].float().mean() - 0.8) < 0.02
    assert abs(p["contrast_first"].float().mean() - 0.5) < 0.02
    assert abs((p["sigma"][:, 0] > 0).float().mean() - 0.5) < 0.02
    sig = p["sigma"][p["sigma"][:, 0] > 0]
    assert sig.min() >= 0.1 * 32 / 224 and sig.max() <= 2.0 * 32 / 224
    assert abs(np.corrcoef(sig[:, 0].numpy(), sig[:, 1].numpy())[0, 1]) < 0.05  # sigma drawn per axis
    # a jittered constant image: brightness scales it by (1 + factor); contrast about the mean keeps it
    x = torch.full((4, 1, 32, 32), 0.5)
    q = aug.draw(4, (32, 32), _gen())
    q.update(jitter=torch.ones(4, dtype=torch.bool), sigma=torch.zeros(4, 2, dtype=torch.float64))
    out = aug.apply(x, q)
    torch.testing.assert_close(out[:, 0, 0, 0], (0.5 * (1 + q["brightness"])).float().clamp(0, 1))


def test_blur_matches_monai_gaussian_smooth():
    aug = BatchedRandViews(40, crop_scale=(1, 1), ratio=(1, 1), flip_prob=0.0, blur_prob=1.0, blur_sigma=(1.0, 15.0))
    x = torch.rand(3, 2, 40, 40)
    p = aug.draw(3, (40, 40), _gen(6))
    p["sigma"][2] = 0.0  # an unblurred sample in the same batch
    out = aug.apply(x, p)
    for i in range(2):
        torch.testing.assert_close(out[i], GaussianSmooth(sigma=p["sigma"][i].tolist())(x[i]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[2], x[2])


def test_rotation_and_noise_stay_in_range():
    aug = BatchedRandViews(24, rotate_degrees=45.0, noise_std=0.1)
    x = torch.ones(64, 1, 24, 24)
    p = aug.draw(64, (24, 24), _gen(7))
    assert p["angles"].abs().max() <= math.radians(45.0) and p["angles"].abs().max() > math.radians(40.0)
    p["noise"][:] = 0.0
    out = aug.apply(x, p)
    big = p["angles"][:, 0].abs() > math.radians(30)
    assert (out[big][:, 0, 0, 0] == 0).all()  # corners rotate out of the frame: zero padding
    assert torch.allclose(out[:, :, 12, 12], torch.ones(64, 1))  # the centre stays
    noisy = aug(torch.rand(8, 1, 24, 24), _gen(8))
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_determinism_and_per_sample_independence():
    aug = batched_simclr_augmentations(32, noise_std=0.05)
    x = torch.rand(1, 1, 48, 48).expand(16, 1, 48, 48).contiguous()
    a, b = aug(x, _gen(9)), aug(x, _gen(9))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, _gen(10)))
    flat = a.flatten(1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(16) for j in range(i))
    # a sample's draw does not depend on its batch-mates' pixels
    y = x.clone()
    y[1:] = torch.rand(15, 1, 48, 48)
    p = aug.draw(16, (48, 48), _gen(9))
    torch.testing.assert_close(aug.apply(y, p)[0], aug.apply(x, p)[0])


def test_3d_shape_and_mae_flip_axis():
    aug = batched_simclr_augmentations((12, 10, 8), spatial_dims=3, blur=True, rotate_degrees=20.0)
    out = aug(torch.rand(3, 2, 20, 24, 16), _gen())
    assert out.shape == (3, 2, 12, 10, 8)
    assert batched_mae_augmentations(16, spatial_dims=3).flip_axes == (2,)
    assert batched_cxr_augmentations(16).rotate > 0 and batched_cxr_augmentations(16).blur_prob == 0
    with pytest.raises(ValueError, match="expects"):
        aug(torch.rand(3, 2, 20, 24), _gen())


def test_bf16_autocast_and_channels_last():
    aug = batched_simclr_augmentations(32)
    x = torch.rand(4, 3, 40, 40)
    ref = aug(x, _gen(11))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = aug(x, _gen(11))
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, ref)
    cl = aug(x.contiguous(memory_format=torch.channels_last), _gen(11))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, ref)
    half = aug(x.bfloat16(), _gen(11))
    assert half.dtype == torch.bfloat16
    assert (half.float() - ref).abs().max() < 0.05


def test_end_to_end_output_distribution_matches_the_per_sample_chain():
    # a left-to-right ramp: the sign of (right - left) after the chain tells a flip; the centre value after the chain
    # carries the brightness factor (contrast and blur keep a constant neighbourhood's value)
    ramp = torch.linspace(0.2, 0.8, 48).expand(1, 48, 48).contiguous()
    chain = simclr_augmentations(32)
    chain.set_random_state(0)
    ref = torch.stack([chain(ramp.clone()).as_tensor() for _ in range(400)])
    ours = batched_simclr_augmentations(32)(ramp[None].expand(4000, 1, 48, 48), _gen(12))

    def stats(v):
        flipped = (v[:, 0, 16, 24] < v[:, 0, 16, 8]).double()
        return flipped.mean().item(), v[:, 0, 12:20, 12:20].mean((1, 2)).numpy()

    (f_ref, c_ref), (f_ours, c_ours) = stats(ref), stats(ours)
    assert abs(f_ref - 0.5) < 0.1 and abs(f_ours - 0.5) < 0.03
    assert ks_2samp(c_ref, c_ours).pvalue > 1e-3
