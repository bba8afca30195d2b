"""NT-Xent forward+backward: ours vs ``monai.losses.ContrastiveLoss`` vs the bare floor, in one process run.

Floor = normalise, one (2B x 2B) matmul, ``cross_entropy`` with the positive as target (no self-masking):
the least work any NT-Xent can do. Time = median of 5 repeats after one warm-up. Peak memory
(``torch.cuda.max_memory_allocated``) is reported on GPU only.
Also checks fp16 at temperature 0.02 (finite or NaN) for ours and MONAI's.

Run: ``python benchmarks/bench_ntxent.py [--device cuda] [--sizes 256 512 1024]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss

from monai_ssl.losses import NTXentLoss


def floor_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    b = z1.shape[0]
    target = (torch.arange(2 * b, device=z.device) + b) % (2 * b)
    return F.cross_entropy(z @ z.T / temperature, target)


def timed(fn, z1, z2, device, repeats: int) -> tuple[float, float | None]:
    def once() -> float:
        a, b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(a, b).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [once() for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_ntxent.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    ours, monai = NTXentLoss(args.temperature), ContrastiveLoss(temperature=args.temperature)
    rows = []
    for b in args.sizes:
        g = torch.Generator().manual_seed(b)
        z1, z2 = (torch.randn(b, args.dim, generator=g).to(device) for _ in range(2))
        check = abs(ours(z1, z2).item() - monai(z1, z2).item())
        t_floor, m_floor = timed(lambda a, c: floor_loss(a, c, args.temperature), z1, z2, device, args.repeats)
        t_ours, m_ours = timed(ours, z1, z2, device, args.repeats)
        t_monai, m_monai = timed(monai, z1, z2, device, args.repeats)
        rows.append((b, t_floor, t_ours, t_monai, m_floor, m_ours, m_monai, check))
        print(rows[-1], flush=True)
    half = torch.float16
    z1, z2 = (torch.randn(256, args.dim, generator=torch.Generator().manual_seed(i)).to(device, half) for i in (0, 1))
    fp16 = {name: bool(torch.isfinite(fn(z1, z2))) for name, fn in
            (("ours", NTXentLoss(0.02)), ("MONAI", ContrastiveLoss(temperature=0.02)))}
    mem = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    lines = [
        f"### NT-Xent forward+backward, D={args.dim}, T={args.temperature} ({date.today()}, {where}, torch {torch.__version__})",
        "",
        "| B | floor (ms) | ours (ms) | MONAI ContrastiveLoss (ms) | ours / floor | MONAI / floor | MONAI / ours |"
        + (" peak MiB floor / ours / MONAI |" if mem else "") + " |ours - MONAI| |",
        "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if mem else "") + "---:|",
    ]
    for b, tf, to, tm, mf, mo, mm, check in rows:
        lines.append(f"| {b} | {tf * 1e3:.1f} | {to * 1e3:.1f} | {tm * 1e3:.1f} | {to / tf:.2f}x | {tm / tf:.0f}x | "
                     f"{tm / to:.0f}x |" + (f" {mf:.0f} / {mo:.0f} / {mm:.0f} |" if mem else "") + f" {check:.1e} |")
    lines += ["", f"fp16 at T=0.02, B=256: ours finite = {fp16['ours']}, MONAI finite = {fp16['MONAI']}", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out if device.type == "cpu" else args.out.replace(".md", "_gpu.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
