"""Shipped-data summary: loads and checks the shipped datasets and prints their counts and a patient-level split.

The first step of `make demo` (``scripts/demo.py``, which then runs SimCLR pretraining and the 10 %-label
comparison; ``--covid``: ``scripts/demo_covid.py``); ``python scripts/demo_data.py`` prints the summary alone.
"""

from __future__ import annotations

import argparse
from collections import Counter

from monai_ssl.data import MedMNISTDataset, default_data_dir, group_by_patient, load_covid_cxr, patient_split


def summarise(data_dir=None, seed: int = 0) -> dict:
    """Load every shipped dataset (checksums verified) and return their headline counts."""
    data_dir = data_dir or default_data_dir()
    summary: dict = {}
    for flag in ("pneumoniamnist", "breastmnist"):
        summary[flag] = {split: len(MedMNISTDataset(data_dir, flag, split)) for split in ("train", "val", "test")}
    covid = load_covid_cxr(data_dir / "covid_cxr_256.npz")
    groups = group_by_patient(covid)
    split = patient_split(covid, fractions=(0.7, 0.15, 0.15), label_fraction=0.1, seed=seed)
    summary["covid_cxr"] = {
        "images": len(covid),
        "patients": len(groups),
        "patients_with_2plus_images": sum(len(v) >= 2 for v in groups.values()),
        "labels": dict(sorted(Counter(x["label"] for x in covid).items())),
        "split_images": {k: len(v) for k, v in split.items()},
        "split_patients": {k: len({x["patient_id"] for x in v}) for k, v in split.items()},
    }
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None, help="folder with the shipped .npz files (default: data/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    s = summarise(args.data_dir, args.seed)
    print("monai-ssl demo: shipped data (checksums verified)")
    for flag in ("pneumoniamnist", "breastmnist"):
        print(f"  {flag:15s} " + "  ".join(f"{k}={v}" for k, v in s[flag].items()))
    c = s["covid_cxr"]
    print(f"  covid_cxr       images={c['images']} patients={c['patients']} "
          f"patients with 2+ images={c['patients_with_2plus_images']} labels={c['labels']}")
    print("  patient-level split (images): " + "  ".join(f"{k}={v}" for k, v in c["split_images"].items()))
    print("  patient-level split (patients): " + "  ".join(f"{k}={v}" for k, v in c["split_patients"].items()))


if __name__ == "__main__":
    main()
