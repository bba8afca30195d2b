"""Mixed-modality pool + weighted modality sampler (VIS-MAE pretraining data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Lambdad, RandGaussianNoised
from torch.utils.data import DataLoader

from monai_ssl.data.mixed_modality import MixedModalityDataset, MixedModalitySampler, modality_probabilities


def _toy(sizes=(("ct", 30), ("xray", 10), ("us", 5))):
    sources = {}
    for k, (name, n) in enumerate(sizes):
        sources[name] = [{"image": torch.full((1, 4, 4), float(k)), "idx": i} for i in range(n)]
    return MixedModalityDataset(sources)


def test_concat_indexing_and_modality_key():
    ds = _toy()
    assert len(ds) == 45 and ds.sizes == {"ct": 30, "xray": 10, "us": 5}
    assert ds.locate(0) == ("ct", 0) and ds.locate(30) == ("xray", 0) and ds.locate(44) == ("us", 4)
    assert ds.locate(-1) == ("us", 4)
    item = ds[33]
    assert item["modality"] == "xray" and item["idx"] == 3 and float(item["image"].max()) == 1.0
    assert list(ds.modality_range("us")) == list(range(40, 45))
    with pytest.raises(IndexError, match="out of range"):
        ds[45]
    with pytest.raises(KeyError, match="unknown modality"):
        ds.modality_range("mr")


def test_source_items_not_mutated_and_arrays_wrapped():
    src = [{"image": np.zeros((1, 2, 2))}]
    ds = MixedModalityDataset({"mr": src, "pet": [np.ones((1, 2, 2))]}, image_key="img")
    assert ds[0]["modality"] == "mr" and "modality" not in src[0]
    assert ds[1]["modality"] == "pet" and ds[1]["img"].sum() == 4


def test_per_modality_transform_then_shared_transform():
    ds = MixedModalityDataset(
        {"ct": [{"image": torch.ones(1, 2, 2)}], "us": [{"image": torch.ones(1, 2, 2)}]},
        transforms={"ct": Lambdad("image", lambda x: x * 10)},
        transform=Lambdad("image", lambda x: x + 1),
    )
    assert float(ds[0]["image"].max()) == 11.0  # ct: preset then shared
    assert float(ds[1]["image"].max()) == 2.0  # us: no preset, shared only


def test_set_random_state_makes_random_transforms_reproducible():
    def build():
        return MixedModalityDataset(
            {"ct": [{"image": torch.zeros(1, 8, 8)}]}, transforms={"ct": RandGaussianNoised("image", prob=1.0)}
        )

    a, b = build().set_random_state(7), build().set_random_state(7)
    torch.testing.assert_close(torch.as_tensor(a[0]["image"]), torch.as_tensor(b[0]["image"]))
    c = build().set_random_state(8)
    assert not torch.allclose(torch.as_tensor(a[0]["image"]), torch.as_tensor(c[0]["image"]))


@pytest.mark.parametrize("weighting", ["proportional", "balanced", 0.5, 0.0, 1.0, {"ct": 1, "xray": 2, "us": 1}])
def test_modality_probabilities(weighting):
    sizes = {"ct": 30, "xray": 10, "us": 5}
    p = modality_probabilities(sizes, weighting)
    assert list(p) == list(sizes) and sum(p.values()) == pytest.approx(1.0)
    if weighting == "proportional" or weighting == 1.0:
        expected = {m: n / 45 for m, n in sizes.items()}
    elif weighting == "balanced" or weighting == 0.0:
        expected = dict.fromkeys(sizes, 1 / 3)
    elif weighting == 0.5:
        z = sum(n**0.5 for n in sizes.values())
        expected = {m: n**0.5 / z for m, n in sizes.items()}
    else:
        expected = {"ct": 0.25, "xray": 0.5, "us": 0.25}
    assert p == pytest.approx(expected)


def test_modality_probabilities_errors():
    with pytest.raises(ValueError, match="missing"):
        modality_probabilities({"ct": 3, "us": 2}, {"ct": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        modality_probabilities({"ct": 3}, {"ct": 1.0, "mr": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        modality_probabilities({"ct": 3, "us": 2}, {"ct": 1.0, "us": -1.0})
    with pytest.raises(ValueError, match="weighting must be"):
        modality_probabilities({"ct": 3}, "uniform")
    with pytest.raises(ValueError, match="non-empty"):
        modality_probabilities({"ct": 0}, "balanced")
    with pytest.raises(ValueError, match="positive"):
        modality_probabilities({"ct": 3, "us": 2}, {"ct": 0.0, "us": 0.0})


@pytest.mark.parametrize("weighting", ["proportional", "balanced", 0.5])
def test_sampler_realises_modality_shares(weighting):
    ds = _toy()
    sampler = MixedModalitySampler(ds, weighting, num_samples=20000, seed=0)
    counts = sampler.modality_counts(list(sampler))
    assert sum(counts.values()) == 20000
    for m, p in sampler.probabilities.items():
        # binomial std <= sqrt(0.25 / 20000) ~ 0.0035: 5 sigma
        assert counts[m] / 20000 == pytest.approx(p, abs=0.018)
    # within a modality, items are uniform: the 5 "us" items are all drawn, about equally often
    idx = torch.tensor(list(sampler))
    us = idx[idx >= 40] - 40
    freq = torch.bincount(us, minlength=5).float() / len(us)
    assert torch.all((freq - 0.2).abs() < 0.05)


def test_sampler_deterministic_and_epochs():
    ds = _toy()
    a, b = MixedModalitySampler(ds, "balanced", seed=3), MixedModalitySampler(ds, "balanced", seed=3)
    assert list(a) == list(b)
    assert list(a) != list(MixedModalitySampler(ds, "balanced", seed=4))
    a.set_epoch(2)
    first = list(a)
    a.set_epoch(2)
    assert list(a) == first
    a.set_epoch(3)
    assert list(a) != first
    state = torch.random.get_rng_state()
    list(a)
    assert torch.equal(state, torch.random.get_rng_state())  # no global RNG use
    assert len(a) == len(ds)


def test_sampler_from_sizes_zero_weight_and_errors():
    s = MixedModalitySampler({"ct": 4, "us": 6}, {"ct": 0.0, "us": 1.0}, num_samples=50, seed=0)
    assert all(i >= 4 for i in s)
    with pytest.raises(ValueError, match="distinct"):
        MixedModalitySampler({"ct": 4, "us": 6}, "balanced", num_samples=11, replacement=False)
    with pytest.raises(ValueError, match="positive"):
        MixedModalitySampler({"ct": 4}, "balanced", num_samples=0)


def test_real_xray_and_ultrasound_with_presets(data_dir):
    from monai_ssl.data import MedMNISTDataset
    from monai_ssl.transforms import USPresetd, XRayPresetd

    ds = MixedModalityDataset(
        {
            "xray": MedMNISTDataset(data_dir, "pneumoniamnist", "val"),
            "us": MedMNISTDataset(data_dir, "breastmnist", "val"),
        },
        transforms={
            "xray": XRayPresetd(load=False, spatial_size=32, use_header_window=False),
            "us": USPresetd(load=False, spatial_size=32, fan_crop=False),
        },
    )
    assert ds.sizes == {"xray": 524, "us": 78}
    sampler = MixedModalitySampler(ds, "balanced", num_samples=64, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=64, sampler=sampler)))
    assert batch["image"].shape == (64, 1, 32, 32)
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    assert set(batch["modality"]) == {"xray", "us"}
    n_us = sum(m == "us" for m in batch["modality"])
    assert 16 <= n_us <= 48  # balanced, not the natural 13 %
