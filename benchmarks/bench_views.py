"""SimCLR views/s at 224 px: the per-sample MONAI chain in DataLoader workers vs the batched views.

Per-sample: ``RandMultiViewd(simclr_augmentations(224), num_views=2)`` over cached 224-px chest X-rays, through a
MONAI ``DataLoader`` with W workers (one torch thread each): what ``views_on: loader`` does.
Batched: the same images, un-augmented, through a ``DataLoader`` with W workers whose ``collate_fn`` stacks the batch
and makes its two views with ``batched_simclr_augmentations(224)`` (one torch thread per worker, as above): the
batched views on this CPU with the same processes and cores as the per-sample chain. Same run, same images, median
of 5 passes after a warm-up pass; views/s = 2 x images/s.

Run: ``python benchmarks/bench_views.py [--n 256] [--batch 64]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.data import DataLoader, Dataset

from monai_ssl.data import load_covid_cxr
from monai_ssl.transforms import RandMultiViewd, batched_simclr_augmentations, simclr_augmentations


def images_224(n: int) -> list[dict]:
    data = load_covid_cxr()[:n]
    out = []
    for x in data:
        img = F.interpolate(torch.as_tensor(x["image"])[None].float(), size=(224, 224), mode="area")[0]
        out.append({"image": img, "patient_id": x["patient_id"]})
    return out


def per_sample_rate(items: list[dict], workers: int, batch: int, repeats: int) -> float:
    torch.set_num_threads(1)
    chain = RandMultiViewd("image", simclr_augmentations(224), num_views=2, delete_original=True)
    loader = DataLoader(Dataset(items, chain), batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        n = sum(2 * b["image_view_0"].shape[0] for b in loader)
        if r:
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


class BatchedViewsCollate:
    """Stack a batch of un-augmented images and make two batched views of it (in the loader worker)."""

    def __init__(self) -> None:
        self.aug, self.calls = batched_simclr_augmentations(224), 0

    def __call__(self, items: list[dict]) -> dict:
        self.calls += 1
        x = torch.stack([torch.as_tensor(it["image"]) for it in items])
        seed = torch.initial_seed() + 2 * self.calls  # distinct per worker (PyTorch seeds each) and per batch
        return {f"image_view_{v}": self.aug(x, torch.Generator().manual_seed(seed + v)) for v in range(2)}


def batched_rate(items: list[dict], workers: int, batch: int, repeats: int) -> float:
    torch.set_num_threads(1)
    loader = DataLoader(Dataset(items), batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                        collate_fn=BatchedViewsCollate())
    rates = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        n = sum(2 * b["image_view_0"].shape[0] for b in loader)
        if r:
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256, help="images per pass")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_views.md"))
    args = parser.parse_args()
    items = images_224(args.n)
    rows = []
    for workers in (1, 2):
        a = per_sample_rate(items, workers, args.batch, args.repeats)
        b = batched_rate(items, workers, args.batch, args.repeats)
        rows.append((workers, a, b, b / a))
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    lines = [
        f"### SimCLR views at 224 px, 2 views/image, {args.n} images/pass, batch {args.batch} ({date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__})",
        "",
        "| DataLoader workers | per-sample MONAI chain (views/s) | batched (views/s) | ratio batched/per-sample |",
        "|---:|---:|---:|---:|",
        *[f"| {w} | {a:.1f} | {b:.1f} | {r:.1f}x |" for w, a, b, r in rows],
        "",
        f"Chain: `simclr_augmentations(224)` (crop 0.08-1, flip, brightness/contrast p=0.8, blur p=0.5) vs "
        f"`batched_simclr_augmentations(224)`; median of {args.repeats} passes after a warm-up; 1-minute load average "
        f"at the end {load:.1f} (shared machine: compare the ratios).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
