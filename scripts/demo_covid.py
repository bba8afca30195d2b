"""`make demo` with ``--covid`` (``python scripts/demo.py --covid``): MICLe pretraining -> 10 %-label COVID
classification, scratch vs pretrained, through the bundles.

At this budget (64 px, 20 epochs of MICLe on 393 training-patient images) it shows the pipeline, not a gain: both
arms score near chance on the 82 test images (17 negatives). The classification bundle keeps the checkpoint of the
best AUC on the whole validation split, so the labels used are the 10 % of the training labels plus every validation
label. The default ``make demo`` (``scripts/demo.py``) shows the gain on PneumoniaMNIST at 1 % labels instead.

Everything runs through the MONAI bundles (``monai.bundle.ConfigWorkflow`` over ``bundles/*/configs``), the same
configs as ``python -m monai.bundle run``:

1. the dataset summary of ``scripts/demo_data.py``;
2. ``micle_pretrain``: MICLe (two images of one patient as the positive pair) on the training patients' chest
   X-rays at ``--image-size`` px, exporting ``<out>/micle/encoder.pt``;
3. ``classification`` fine-tuning on ``--label-fraction`` of the training labels, from scratch and from the
   exported encoder (same split, seed, schedule and step budget);
4. ``classification`` evaluation of both on the test patients (AUC, accuracy, balanced accuracy, F1 with
   patient-clustered bootstrap 95 % CIs), printed as a table and written with a plot to ``<out>``.

Defaults are sized to finish in under 10 minutes on a quiet 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
METRICS = ("auc", "accuracy", "balanced_accuracy", "f1")


def _workflow(bundle: str, names: list[str], **overrides):
    """Run ``bundles/<bundle>`` with configs ``names`` merged and ``overrides`` (:func:`monai_ssl.apps.run_bundle`)."""
    from monai_ssl.apps import run_bundle

    return run_bundle(BUNDLES / bundle, names, **overrides)


def pretrain(out: Path, args: argparse.Namespace) -> Path:
    """MICLe pretraining via the ``micle_pretrain`` bundle; returns the exported encoder path."""
    _workflow("micle_pretrain", ["train"], output_dir=str(out), image_size=args.image_size,
              batch_size=args.pretrain_batch_size, max_epochs=args.pretrain_epochs, learning_rate=args.pretrain_lr,
              seed=args.seed, resume=False, progress_bar=False)
    return out / "encoder.pt"


def finetune_and_evaluate(out: Path, pretrained: str, args: argparse.Namespace) -> dict:
    """``classification`` training at ``label_fraction`` then test evaluation; returns the report and history."""
    common = dict(output_dir=str(out), image_size=args.image_size, label_fraction=args.label_fraction,
                  batch_size=args.finetune_batch_size, seed=args.seed, pretrained_ckpt=pretrained,
                  progress_bar=False)
    wf = _workflow("classification", ["train"], max_epochs=args.finetune_epochs, epoch_length=args.epoch_length,
                   learning_rate=args.finetune_lr, resume=False, **common)
    history = wf.parser.get_parsed_content("train#handlers_by_name#metriclogger")  # monai.handlers.MetricLogger
    val_auc = [float(v) for _, v in history.metrics.get("val_auc", [])]
    n_train = len(wf.parser.get_parsed_content("train#dataset"))
    wf = _workflow("classification", ["train", "evaluate"], n_boot=args.n_boot, **common)
    return {"report": wf.parser.get_parsed_content("evaluate#result")["report"], "val_auc": val_auc,
            "n_train_images": n_train}


def table(results: dict[str, dict]) -> str:
    """Markdown table: one row per initialisation, metric [95 % CI] per column."""
    head = ["init", "train images", "best val AUC", *(f"test {m.replace('_', ' ')} [95% CI]" for m in METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        rep = r["report"]
        cells = [name, str(r["n_train_images"]), f"{max(r['val_auc']):.3f}" if r["val_auc"] else "n/a"]
        cells += [f"{rep[m]['value']:.3f} [{rep[m]['low']:.3f}, {rep[m]['high']:.3f}]" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    n_test = int(next(iter(results.values()))["report"]["n"]["value"])
    lines.append(f"\nTest set: {n_test} images (patient-level split); CIs: patient-clustered bootstrap.")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path) -> None:
    """Test metrics with 95 % CIs (bars) and validation AUC per epoch (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(results)
    x = np.arange(len(METRICS))
    for i, (name, r) in enumerate(results.items()):
        rep = r["report"]
        vals = np.array([rep[m]["value"] for m in METRICS])
        err = np.array([[vals[j] - rep[m]["low"], rep[m]["high"] - vals[j]] for j, m in enumerate(METRICS)]).T
        ax0.bar(x + i * width, vals, width, yerr=err, capsize=3, label=name)
        ax1.plot(range(1, len(r["val_auc"]) + 1), r["val_auc"], marker="o", ms=3, label=name)
    ax0.set_xticks(x + width * (len(results) - 1) / 2, [m.replace("_", "\n") for m in METRICS])
    ax0.set_ylim(0, 1.05)
    ax0.set_title("test metrics (95% bootstrap CI)")
    ax0.legend()
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation AUC")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("validation AUC per epoch")
    ax1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "demo", help="output folder (recreated)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--pretrain-batch-size", type=int, default=32)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--label-fraction", type=float, default=0.1)
    p.add_argument("--finetune-epochs", type=int, default=15)
    p.add_argument("--epoch-length", type=int, default=4, help="fine-tuning iterations per epoch")
    p.add_argument("--finetune-batch-size", type=int, default=16)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (0: torch's default; 1 on a machine shared with other jobs)")
    p.add_argument("--skip-summary", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if not args.skip_summary:
        from demo_data import main as summary

        summary([])
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    timings: dict[str, float] = {}

    print(f"\n[1/3] micle_pretrain: MICLe on the training patients' CXRs, {args.image_size} px, "
          f"{args.pretrain_epochs} epochs", flush=True)
    t = time.perf_counter()
    encoder = pretrain(out / "micle", args)
    timings["pretrain_s"] = time.perf_counter() - t
    print(f"      encoder -> {encoder.relative_to(REPO) if encoder.is_relative_to(REPO) else encoder} "
          f"({timings['pretrain_s']:.0f} s)", flush=True)

    results: dict[str, dict] = {}
    for i, (name, ckpt) in enumerate([("scratch", ""), ("MICLe-pretrained", str(encoder))]):
        print(f"[{2 + i}/3] classification at {args.label_fraction:.0%} labels, {name}: "
              f"{args.finetune_epochs} x {args.epoch_length} iterations", flush=True)
        t = time.perf_counter()
        results[name] = finetune_and_evaluate(out / ("scratch" if not ckpt else "pretrained"), ckpt, args)
        timings[f"{name}_s"] = time.perf_counter() - t

    md = table(results)
    print("\nCOVID-19 vs other finding, test patients:\n" + md)
    plot(results, out / "demo.png")
    timings["total_s"] = time.perf_counter() - t0
    cpu = os.times()
    timings["cpu_user_sys_s"] = cpu.user + cpu.system
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                  "results": results, "timings": timings}, indent=2) + "\n")
    print(f"\nwrote {out / 'results.md'}, {out / 'results.json'} and {out / 'demo.png'} "
          f"(wall {timings['total_s']:.0f} s, CPU user+sys {timings['cpu_user_sys_s']:.0f} s)")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
