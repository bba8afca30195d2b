"""GPU training throughput with the data already on the device (run through ``benchmarks/gpu.sh``).

Rows, all from this one run on one card:

* SimCLR ResNet-50 (MONAI ``resnet50``, grey input, 2048-2048-128 projection head, NT-Xent), 224 px: pairs/s of
  the training step (bf16 autocast, fused AdamW, channels-last, ``torch.compile``), and the same step with the two
  views made on the device by ``batched_simclr_augmentations`` from un-augmented images;
* MAE ViT-B/16, 224 px, mask 0.75 (decoder 512 x 8): img/s and model FLOP utilisation (FLOPs of one step counted by
  ``torch.utils.flop_counter.FlopCounterMode`` / step time / the card's dense bf16 peak), ours
  (``monai_ssl.networks.nets.MaskedAutoencoderViT``, bf16 + SDPA + compile) next to MONAI's
  ``MaskedAutoEncoderViT`` (same configuration; bf16 when it runs under autocast, else TF32);
* batched SimCLR views/s on the device (224 px, float32).

Each row is appended to ``--out`` as soon as it is measured. ``--dry-run``: every path, tiny, on the CPU
(ResNet-10 for ResNet-50, a 1-layer MAE, ``torch.compile`` with the ``eager`` backend), written to a temporary file
unless ``--out`` is given.

Run: ``bash benchmarks/gpu.sh`` (or ``python benchmarks/bench_throughput.py [--dry-run] [--no-compile]``)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_mae  # benchmarks/bench_mae.py: the MAE step of both models

from monai_ssl.losses import NTXentLoss
from monai_ssl.networks import ContrastiveModel, ProjectionHead
from monai_ssl.transforms import batched_simclr_augmentations

# dense bf16 tensor-core peaks (FLOP/s) by card name; the first matching substring wins
BF16_PEAKS = [("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12), ("A100", 312e12),
              ("L40S", 362e12), ("A10", 125e12), ("L4", 121e12)]


def card_peak(name: str) -> float | None:
    return next((p for key, p in BF16_PEAKS if key in name), None)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(step, device: str, warmup: int, repeats: int) -> float:
    """Median seconds of one ``step()`` after ``warmup`` calls (which include any compilation); resets the peak
    memory count first."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


class SimCLRStep:
    """One SimCLR step of a ResNet-50 on (2B, 1, S, S) views already on the device."""

    def __init__(self, device: str, size: int, pairs: int, compile_backend: str | None, views_on_device: bool,
                 tiny: bool = False):
        from monai.networks.nets import resnet10, resnet50

        torch.manual_seed(0)
        net, width = (resnet10, 512) if tiny else (resnet50, 2048)  # tiny: the dry run's stand-in
        enc = net(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=2)
        self.model = ContrastiveModel(enc, ProjectionHead(width, width, 128)).to(device)
        self.device, self.pairs = device, pairs
        if device == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fwd = torch.compile(self.model, backend=compile_backend) if compile_backend else self.model
        self.loss = NTXentLoss(0.1)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, **({"fused": True} if device == "cuda" else {}))
        self.images = torch.rand(pairs, 1, size, size, device=device)
        self.aug = batched_simclr_augmentations(size) if views_on_device else None
        self.views = torch.rand(2 * pairs, 1, size, size, device=device)
        self.k = 0

    def batch(self) -> torch.Tensor:
        if self.aug is None:
            return self.views
        self.k += 1
        g0, g1 = torch.Generator().manual_seed(2 * self.k), torch.Generator().manual_seed(2 * self.k + 1)
        return torch.cat([self.aug(self.images, g0), self.aug(self.images, g1)])

    def forward_backward(self, model) -> torch.Tensor:
        x = self.batch()
        if self.device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device, dtype=torch.bfloat16):
            z = model(x)["projection"].float().reshape(2, self.pairs, -1)
        loss = self.loss(z)
        loss.backward()
        return loss

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.forward_backward(self.fwd)
        self.opt.step()

    def flops(self) -> float:
        aug, self.aug = self.aug, None  # model FLOPs only
        total = count_flops(lambda: self.forward_backward(self.model))
        self.aug = aug
        self.model.zero_grad(set_to_none=True)
        return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dry-run", action="store_true", help="every path, tiny, on the CPU; results to a temp file")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    if not dry and not torch.cuda.is_available():
        raise SystemExit("bench_throughput: no CUDA device (use --dry-run to check the script on a CPU)")
    card = "CPU (dry run)" if dry else torch.cuda.get_device_name(0)
    peak = card_peak(card)
    size, pairs, mae_batch, view_batch = (32, 2, 2, 8) if dry else (224, 256, 256, 256)
    warmup, repeats = (1, 2) if dry else (5, 10)
    backend = None if args.no_compile else ("eager" if dry else "inductor")
    if dry:
        bench_mae.CASES["tiny"] = (2, 32, 1, 2, 2, dict(patch_size=8, hidden_size=32, mlp_dim=64, num_layers=1,
                                                         num_heads=2, decoder_hidden_size=32, decoder_mlp_dim=64,
                                                         decoder_num_layers=1, decoder_num_heads=2, qkv_bias=True))
    mae_case = "tiny" if dry else "2D ViT-B/16 MAE 224px"
    default_out = Path(__file__).parent / "results" / "bench_throughput_gpu.md"
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp()) / "bench_throughput.md" if dry else default_out)
    if not dry:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    compiled = f"compile ({backend})" if backend else "eager"
    header = [
        f"### {card}: data on the device ({date.today()}, torch {torch.__version__}, "
        f"bf16 peak {peak / 1e12:.0f} TFLOP/s)" if peak else f"### {card} ({date.today()}, torch {torch.__version__})",
        "",
        "| card | workload | setting | batch | step ms | throughput | MFU | peak GiB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n")

    def row(workload: str, setting: str, batch: int, seconds: float, rate: str, flops: float | None) -> None:
        mfu = f"{100 * flops / seconds / peak:.1f} %" if flops and peak else "n/a"
        mem = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if device == "cuda" else "n/a"
        line = f"| {card} | {workload} | {setting} | {batch} | {1000 * seconds:.1f} | {rate} | {mfu} | {mem} |"
        print(line, flush=True)
        with open(out, "a") as f:
            f.write(line + "\n")

    # SimCLR ResNet-50: views ready on the device, then views made on the device inside the step (same compiled model)
    step = SimCLRStep(device, size, pairs, backend, False, tiny=dry)
    for on_device in (False, True):
        step.aug = batched_simclr_augmentations(size) if on_device else None
        sec = timed(step, device, warmup, repeats)
        name = f"SimCLR ResNet-{10 if dry else 50} {size}px" + (" + on-device views" if on_device else "")
        row(name, f"bf16, fused AdamW, channels-last, {compiled}", pairs, sec, f"{pairs / sec:.0f} pairs/s",
            step.flops() if not on_device else None)
    del step
    # MAE ViT-B/16: ours (bf16 + SDPA + compile) and MONAI's MaskedAutoEncoderViT in the same run
    for kind, settings in (("ours", [f"bf16 {'compile' if backend else ''}".strip()]), ("monai", ["bf16", "tf32"])):
        for setting in settings:
            try:
                step = bench_mae.Step(kind, mae_case, device, setting, mae_batch)
                if backend and "compile" in setting:
                    step.fwd = torch.compile(step.eager_fwd, dynamic=False, backend=backend)
                sec = timed(step, device, warmup, repeats)
                flops = step.flops()
            except Exception as e:  # MONAI's model may refuse bf16 autocast: record it, try the next setting
                with open(out, "a") as f:
                    f.write(f"| {card} | MAE {mae_case} {kind} | {setting} | {mae_batch} | error: "
                            f"{type(e).__name__}: {str(e)[:80]} | | | |\n")
                continue
            label = "MAE (ours)" if kind == "ours" else "MAE (MONAI MaskedAutoEncoderViT)"
            row(f"{label} {mae_case}", setting.replace("compile", compiled) + ", fused AdamW", mae_batch, sec,
                f"{mae_batch / sec:.0f} img/s", flops)
            del step
            break
    # batched views on the device
    aug = batched_simclr_augmentations(size)
    images = torch.rand(view_batch, 1, 256 if not dry else 40, 256 if not dry else 40, device=device)
    gens = iter(range(10**6))
    sec = timed(lambda: aug(images, torch.Generator().manual_seed(next(gens))), device, warmup, repeats)
    row(f"batched SimCLR views {size}px", "float32, from 256 px" if not dry else "float32", view_batch, sec,
        f"{view_batch / sec:.0f} views/s", None)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
