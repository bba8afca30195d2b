from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader

from monai_ssl.data import MultiInstanceDataset, load_covid_cxr
from monai_ssl.transforms import cxr_augmentations


@pytest.fixture(scope="module")
def covid(data_dir):
    return load_covid_cxr(data_dir / "covid_cxr_256.npz")


@pytest.fixture(scope="module")
def dataset(covid):
    from monai.transforms import Resized

    return MultiInstanceDataset(covid, cxr_augmentations(32), cache_transform=Resized("image", (64, 64)), seed=0)


def test_one_item_per_patient(dataset, covid):
    assert len(dataset) == 329
    item = dataset[0]
    assert item["image_view_0"].shape == item["image_view_1"].shape == (1, 32, 32)
    assert {"patient_id", "source_index", "bag_size"} <= set(item)


def test_multi_image_bags_use_two_different_images(dataset, covid):
    multi = [i for i, bag in enumerate(dataset.bags) if len(bag) >= 2]
    assert len(multi) == 130
    seen_pairs = set()
    for i in multi:
        for _ in range(3):
            item = dataset[i]
            a, b = item["source_index"].tolist()
            assert a != b
            assert covid[a]["patient_id"] == covid[b]["patient_id"] == item["patient_id"]
            seen_pairs.add((i, a, b))
    assert len(seen_pairs) > len(multi)  # pairs are re-drawn across visits


def test_singletons_fall_back_to_two_views_of_one_image(dataset):
    singles = [i for i, bag in enumerate(dataset.bags) if len(bag) == 1]
    assert len(singles) == 199
    item = dataset[singles[0]]
    a, b = item["source_index"].tolist()
    assert a == b and not torch.allclose(item["image_view_0"], item["image_view_1"])


def test_simclr_mode_and_reproducibility(covid):
    def make(seed):
        return MultiInstanceDataset(covid[:40], cxr_augmentations(16), pair_mode="simclr", cache=False, seed=seed)

    ds, again, other = make(3), make(3), make(4)
    first = ds[5]["image_view_1"]
    torch.testing.assert_close(first, again[5]["image_view_1"])
    assert not torch.allclose(first, other[5]["image_view_1"])
    assert all(len(set(ds[i]["source_index"].tolist())) == 1 for i in range(len(ds)))


def test_batches_hold_distinct_patients_with_workers(dataset):
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=2)
    batch = next(iter(loader))
    assert batch["image_view_0"].shape == (32, 1, 32, 32)
    assert len(set(batch["patient_id"])) == 32


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        MultiInstanceDataset([], cxr_augmentations(8))
    with pytest.raises(ValueError, match="no 'image' key"):
        MultiInstanceDataset([{"patient_id": "1"}], cxr_augmentations(8))
    with pytest.raises(ValueError, match="pair_mode"):
        MultiInstanceDataset([{"image": torch.zeros(1, 4, 4)}], cxr_augmentations(8), pair_mode="byol")
    with pytest.raises(RuntimeError, match="preparing item 0 \\(patient 'p1'\\)"):
        load = __import__("monai_ssl.transforms", fromlist=["x"]).LoadMedicalImaged("image")
        MultiInstanceDataset([{"image": "/no/such.png", "patient_id": "p1"}], cxr_augmentations(8),
                             cache_transform=load)
