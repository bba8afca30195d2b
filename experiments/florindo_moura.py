"""Florindo & Moura (arXiv:2605.21970) on shipped data: two fine-tuned ConvNeXts, their probabilities averaged.

The paper fine-tunes two ConvNeXt-Tiny models on each target set, one from an ImageNet checkpoint and one from a
ConvNeXt masked autoencoder with entropy-guided masking pretrained on the target set's own images, and averages
their predicted probabilities; its ablation replaces entropy-guided masking by random masking. Here, on BreastMNIST
(standing in for the paper's BUSI) and on CPU:

* member **A** ("ImageNet" member): **no ImageNet file exists on this machine**, so A is a ConvNeXt trained
  *supervised on PneumoniaMNIST* (another shipped set; its labels are counted separately, ``source_labels``), its
  classifier dropped, loaded with ``--pretrained_kind convnext_mae`` (ConvNeXt names pass unchanged). With a real
  ImageNet file: ``--member-a-ckpt convnext_tiny_1k_224_ema.pth --member-a-kind convnext_official``;
* member **B**: ConvNeXt-MAE with entropy-guided masking on the target training images (labels unused), through the
  ``mae_pretrain`` bundle (``network_name convnext``, ``mask_mode entropy``, ``modalities [us]`` = BreastMNIST
  train), its encoder export loaded with kind ``convnext_mae``;
* member **B'** (the ablation): the same with random masking; **scratch** (optional, `--members`): no pretraining.

Every member is fine-tuned for each seed through the ``classification`` bundle (``network_name convnext``, data
route ``--dataset medmnist --flag breastmnist``); the checkpoint is the best validation AUC (``selected_on`` =
``val``; the validation labels are counted in ``n_labels_used``); every other setting is fixed before any run
(no test-set choice). Each model is then scored once on the test split by ``evaluate.yaml``, and the two-member
ensembles (A+B, A+B') by the same config with ``--ensemble true`` (MONAI ``MeanEnsembled``: probabilities
averaged). A model that predicts one class for every test image is a failed run (kept in the CSV, flagged).

Reduced for the CPU: 64-px images (BreastMNIST's 28-px release upsampled) and a 3-stage ConvNeXt (depths 2-2-2,
widths 24-48-96; total stride 16, so the MAE masks 16 units of 16 px). The paper's setting on a GPU:
``--size 224 --depths 3 3 9 3 --dims 96 192 384 768 --medmnist-size 224`` (ConvNeXt-Tiny) with longer schedules.

    python experiments/florindo_moura.py                         # results/florindo_moura/{results.csv,summary.md}
    python experiments/florindo_moura.py --smoke --out /tmp/fm   # seconds, settings too small to mean anything
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's monai_ssl, also when the script is run by its path
MEMBERS = {  # name -> (pretraining, masking)
    "A": ("supervised PneumoniaMNIST (stand-in for ImageNet)", ""),
    "B": ("ConvNeXt-MAE on target train images", "entropy"),
    "B_random": ("ConvNeXt-MAE on target train images", "random"),
    "scratch": ("none", ""),
}
ENSEMBLES = {"A+B": ("A", "B"), "A+B_random": ("A", "B_random")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "results" / "florindo_moura"))
    p.add_argument("--work", default=str(REPO / "outputs" / "florindo_moura"), help="checkpoints (not committed)")
    p.add_argument("--data-root", default=str(REPO / "data"))
    p.add_argument("--flag", default="breastmnist", help="target MedMNIST 2D set")
    p.add_argument("--source-flag", default="pneumoniamnist", help="member A's supervised source set")
    p.add_argument("--medmnist-size", type=int, default=28)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--depths", type=int, nargs="+", default=None, help="ConvNeXt blocks per stage (2 2 2)")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="ConvNeXt widths per stage (24 48 96)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--members", nargs="+", default=["A", "B", "B_random"], choices=list(MEMBERS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--source-epochs", type=int, default=1)
    p.add_argument("--member-a-ckpt", default="", help="an ImageNet ConvNeXt file for member A (skips the stand-in)")
    p.add_argument("--member-a-kind", default="convnext_official", help="its load_pretrained kind")
    p.add_argument("--mae-steps", type=int, default=250)
    p.add_argument("--mae-lr", type=float, default=1.5e-3)
    p.add_argument("--masking-ratio", type=float, default=0.6)
    p.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs (best validation AUC kept)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--data-limit", type=int, default=None, help="first N items per split (smoke runs)")
    p.add_argument("--reuse", action="store_true", help="keep --work and reuse its pretrained members")
    p.add_argument("--smoke", action="store_true", help="tiny settings: checks the pipeline, means nothing")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.seeds = 32, args.seeds[:1]
        args.depths, args.dims = args.depths or [1, 1], args.dims or [8, 16]
        args.source_epochs, args.mae_steps, args.epochs, args.batch_size = 1, 2, 1, 8
        args.n_boot, args.data_limit = 20, args.data_limit or 24
    args.depths, args.dims = args.depths or [2, 2, 2], args.dims or [24, 48, 96]
    return args


def run_bundle(bundle: str, configs: tuple[str, ...] = ("train",), **overrides):
    """``bundles/<bundle>`` with ``configs`` and ``overrides`` through :func:`monai_ssl.apps.run_bundle`
    (MONAI ``ConfigWorkflow``: initialize, run, finalize); returns the workflow (its parser holds the objects)."""
    from monai_ssl.apps import run_bundle as run

    return run(REPO / "bundles" / bundle, configs, **overrides)


def convnext_overrides(args) -> dict:
    return {"network_name": "convnext", "networks#convnext#depths": list(args.depths),
            "networks#convnext#dims": list(args.dims), "image_size": args.size, "batch_size": args.batch_size,
            "medmnist_size": args.medmnist_size, "data_limit": args.data_limit, "dataset_dir": args.data_root,
            "dataset": "medmnist", "num_workers": 0, "progress_bar": False, "resume": False,
            "device": torch.device("cpu")}


def pretrain_source(args, work: Path) -> tuple[Path, int]:
    """Member A: supervised ConvNeXt on the source set (checkpoint = best source-validation AUC), head dropped."""
    out, path, count = work / "pretrain_A", work / "A_encoder.pt", work / "A_labels.txt"
    if args.reuse and path.is_file() and count.is_file():
        return path, int(count.read_text())
    wf = run_bundle("classification", output_dir=str(out), flag=args.source_flag, seed=0,
                    max_epochs=args.source_epochs, learning_rate=1e-3, **convnext_overrides(args))
    lists = wf.parser.get_parsed_content("datalists")
    state = torch.load(out / "model.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("head.fc.")}, path)  # fresh classifier
    count.write_text(str(len(lists["train"]) + len(lists["val"])))
    return path, int(count.read_text())


def pretrain_mae(args, work: Path, mask_mode: str) -> Path:
    """Members B / B': ConvNeXt-MAE on the target training images (no labels) -> encoder in ConvNeXt names."""
    out, path = work / f"pretrain_mae_{mask_mode}", work / f"mae_{mask_mode}_encoder.pt"
    if args.flag != "breastmnist":
        raise ValueError(f"--flag {args.flag}: the mae_pretrain bundle reads the target images as its 'us' "
                         "source, which is BreastMNIST train; pass a datalist to that bundle for another set")
    if args.reuse and path.is_file():
        return path
    run_bundle("mae_pretrain", output_dir=str(out), encoder_path=str(path), dataset_dir=args.data_root,
               network_name="convnext", mask_mode=mask_mode, masking_ratio=args.masking_ratio, modalities=["us"],
               image_size=args.size, batch_size=args.batch_size, max_epochs=1, epoch_length=args.mae_steps,
               learning_rate=args.mae_lr, data_limit=args.data_limit, seed=0, num_workers=0, resume=False,
               progress_bar=False, device=torch.device("cpu"),
               **{"networks#convnext#depths": list(args.depths), "networks#convnext#dims": list(args.dims),
                  "networks#convnext#decoder_dim": 2 * args.dims[-1],
                  # the classification bundle's grey preset, so pretraining sees the fine-tuning intensities
                  "train#presets#us": "$monai_ssl.transforms.XRayPresetd('image', load=False, "
                                      "spatial_size=@image_size, use_header_window=False)",
                  "train#handlers_by_name#reconstruction_images#_disabled_": True})
    return path


def finetune(args, work: Path, member: str, ckpt: Path | None, seed: int) -> dict:
    out = work / f"finetune_{member}_seed{seed}"
    kind = args.member_a_kind if member == "A" and args.member_a_ckpt else "convnext_mae"
    wf = run_bundle("classification", output_dir=str(out), flag=args.flag, seed=seed, max_epochs=args.epochs,
                    learning_rate=args.lr, pretrained_ckpt=str(ckpt) if ckpt else "", pretrained_kind=kind,
                    **convnext_overrides(args))
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    lists = wf.parser.get_parsed_content("datalists")
    return {"model": out / "model.pt", "val_auc": float(evaluator.state.best_metric),
            "best_epoch": int(evaluator.state.best_metric_epoch), "n_train": len(lists["train"]),
            "n_val": len(lists["val"])}


def evaluate(args, work: Path, name: str, ckpts: list[Path], seed: int) -> dict:
    """``evaluate.yaml`` on the test split: one model, or 2+ averaged (``--ensemble true``)."""
    out = work / f"eval_{name}_seed{seed}"
    ens = ({"ensemble": True, "ensemble_ckpts": [str(c) for c in ckpts]} if len(ckpts) > 1
           else {"ckpt_path": str(ckpts[0])})
    run_bundle("classification", ("train", "evaluate"), output_dir=str(out), flag=args.flag, seed=seed,
               n_boot=args.n_boot, **ens, **convnext_overrides(args))
    report = json.loads((out / "eval" / "metrics_test.json").read_text())["report"]
    with open(out / "eval" / "predictions_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    prob = np.array([float(r["prob_positive"]) for r in rows])
    label = np.array([int(r["label"]) for r in rows])
    return {"report": report, "prob": prob, "label": label}


def seed_mean_ci(probs: list[np.ndarray], label: np.ndarray, n_boot: int, minus: list[np.ndarray] | None = None):
    """Test AUC averaged over seeds (minus another set's, for a paired difference) with a 95 % percentile
    bootstrap over test images (the same resamples for every seed and both sets)."""
    from monai_ssl.metrics import bootstrap_ci, roc_auc

    k = len(probs)
    stacked = np.stack(probs + (minus or []), axis=1)

    def metric(p, y):
        value = np.mean([roc_auc(p[:, i], y) for i in range(k)])
        return value - (np.mean([roc_auc(p[:, i], y) for i in range(k, p.shape[1])]) if minus else 0.0)

    return bootstrap_ci(stacked, label, metric, n_boot=n_boot, seed=0)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)  # noqa: E731

    ckpts: dict[str, Path | None] = {"scratch": None}
    desc = dict(MEMBERS)  # member -> (pretraining, masking), as reported
    source_labels = 0
    if "A" in args.members and args.member_a_ckpt:
        ckpts["A"] = Path(args.member_a_ckpt)
        desc["A"] = (f"ImageNet ({Path(args.member_a_ckpt).name}, {args.member_a_kind})", "")
    elif "A" in args.members:
        ckpts["A"], source_labels = pretrain_source(args, work)
        log(f"member A pretrained (supervised {args.source_flag}, {source_labels} labels)")
    for member, mode in (("B", "entropy"), ("B_random", "random")):
        if member in args.members:
            ckpts[member] = pretrain_mae(args, work, mode)
            log(f"member {member} pretrained (ConvNeXt-MAE, {mode} masking, {args.mae_steps} steps)")

    rows, preds = [], {}
    common = {"dataset": args.flag, "image_size": args.size, "depths": "-".join(map(str, args.depths)),
              "dims": "-".join(map(str, args.dims)), "selected_on": "val"}
    for seed in args.seeds:
        runs = {}
        for member in args.members:
            runs[member] = finetune(args, work, member, ckpts[member], seed)
            ev = evaluate(args, work, member, [runs[member]["model"]], seed)
            preds[member, seed] = ev
            rows.append(_row(desc, common, member, seed, ev, runs[member], source_labels if member == "A" else 0,
                             val_auc=runs[member]["val_auc"], best_epoch=runs[member]["best_epoch"]))
            log(f"seed {seed} {member}: val AUC {runs[member]['val_auc']:.3f}, "
                f"test AUC {ev['report']['auc']['value']:.3f}")
        for name, (a, b) in ENSEMBLES.items():
            if a in runs and b in runs:
                ev = evaluate(args, work, name, [runs[a]["model"], runs[b]["model"]], seed)
                averaged = (preds[a, seed]["prob"] + preds[b, seed]["prob"]) / 2
                if not np.allclose(ev["prob"], averaged, atol=1e-5):
                    raise RuntimeError(f"{name} seed {seed}: the bundle's ensemble is not the mean of its members")
                preds[name, seed] = ev
                rows.append(_row(desc, common, name, seed, ev, runs[a], source_labels, val_auc=float("nan"),
                                 best_epoch=""))
                log(f"seed {seed} {name}: test AUC {ev['report']['auc']['value']:.3f}")
    _write_csv(out / "results.csv", rows)
    summary = _summary(args, rows, preds, time.perf_counter() - t0)
    (out / "summary.md").write_text(summary)
    log(f"wrote {out / 'results.csv'} and {out / 'summary.md'}")
    print(summary)
    return rows


def _row(desc: dict, common: dict, name: str, seed: int, ev: dict, run: dict, source_labels: int, **extra) -> dict:
    r = ev["report"]
    predicted = len(np.unique((ev["prob"] >= 0.5).astype(int)))
    pre, mask = desc.get(name, ("ensemble (probability average)", ""))
    if name in ENSEMBLES:
        mask = desc[ENSEMBLES[name][1]][1]
    return {**common, "model": name, "pretraining": pre, "masking": mask, "seed": seed, **extra,
            "test_auc": r["auc"]["value"], "test_auc_low": r["auc"]["low"], "test_auc_high": r["auc"]["high"],
            "test_accuracy": r["accuracy"]["value"], "test_balanced_accuracy": r["balanced_accuracy"]["value"],
            "test_f1": r["f1"]["value"], "n_test": int(r["n"]["value"]), "predicted_classes": predicted,
            "failed": "failed: predicts one class for every image" if predicted <= 1 else "",
            "n_labels_used": run["n_train"] + run["n_val"], "n_train_labels": run["n_train"],
            "n_val_labels": run["n_val"], "source_labels": source_labels}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _summary(args, rows: list[dict], preds: dict, seconds: float) -> str:
    names = [m for m in args.members] + [e for e in ENSEMBLES if all(m in args.members for m in ENSEMBLES[e])]
    lines = [f"# Florindo & Moura on {args.flag} (CPU-reduced)", "",
             f"Target: {args.flag} ({args.medmnist_size}-px release resized to {args.size} px), ConvNeXt depths "
             f"{args.depths}, widths {args.dims} (reduced from ConvNeXt-Tiny at 224 px to fit the CPU), "
             f"seeds {args.seeds}, fine-tuning {args.epochs} epochs at LR {args.lr}, checkpoint = best validation "
             f"AUC (selected_on = val), test scored once. "
             + (f"Member A: ImageNet ({args.member_a_ckpt}). " if args.member_a_ckpt else
                f"Member A is **not ImageNet**: no ImageNet file exists on this machine, so it is a ConvNeXt "
                f"trained supervised on {args.source_flag} ({args.source_epochs} epochs). ")
             + f"B / B_random: ConvNeXt-MAE ({args.mae_steps} steps, ratio "
             f"{args.masking_ratio}) on the target's training images, entropy-guided / random masking.", "",
             "| model | pretraining | test AUC, mean ± sd over seeds | seed-averaged test AUC [95 % CI] | "
             "val AUC (mean) | failed runs | labels used |", "|---|---|---|---|---|---|---|"]
    label = preds[next(iter(preds))]["label"]
    for name in names:
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        aucs = np.array([r["test_auc"] for r in rs], dtype=float)
        point, low, high = seed_mean_ci([preds[name, s]["prob"] for s in args.seeds], label, args.n_boot)
        val = np.nanmean([float(r["val_auc"]) for r in rs]) if name in MEMBERS else float("nan")
        failed = sum(bool(r["failed"]) for r in rs)
        masking = f" ({rs[0]['masking']} masking)" if rs[0]['masking'] else ""
        sd = aucs.std(ddof=1) if len(aucs) > 1 else 0.0
        lines.append(f"| {name} | {rs[0]['pretraining']}{masking} | "
                     f"{aucs.mean():.3f} ± {sd:.3f} | {point:.3f} [{low:.3f}, {high:.3f}] | "
                     f"{'' if np.isnan(val) else f'{val:.3f}'} | {failed}/{len(rs)} | {rs[0]['n_labels_used']}"
                     f"{' + ' + str(rs[0]['source_labels']) + ' source' if rs[0]['source_labels'] else ''} |")
    lines.append("")
    for a, b, what in (("B", "B_random", "entropy-guided minus random masking (member)"),
                       ("A+B", "A+B_random", "entropy-guided minus random masking (ensemble)"),
                       ("A+B", "A", "ensemble A+B minus member A"), ("A+B", "B", "ensemble A+B minus member B")):
        if (a, args.seeds[0]) in preds and (b, args.seeds[0]) in preds:
            d, low, high = seed_mean_ci([preds[a, s]["prob"] for s in args.seeds], label, args.n_boot,
                                        minus=[preds[b, s]["prob"] for s in args.seeds])
            lines.append(f"- {what}: seed-averaged test AUC difference {d:+.3f} [95 % CI {low:+.3f}, {high:+.3f}] "
                         "(paired bootstrap over test images)")
    reused = " (pretrained members reused from an earlier invocation's --work: --reuse)" if args.reuse else ""
    lines += ["", f"Wall time {seconds / 60:.1f} min on the shared CPU{reused}. Per-seed rows, with each run's own "
              "bootstrap CI, in results.csv. The paper's setting on a GPU (ConvNeXt-Tiny, 224 px): "
              "`python experiments/florindo_moura.py --medmnist-size 224 --size 224 --depths 3 3 9 3 "
              "--dims 96 192 384 768 --mae-steps 20000 --epochs 100 --member-a-ckpt convnext_tiny_1k_224_ema.pth "
              "--member-a-kind convnext_official` (the facebookresearch ImageNet-1k ConvNeXt-Tiny file; the bundle "
              "commands are in bundles/classification/docs/README.md).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
