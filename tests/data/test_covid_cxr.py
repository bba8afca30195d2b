from __future__ import annotations

import numpy as np
import pytest

from monai_ssl.data import DataIntegrityError, group_by_patient, load_covid_cxr, patient_split
from monai_ssl.data.covid_cxr import covid_label


@pytest.fixture(scope="module")
def covid(data_dir):
    return load_covid_cxr(data_dir / "covid_cxr_256.npz")


def test_counts(covid):
    groups = group_by_patient(covid)
    assert len(covid) == 559
    assert len(groups) == 329
    assert sum(len(v) >= 2 for v in groups.values()) == 130
    assert sum(len(v) for v in groups.values() if len(v) >= 2) == 360


def test_items(covid):
    item = covid[0]
    assert item["image"].shape == (1, 256, 256) and item["image"].dtype == np.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert {"patient_id", "label", "finding", "view", "license", "filename"} <= set(item)
    labels = [x["label"] for x in covid]
    assert labels.count(1) == 415 + 12  # "COVID-19" and "COVID-19, ARDS"
    assert labels.count(-1) == 28  # "todo" rows are unlabelled


def test_label_rule():
    assert covid_label("COVID-19, ARDS") == 1
    assert covid_label("SARS") == 0
    assert covid_label("todo") == -1


def test_licence_filter(data_dir):
    subset = load_covid_cxr(data_dir / "covid_cxr_256.npz", licenses=["CC BY 4.0", "CC BY"])
    assert len(subset) == 8 and {x["license"] for x in subset} == {"CC BY 4.0", "CC BY"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_patient_split_no_overlap(covid, seed):
    split = patient_split(covid, fractions=(0.6, 0.2, 0.2), seed=seed, label_fraction=0.1)
    patients = {k: {x["patient_id"] for x in split[k]} for k in ("train", "val", "test")}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(split[k]) for k in ("train", "val", "test")) == len(covid)
    assert {x["patient_id"] for x in split["labelled"]} <= patients["train"]


def test_wrong_checksum(tmp_path, data_dir):
    src = (data_dir / "covid_cxr_256.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(src[:1000])
    with pytest.raises(DataIntegrityError, match="sha256 mismatch"):
        load_covid_cxr(tmp_path / "c.npz")
    with pytest.raises(DataIntegrityError, match="c.npz: not a readable .npz"):
        load_covid_cxr(tmp_path / "c.npz", verify=False)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_covid_cxr(tmp_path / "nope.npz")
