from __future__ import annotations

import pytest

from monai_ssl.data import label_fraction_subset, patient_split


def _toy(n_patients=60, images_per_patient=3):
    return [
        {"image": f"p{p}_{k}", "patient_id": f"p{p}", "label": int(p % 3 == 0)}
        for p in range(n_patients)
        for k in range(1 + p % images_per_patient)
    ]


def test_deterministic_and_seed_dependent():
    data = _toy()
    a, b, c = (patient_split(data, seed=s) for s in (0, 0, 1))
    assert [x["image"] for x in a["train"]] == [x["image"] for x in b["train"]]
    assert [x["image"] for x in a["train"]] != [x["image"] for x in c["train"]]


def test_stratified_patient_counts():
    data = _toy(100)
    split = patient_split(data, fractions=(0.6, 0.2, 0.2), seed=3)
    for name, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        pos = {x["patient_id"] for x in split[name] if x["label"] == 1}
        assert abs(len(pos) - frac * 34) <= 1  # 34 positive patients overall
    patients = [{x["patient_id"] for x in split[k]} for k in ("train", "val", "test")]
    assert sum(map(len, patients)) == 100 and len(set.union(*patients)) == 100


def test_label_fractions_nested_and_sized():
    data = [{"image": i, "label": i % 2} for i in range(1000)]  # no patient ids: one image per patient
    subsets = {f: label_fraction_subset(data, f, seed=0) for f in (0.01, 0.1, 0.5)}
    assert [len(subsets[f]) for f in (0.01, 0.1, 0.5)] == [10, 100, 500]
    ids = {f: {x["image"] for x in s} for f, s in subsets.items()}
    assert ids[0.01] <= ids[0.1] <= ids[0.5]
    assert sum(x["label"] for x in subsets[0.1]) == 50  # stratified


def test_tiny_fraction_keeps_each_class():
    data = _toy(30)
    sub = label_fraction_subset(data, 0.001, seed=0)
    assert {x["label"] for x in sub} == {0, 1}


@pytest.mark.parametrize(
    "kwargs,match",
    [({"fractions": (0.5, 0.5)}, "differ in length"), ({"fractions": (0.5, 0.5, 0.5)}, "sum to 1"),
     ({"label_fraction": 1.5}, "label_fraction")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        patient_split(_toy(), **kwargs)
