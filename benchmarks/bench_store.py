"""Images/s for one epoch of pretraining input: decoding the DICOM folder every epoch vs reading the image store.

A DICOM archive is written from the shipped chest X-rays (256 px, 12-bit, uncompressed: real archives hold
2-3k px, often compressed images, so decoding them is slower still and the ratio here is a lower bound). Folder:
``XRayPresetd(spatial_size=224)`` on every file (load, window, resize), what a datalist of DICOM paths costs per
epoch. Store: :func:`~monai_ssl.data.store.convert_to_store` once (timed separately), then ``StoreDataset`` reads
the preprocessed uint8 images. Both single-process, same run, median of 5 passes after a warm-up pass.

Run: ``python benchmarks/bench_store.py [--n 200]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from monai_ssl.data import datalist_from_dicom, load_covid_cxr
from monai_ssl.data.store import StoreDataset, convert_to_store
from monai_ssl.transforms import XRayPresetd
from monai_ssl.utils.dicom_write import write_dicom_archive


def median_rate(fn, n: int, repeats: int) -> float:
    fn()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="images in the archive")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_store.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_covid_cxr()[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        folder, store = Path(tmp) / "dicom", Path(tmp) / "store"
        write_dicom_archive(folder, [np.asarray(x["image"], dtype=np.float32) for x in data],
                            [x["patient_id"] for x in data])
        files = [d["image"] for d in datalist_from_dicom(folder).datalist]
        preset = XRayPresetd("image", spatial_size=224)
        t0 = time.perf_counter()
        convert_to_store(folder, store, preset="xray", spatial_size=224, progress=False)
        convert_s = time.perf_counter() - t0
        dataset = StoreDataset(store)
        assert len(dataset) == len(files) == args.n

        def from_folder() -> None:
            for f in files:
                preset({"image": f})

        def from_store() -> None:
            for i in range(len(dataset)):
                dataset[i]

        folder_rate = median_rate(from_folder, args.n, args.repeats)
        store_rate = median_rate(from_store, args.n, args.repeats)
        store_mb = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 2**20
        dicom_mb = sum(p.stat().st_size for p in folder.rglob("*.dcm")) / 2**20
    lines = [
        f"### One epoch of 224-px X-ray input, {args.n} images ({date.today()}, "
        f"{platform.processor() or platform.machine()}, 1 torch thread, torch {torch.__version__})",
        "",
        "| source | images/s | ratio store/folder |",
        "|---|---:|---:|",
        f"| DICOM folder, `XRayPresetd` every epoch | {folder_rate:.1f} | 1.0x |",
        f"| image store (LMDB, uint8) | {store_rate:.1f} | {store_rate / folder_rate:.0f}x |",
        "",
        f"One-off conversion: {convert_s:.1f} s ({args.n / convert_s:.1f} images/s); store {store_mb:.1f} MiB vs "
        f"DICOM folder {dicom_mb:.1f} MiB. Median of {args.repeats} passes after a warm-up; 1-minute load average "
        f"at the end {os.getloadavg()[0]:.1f} (shared machine: compare the ratio).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
