"""NT-Xent forward+backward: ours vs ``monai.losses.ContrastiveLoss`` vs the bare floor, in one process run.

Floor = normalise, one (2B x 2B) matmul, ``cross_entropy`` with the positive as target (no self-masking):
the least work any NT-Xent can do. Time = median of 5 repeats after one warm-up. Peak memory of one
forward+backward: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak RSS growth of a fresh child process
per (loss, B) (``benchmarks/_memory.py``).
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

from _memory import child_peak_mb, report_peak_growth, rss_mb  # benchmarks/_memory.py
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


def make_losses(temperature: float) -> dict:
    return {"floor": lambda a, c: floor_loss(a, c, temperature), "ours": NTXentLoss(temperature),
            "monai": ContrastiveLoss(temperature=temperature)}


def child_memory(name: str, batch: int, dim: int, temperature: float) -> None:
    """Child-process mode: peak RSS growth of one forward+backward of loss ``name`` at batch ``batch``."""
    fn = make_losses(temperature)[name]
    for b in (8, batch):  # the first pass loads the kernels; the second allocates the inputs
        z1, z2 = (torch.randn(b, dim).requires_grad_() for _ in range(2))
    fn(z1[:8], z2[:8]).backward()
    base = rss_mb()
    fn(z1, z2).backward()
    report_peak_growth(base)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_ntxent.md"))
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_memory(args.child[0], int(args.child[1]), args.dim, args.temperature)
    device = torch.device(args.device)
    losses = make_losses(args.temperature)
    ours, monai = losses["ours"], losses["monai"]
    rows = []
    for b in args.sizes:
        g = torch.Generator().manual_seed(b)
        z1, z2 = (torch.randn(b, args.dim, generator=g).to(device) for _ in range(2))
        check = abs(ours(z1, z2).item() - monai(z1, z2).item())
        t_floor, m_floor = timed(losses["floor"], z1, z2, device, args.repeats)
        t_ours, m_ours = timed(ours, z1, z2, device, args.repeats)
        t_monai, m_monai = timed(monai, z1, z2, device, args.repeats)
        if device.type == "cpu":
            flags = ["--dim", str(args.dim), "--temperature", str(args.temperature)]
            m_floor, m_ours, m_monai = (child_peak_mb(__file__, [name, str(b), *flags], torch.get_num_threads())
                                        for name in ("floor", "ours", "monai"))
        rows.append((b, t_floor, t_ours, t_monai, m_floor, m_ours, m_monai, check))
        print(rows[-1], flush=True)
    half = torch.float16
    z1, z2 = (torch.randn(256, args.dim, generator=torch.Generator().manual_seed(i)).to(device, half) for i in (0, 1))
    fp16 = {name: bool(torch.isfinite(fn(z1, z2))) for name, fn in
            (("ours", NTXentLoss(0.02)), ("MONAI", ContrastiveLoss(temperature=0.02)))}
    mem_label = "peak MiB" if device.type == "cuda" else "peak RSS growth MiB"
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    lines = [
        f"### NT-Xent forward+backward, D={args.dim}, T={args.temperature} "
        f"({date.today()}, {where}, torch {torch.__version__})",
        "",
        "| B | floor (ms) | ours (ms) | MONAI ContrastiveLoss (ms) | ours / floor | MONAI / floor | MONAI / ours |"
        + f" {mem_label} floor / ours / MONAI | |ours - MONAI| |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, tf, to, tm, mf, mo, mm, check in rows:
        lines.append(f"| {b} | {tf * 1e3:.1f} | {to * 1e3:.1f} | {tm * 1e3:.1f} | {to / tf:.2f}x | {tm / tf:.0f}x | "
                     f"{tm / to:.0f}x | {mf:.0f} / {mo:.0f} / {mm:.0f} | {check:.1e} |")
    lines += ["", f"fp16 at T=0.02, B=256: ours finite = {fp16['ours']}, MONAI finite = {fp16['MONAI']}", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out if device.type == "cpu" else args.out.replace(".md", "_gpu.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
