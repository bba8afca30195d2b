"""One MAE training step (forward + backward + AdamW): ours vs ``monai.networks.nets.MaskedAutoEncoderViT`` + MSE.

Both models get the same configuration (encoder and decoder widths/depths/heads, qkv bias, mask ratio 0.75, sin-cos
position tables) and the same masked-patch MSE, on the same random batch, timed in this one process
run, interleaved repeat by repeat (median of ``--repeats`` after ``--warmup`` steps).

CPU (default): fp32 for both (MONAI's model raises under ``torch.autocast``); peak memory = peak RSS growth of a
fresh child process over 3 steps (activations, gradients, AdamW state).
GPU (``--device cuda``): ours in bf16 autocast (eager and ``torch.compile``) vs MONAI in fp32 and TF32 (and its
bf16 attempt, recorded as an error); peak memory = ``torch.cuda.max_memory_allocated``; MFU = FLOPs of one step
(``torch.utils.flop_counter.FlopCounterMode``, forward + backward) / step time / 989 TFLOP/s (H100 SXM dense bf16).

Run: ``python benchmarks/bench_mae.py [--device cpu|cuda] [--repeats 7] [--out benchmarks/results/bench_mae.md]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from monai.networks.nets import MaskedAutoEncoderViT

from _memory import child_peak_mb, report_peak_growth, rss_mb  # benchmarks/_memory.py
from monai_ssl.losses import MaskedReconstructionLoss
from monai_ssl.networks.masking import RandomMasking, build_masking
from monai_ssl.networks.nets import MaskedAutoencoderViT
from monai_ssl.networks.patching import patchify

H100_BF16_PEAK = 989e12

# name: (spatial_dims, img_size, channels, batch (cpu), batch (gpu), model kwargs)
# the config (hidden 384, 6 layers) with MONAI's defaults for everything else (mlp 512, 12 heads,
# decoder 384 x 4 layers, mlp 512, 12 heads, no qkv bias); ViT-B/16 with the MAE paper's decoder (512 x 8, 16 heads)
SMALL = dict(patch_size=16, hidden_size=384, mlp_dim=512, num_layers=6, num_heads=12, decoder_hidden_size=384,
             decoder_mlp_dim=512, decoder_num_layers=4, decoder_num_heads=12, qkv_bias=False)
VIT_B = dict(patch_size=16, hidden_size=768, mlp_dim=3072, num_layers=12, num_heads=12, decoder_hidden_size=512,
             decoder_mlp_dim=2048, decoder_num_layers=8, decoder_num_heads=16, qkv_bias=True)
CASES = {
    "2D 128px p16 h384x6": (2, 128, 1, 32, 256, SMALL),
    "3D 64^3 p16 h384x6": (3, 64, 1, 4, 64, SMALL),
    "2D ViT-B/16 MAE 224px": (2, 224, 3, 8, 256, VIT_B),
}
CPU_CASES = ["2D 128px p16 h384x6", "3D 64^3 p16 h384x6"]


def build(kind: str, case: str, device: str):
    dims, size, ch, _, _, kw = CASES[case]
    common = dict(in_channels=ch, img_size=size, spatial_dims=dims, **kw)
    if kind == "ours":
        return MaskedAutoencoderViT(masking=RandomMasking(0.75), **common).to(device)
    return MaskedAutoEncoderViT(
        pos_embed_type="sincos", decoder_pos_embed_type="sincos", masking_ratio=0.75, **common
    ).to(device)


def masked_mse(pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, patch) -> torch.Tensor:
    """Reference loss for MONAI's model: plain MSE per patch averaged over masked patches."""
    per_patch = (pred.float() - patchify(image.float(), patch)).pow(2).mean(-1)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum()


class Step:
    """One training step of a model under a precision setting; ``compile`` wraps forward+loss in torch.compile."""

    def __init__(self, kind: str, case: str, device: str, setting: str, batch: int):
        dims, size, ch, *_ = CASES[case]
        torch.manual_seed(0)
        self.model = build(kind, case, device)
        self.device, self.setting, self.kind = device, setting, kind
        self.x = torch.rand(batch, ch, *([size] * dims), device=device)
        patch = self.model.patch_size
        if kind == "ours":
            loss = MaskedReconstructionLoss(patch, spatial_dims=dims)
            self.eager_fwd = lambda x: loss(*_swap(self.model(x), x))
        else:
            self.eager_fwd = lambda x: masked_mse(*_swap(self.model(x), x), patch)
        self.fwd = torch.compile(self.eager_fwd, dynamic=False) if "compile" in setting else self.eager_fwd
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, **({"fused": True} if device == "cuda" else {}))
        self.amp = "bf16" in setting
        torch.backends.cuda.matmul.allow_tf32 = "tf32" in setting or "bf16" in setting
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32

    def loss(self) -> torch.Tensor:
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.amp):
            return self.fwd(self.x)

    def __call__(self) -> float:
        torch.backends.cuda.matmul.allow_tf32 = "tf32" in self.setting or "bf16" in self.setting
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return float(loss.detach())  # host sync: the step is complete

    def flops(self) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:  # counted on the eager graph (same maths)
            with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.amp):
                loss = self.eager_fwd(self.x)
            loss.backward()
        self.model.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())


def _swap(out, x):
    pred, mask = out
    return pred, x, mask


def child_memory(kind: str, case: str, batch: int) -> None:
    """Child-process mode: peak RSS growth (MB) of 2 full-batch fp32 CPU steps over a process warmed by 1-image steps.

    The warm-up (batch 1) loads the kernels and creates the AdamW state, so the growth is what the batch's
    activations, gradients and temporaries add.
    """
    step = Step(kind, case, "cpu", "fp32", batch)
    full = step.x
    step.x = full[:1].clone()
    for _ in range(2):
        step()
    step.x = full
    base = rss_mb()
    for _ in range(2):
        step()
    report_peak_growth(base)


def cpu_peak_mb(kind: str, case: str, batch: int, tries: int = 2) -> float:
    """Smallest of ``tries`` child-process measurements (RSS readings carry allocator noise)."""
    return child_peak_mb(__file__, [kind, case, str(batch)], torch.get_num_threads(), tries)


def run(device: str, repeats: int, warmup: int, cases: list[str], settings: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for case in cases:
        batch = CASES[case][3] if device == "cpu" else CASES[case][4]
        steps, errors = {}, {}
        torch._dynamo.reset()
        for kind, setting in settings:
            try:
                st = Step(kind, case, device, setting, batch)
                for _ in range(warmup):
                    st()
                steps[(kind, setting)] = st
            except Exception as err:  # MONAI under autocast raises: record it
                errors[(kind, setting)] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
                if device == "cuda":
                    torch.cuda.empty_cache()
        times = {k: [] for k in steps}
        for _ in range(repeats):  # interleaved, so load changes hit every variant alike
            for k, st in steps.items():
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                st()
                times[k].append(time.perf_counter() - t0)
        for (kind, setting), st in steps.items():
            med = statistics.median(times[(kind, setting)])
            row = dict(case=case, model="ours" if kind == "ours" else "MONAI MaskedAutoEncoderViT", setting=setting,
                       batch=batch, ms=1e3 * med, ips=batch / med)
            if device == "cuda":  # peak during one step above what is resident (weights, AdamW state, batch)
                torch.cuda.synchronize()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                st()
                row["mem"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                row["flops"] = st.flops()
                row["mfu"] = row["flops"] / med / H100_BF16_PEAK
            else:
                row["mem"] = cpu_peak_mb(kind, case, batch)
            rows.append(row)
        for (kind, setting), err in errors.items():
            rows.append(dict(case=case, model="ours" if kind == "ours" else "MONAI MaskedAutoEncoderViT",
                             setting=setting, batch=batch, error=err))
        del steps
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def sync_check() -> str:
    """Run forward + loss of each model under ``torch.cuda.set_sync_debug_mode("error")``: does it sync the host?"""
    lines = []
    for kind, mode in (("ours", "random"), ("ours", "entropy"), ("monai", "random")):
        st = Step(kind, "2D 128px p16 h384x6", "cuda", "bf16" if kind == "ours" else "fp32", 8)
        if kind == "ours":
            st.model.masking = build_masking(mode, 0.75)
        st.loss()  # warm-up outside the check (lazy CUDA init)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            st.loss()
            verdict = "no host synchronisation"
        except RuntimeError as err:
            verdict = f"synchronises the host ({str(err).splitlines()[0][:70]})"
        finally:
            torch.cuda.set_sync_debug_mode("default")
        lines.append(f"- {'ours' if kind == 'ours' else 'MONAI'} ({mode} masking) forward + loss: {verdict}")
    return "\n".join(lines)


def table(rows: list[dict], device: str) -> str:
    gpu = device == "cuda"
    mem = "peak step MB above resident" if gpu else "peak step RSS growth MB"
    head = (f"| case | model | setting | batch | step ms | img/s | x MONAI best | {mem} |"
            + (" GFLOP/step | MFU |" if gpu else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for case in dict.fromkeys(r["case"] for r in rows):
        ref = max((r["ips"] for r in rows if r["case"] == case and "ips" in r and r["model"] != "ours"), default=None)
        for r in (r for r in rows if r["case"] == case):
            if "error" in r:
                lines.append(f"| {case} | {r['model']} | {r['setting']} | {r['batch']} | fails: {r['error']} | | | |"
                             + (" | |" if gpu else ""))
                continue
            ratio = f"{r['ips'] / ref:.2f}x" if ref else "n/a"
            line = (f"| {case} | {r['model']} | {r['setting']} | {r['batch']} | {r['ms']:.1f} | {r['ips']:.1f} | "
                    f"{ratio} | {r['mem']:.0f} |")
            if gpu:
                line += f" {r['flops'] / 1e9:.0f} | {100 * r['mfu']:.1f}% |"
            lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cases", nargs="*", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_memory(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.device == "cpu":
        settings = [("ours", "fp32"), ("monai", "fp32")]
        cases = args.cases or CPU_CASES
    else:
        settings = [("ours", "bf16 autocast"), ("ours", "bf16 autocast + compile"), ("monai", "fp32"),
                    ("monai", "tf32"), ("monai", "bf16 autocast")]
        cases = args.cases or list(CASES)
    sync = sync_check() if args.device == "cuda" else ""
    rows = run(args.device, args.repeats, max(args.warmup, 3 if args.device == "cuda" else 1), cases, settings)
    if args.device == "cuda":
        where = torch.cuda.get_device_name()
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    text = (f"# bench_mae: one MAE training step, ours vs MONAI MaskedAutoEncoderViT + MSE ({args.device})\n\n"
            f"{date.today()}, torch {torch.__version__}, {where}; median of {args.repeats} interleaved steps after "
            f"warm-up; mask ratio 0.75, AdamW. Same config for both models per case (h384x6: hidden 384, 6 layers, "
            f"MONAI defaults "
            f"otherwise: mlp 512, 12 heads, decoder 384x4 mlp 512, no qkv bias; ViT-B/16: 768x12, mlp 3072, decoder "
            f"512x8 mlp 2048, 16 heads, qkv bias).\n\n"
            + table(rows, args.device) + "\n"
            + (f"\nMFU = counted FLOPs (FlopCounterMode, fwd+bwd) / step time / 989 TFLOP/s (H100 SXM dense bf16) "
               f"for every row, fp32/TF32 included.\n\nHost-sync check (torch.cuda.set_sync_debug_mode('error')):\n"
               f"{sync}\n" if sync else ""))
    print(text)
    default_name = "bench_mae.md" if args.device == "cpu" else "bench_mae_gpu.md"
    out = Path(args.out or Path(__file__).parent / "results" / default_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
