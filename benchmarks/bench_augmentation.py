"""Throughput of the 2D MICLe view pipeline: ours vs the same chain written with per-key MONAI dict transforms.

Ours: ``MultiInstanceDataset`` (cached 256 px COVID CXR) + ``cxr_augmentations`` applied once per view.
Reference ("naive"): the same augmentation steps as MONAI dictionary transforms, one instance per view key
(``CopyItemsd`` of the image to two keys, then ``RandXd(keys="view_0")`` and ``RandXd(keys="view_1")``), since
one dictionary transform over both keys would share its random draw. Both are measured in this one process run,
as images/s (2 views each) with 0 and 2 DataLoader workers, median of 5 repeats after a warm-up.

Run: ``python benchmarks/bench_augmentation.py [--size 128] [--n 256]``
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from monai.transforms import (
    Compose,
    CopyItemsd,
    Identity,
    OneOf,
    RandFlipd,
    RandomOrder,
    RandRotated,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    ScaleIntensityRanged,
)

from monai_ssl.data import MultiInstanceDataset, load_covid_cxr
from monai_ssl.transforms import RandResizedCropd, cxr_augmentations


def naive_chain(size: int) -> Compose:
    def view(k: str) -> list:
        clip = ScaleIntensityRanged(k, 0.0, 1.0, 0.0, 1.0, clip=True)
        jitter = RandomOrder([Compose([RandScaleIntensityd(k, factors=0.4, prob=1.0), clip]),
                              Compose([RandScaleIntensityFixedMeand(k, factors=0.4, prob=1.0), clip])])
        return [RandResizedCropd(k, size), RandFlipd(k, prob=0.5, spatial_axis=1),
                RandRotated(k, range_x=math.radians(45), prob=1.0, padding_mode="zeros"),
                OneOf([jitter, Identity()], weights=[0.8, 0.2])]

    return Compose([CopyItemsd("image", times=2, names=["view_0", "view_1"]), *view("view_0"), *view("view_1")])


def time_loader(dataset, workers: int, repeats: int = 5) -> float:
    loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=workers,
                        persistent_workers=workers > 0)
    for _ in loader:  # warm-up (starts the workers)
        break
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(len(b["patient_id"]) for b in loader)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=256, help="patients per pass")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_augmentation.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_covid_cxr()
    ours = MultiInstanceDataset(data, cxr_augmentations(args.size), pair_mode="simclr", seed=0)
    ours.bags = ours.bags[: args.n]
    ours.patient_ids = ours.patient_ids[: args.n]
    first = [data[bag[0]] for bag in ours.bags]
    naive = Dataset([{"image": torch.as_tensor(x["image"]), "patient_id": x["patient_id"]} for x in first],
                    transform=naive_chain(args.size))
    rows = []
    for workers in (0, 2):
        a, b = time_loader(ours, workers), time_loader(naive, workers)
        rows.append((workers, a, b, a / b))
    lines = [
        f"### 2D MICLe view pipeline, {args.size} px, 2 views/image ({date.today()}, "
        f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__})",
        "",
        "| DataLoader workers | ours (img/s) | naive per-key MONAI dict chain (img/s) | ratio ours/naive |",
        "|---:|---:|---:|---:|",
        *[f"| {w} | {a:.1f} | {b:.1f} | {r:.2f}x |" for w, a, b, r in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
