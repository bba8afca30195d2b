"""SimCLR vs MICLe vs curricular SSL vs random init on the shipped COVID chest X-rays, by linear probe.

ResNet-18 (MONAI, 1 input channel, pooled 512-d features) is pretrained on the *training* patients' images of
``data/covid_cxr_256.npz`` (no labels used) by

* ``simclr``: two CXR-augmented views of each image (Azizi et al.'s CXR chain: crop, flip, rotation <= 45 deg,
  brightness/contrast 0.5, no blur), NT-Xent (tau 0.1);
* ``micle``: the same loss, but patients with 2+ images give pairs of two *different* images
  (:class:`monai_ssl.data.MultiInstanceDataset`); one epoch = one pass over patients, and the epoch count is scaled
  so MICLe gets the same number of optimisation steps as SimCLR;
* ``curriculum``: rotation -> jigsaw -> contrastive on one backbone (:func:`monai_ssl.apps.run_curriculum`),
  the SimCLR epoch budget split equally over the stages (or ``--order probe``: tasks ranked by a short run +
  validation linear probe, weakest first);
* ``random``: no pretraining.

Each encoder is then frozen and a logistic-regression probe on standardised pooled features
(:func:`monai_ssl.evaluation.fit_linear_probe`, class-balanced) is fitted on the training patients' labelled images
(label 1 = finding contains "COVID-19"; "todo" findings are unlabelled and only used for pretraining); its L2 weight
is chosen on validation AUC; test AUC is reported. Splits are patient-level (no patient in two splits), re-drawn per
seed together with the initialisation and augmentation. ``results/contrastive_covid`` was made with the
experiment's earlier own L-BFGS probe (same data term and penalties, but a random instead of a zero start and no
warm start across the L2 grid); on a 32 px smoke run both gave the same AUCs to every digit.

CPU smoke (a few minutes on 2 free cores)::

    python experiments/contrastive_covid.py --size 32 --epochs 1 --batch-size 16 --limit 64 --seeds 0 \
        --threads 1 --out /tmp/cc_smoke

Full run (GPU)::

    python experiments/contrastive_covid.py --size 128 --epochs 100 --seeds 0 1 2 --device cuda --amp
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

METHODS = ("random", "simclr", "micle", "curriculum")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="covid_cxr_256.npz (default: the shipped file)")
    p.add_argument("--size", type=int, default=128, help="image side for pretraining and probing")
    p.add_argument("--epochs", type=int, default=100, help="SimCLR epochs (MICLe: same steps; curriculum: split)")
    p.add_argument("--stage-epochs", type=int, nargs=3, default=None, metavar=("ROT", "JIG", "CON"),
                   help="curriculum epochs per stage (default: epochs // 3 each)")
    p.add_argument("--order", default="user", choices=("user", "probe"), help="curriculum order")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--stem-stride", type=int, default=2, help="ResNet-18 7x7 stem stride (MONAI default: 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (warm-up + cosine)")
    p.add_argument("--weight-decay", type=float, default=1e-6)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads in the main process")
    p.add_argument("--limit", type=int, default=None, help="pretrain on at most N training images (smoke runs)")
    p.add_argument("--out", default="results/contrastive_covid")
    p.add_argument("--resume", action="store_true", help="keep <out>/results.csv rows and skip their (seed, method)")
    p.add_argument("--ckpt-dir", default=None, help="curriculum stage checkpoints (default: <out>/checkpoints)")
    p.add_argument("--save-encoders", default=None, metavar="DIR",
                   help="save each pretrained encoder as DIR/<method>_seed<seed>.pt "
                        "(for re-probing without retraining)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------- data
def load_splits(path: str | None, size: int, seed: int) -> dict[str, list[dict]]:
    """Patient-level train/val/test split of the COVID CXR datalist, images resized to ``size``."""
    from monai.transforms import Resize
    from monai.utils import convert_to_tensor

    from monai_ssl.data import load_covid_cxr, patient_split

    items = load_covid_cxr(path)
    resize = Resize((size, size), mode="area")
    for d in items:
        d["image"] = convert_to_tensor(resize(d["image"]), dtype=torch.float32, track_meta=False).contiguous()
    return patient_split(items, fractions=(0.7, 0.15, 0.15), seed=seed)


def _loader(dataset: Any, batch_size: int, workers: int, seed: int) -> Any:
    from monai_ssl.data import SeededDataLoader

    return SeededDataLoader(
        dataset, seed=seed, batch_size=min(batch_size, len(dataset)), shuffle=True, drop_last=True, num_workers=workers,
        pin_memory=torch.cuda.is_available(),
    )


def simclr_loader(items: list[dict], args: argparse.Namespace, seed: int) -> Any:
    from monai.data import Dataset

    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    views = RandMultiViewd("image", cxr_augmentations(args.size), num_views=2, delete_original=True)
    data = [{"image": d["image"]} for d in items]
    return _loader(Dataset(data, views.set_random_state(seed)), args.batch_size, args.workers, seed)


def micle_loader(items: list[dict], args: argparse.Namespace, seed: int) -> Any:
    from monai_ssl.data import MultiInstanceDataset
    from monai_ssl.transforms import cxr_augmentations

    data = [{"image": d["image"], "patient_id": d["patient_id"]} for d in items]
    ds = MultiInstanceDataset(data, cxr_augmentations(args.size), seed=seed)
    return _loader(ds, args.batch_size, args.workers, seed)


def pretext_loader(items: list[dict], task: str, args: argparse.Namespace, seed: int) -> Any:
    from monai.data import Dataset
    from monai.transforms import Compose, RandFlipd

    from monai_ssl.transforms import RandResizedCropd
    from monai_ssl.transforms.pretext import RandJigsawd, RandRotationPretextd

    if task == "rotation":
        chain = Compose([RandResizedCropd("image", args.size, scale=(0.5, 1.0)), RandFlipd("image", 0.5, 1),
                         RandRotationPretextd("image")])
    else:
        chain = Compose([RandFlipd("image", 0.5, 1), RandJigsawd("image", num_permutations=100)])
    data = [{"image": d["image"]} for d in items]
    return _loader(Dataset(data, chain.set_random_state(seed)), args.batch_size, args.workers, seed)


# ---------------------------------------------------------------------------------------------- model
def make_encoder(seed: int, stem_stride: int = 2) -> nn.Module:
    """MONAI ResNet-18 returning (B, 512) pooled features; stem stride 2 is the ImageNet ResNet stem (MONAI's
    default 1 keeps full resolution in the 7x7 stem: 4x the compute)."""
    from monai.networks.nets import resnet18

    torch.manual_seed(seed)
    return resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=stem_stride)


def _optimizer_fn(args: argparse.Namespace):
    from monai_ssl.optimizers import build_optimizer

    return lambda model: build_optimizer(model, "adamw", lr=args.lr, weight_decay=args.weight_decay)


def pretrain_contrastive(loader: Any, epochs: int, seed: int, args: argparse.Namespace, work: Path
                         ) -> tuple[nn.Module, dict[str, Any]]:
    """SimCLR / MICLe pretraining through the ``micle_pretrain`` bundle, ``loader`` (its views or patient pairs)
    replacing the bundle's loader; returns the trained encoder and a stage summary (``name``, ``iterations``,
    per-epoch mean ``epoch_losses``). The bundle's checkpoints, logs and exported encoder go to ``work``."""
    from ignite.engine import Events

    from monai_ssl.apps import run_bundle

    losses: list[float] = []
    epoch_losses: list[float] = []

    def watch(wf) -> None:
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))

        def close_epoch(_: Any) -> None:
            epoch_losses.append(sum(losses) / max(1, len(losses)))
            losses.clear()

        trainer.add_event_handler(Events.EPOCH_COMPLETED, close_epoch)

    wf = run_bundle(
        REPO / "bundles" / "micle_pretrain", before_run=watch, output_dir=str(work), seed=seed,
        max_epochs=epochs, learning_rate=args.lr, weight_decay=args.weight_decay, temperature=args.temperature,
        stem_stride=args.stem_stride, amp=args.amp, device=torch.device(args.device), resume=False,
        progress_bar=False, **{"train#dataloader": loader},
    )
    iterations = wf.parser.get_parsed_content("train#trainer").state.iteration
    return wf.parser.get_parsed_content("encoder"), {"task": "contrastive", "name": "contrastive",
                                                     "iterations": iterations, "epoch_losses": epoch_losses}


def contrastive_stage(loader: Any, epochs: int, args: argparse.Namespace) -> Any:
    from monai_ssl.engines import CurriculumStage
    from monai_ssl.losses import NTXentLoss

    return CurriculumStage("contrastive", loader, epochs=epochs, loss_function=NTXentLoss(args.temperature),
                           optimizer_fn=_optimizer_fn(args), trainer_kwargs={"amp": args.amp})


# ---------------------------------------------------------------------------------------------- probe
@torch.no_grad()
def extract(encoder: nn.Module, items: list[dict], device: str, batch: int = 256) -> torch.Tensor:
    was = encoder.training
    encoder.eval()
    x = torch.stack([d["image"] for d in items])
    out = [encoder(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)]
    encoder.train(was)
    return torch.cat(out)


def linear_probe(encoder: nn.Module, splits: dict[str, list[dict]], device: str,
                 l2_grid=(2e-4, 2e-3, 2e-2, 2e-1, 2.0)) -> dict[str, float]:
    """Class-balanced logistic regression on frozen, standardised features
    (:func:`~monai_ssl.evaluation.fit_linear_probe`); L2 chosen on val AUC; test AUC of that model.

    ``l2`` is the library's strength (penalty ``l2 / 2 * ||w||^2``): the grid is the ``1e-4 ... 1`` of the
    experiment's earlier own probe (penalty ``l2 * ||w||^2``) doubled, so the same penalties are tried.
    """
    from monai_ssl.evaluation import fit_linear_probe
    from monai_ssl.metrics import auc_score

    feats, labels = {}, {}
    for name in ("train", "val", "test"):
        items = [d for d in splits[name] if d["label"] >= 0]
        feats[name] = extract(encoder, items, device)
        labels[name] = torch.tensor([int(d["label"]) for d in items])
    probe = fit_linear_probe(feats["train"], labels["train"], feats["val"], labels["val"], task="binary",
                             l2_grid=l2_grid, class_balanced=True)
    return {"l2": probe.l2, "val_auc": float(probe.val_score),
            "test_auc": float(auc_score(probe.predict_proba(feats["test"]), labels["test"])),
            "selected_on": "val", "n_labels_used": len(labels["train"]) + len(labels["val"])}


# ---------------------------------------------------------------------------------------------- runs
def run_method(method: str, seed: int, splits: dict, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import shutil
    import tempfile

    from monai_ssl.apps import run_curriculum
    from monai_ssl.engines import CurriculumStage

    encoder = make_encoder(seed, args.stem_stride).to(args.device)  # random init; simclr / micle: the bundle's
    train = splits["train"][: args.limit] if args.limit else splits["train"]
    start = time.perf_counter()
    info: dict[str, Any] = {"stages": []}
    if method in ("simclr", "micle"):
        if method == "simclr":
            loader, epochs = simclr_loader(train, args, seed), args.epochs
        else:
            loader = micle_loader(train, args, seed)
            steps = args.epochs * (len(train) // min(args.batch_size, len(train)))
            epochs = max(1, round(steps / len(loader)))  # same optimisation steps as SimCLR
        work = Path(tempfile.mkdtemp(prefix=f"{method}_bundle_", dir=out))
        try:
            encoder, stage = pretrain_contrastive(loader, epochs, seed, args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        info["stages"] = [stage]
    elif method == "curriculum":
        e_rot, e_jig, e_con = args.stage_epochs or [max(1, args.epochs // 3)] * 3
        opt = _optimizer_fn(args)
        stages = [
            CurriculumStage("rotation", pretext_loader(train, "rotation", args, seed), epochs=e_rot,
                            optimizer_fn=opt, trainer_kwargs={"amp": args.amp}),
            CurriculumStage("jigsaw", pretext_loader(train, "jigsaw", args, seed), epochs=e_jig,
                            optimizer_fn=opt, trainer_kwargs={"amp": args.amp}),
            contrastive_stage(simclr_loader(train, args, seed), e_con, args),
        ]
        probe_fn = (lambda enc: linear_probe(enc, splits, args.device)["val_auc"]) if args.order == "probe" else None
        result = run_curriculum(stages, encoder, 512, order=args.order, probe_fn=probe_fn,
                                probe_epochs=max(1, min(e_rot, e_jig, e_con) // 3),
                                device=args.device,
                                output_dir=Path(args.ckpt_dir or out / "checkpoints") / f"curriculum_seed{seed}")
        info = {"stages": result["stages"], "order": result["order"], "probe": result["probe"]}
    seconds = time.perf_counter() - start
    gc.collect()  # drop this run's worker-backed loaders before the next run forks new workers
    if args.save_encoders:
        Path(args.save_encoders).mkdir(parents=True, exist_ok=True)
        torch.save(encoder.state_dict(), Path(args.save_encoders) / f"{method}_seed{seed}.pt")
    probe = linear_probe(encoder, splits, args.device)
    losses = [s["epoch_losses"][-1] for s in info["stages"]]
    return {"seed": seed, "method": method, **probe, "pretrain_s": round(seconds, 1),
            "steps": sum(s["iterations"] for s in info["stages"]),
            "final_losses": ";".join(f"{s['name']}={s['epoch_losses'][-1]:.3f}" for s in info["stages"]) or "-",
            "order": "->".join(info.get("order", [])) or "-", "n_loss_ok": all(math.isfinite(v) for v in losses)}


def summarise(rows: list[dict], args: argparse.Namespace) -> str:
    lines = ["| method | test AUC (mean ± std) | val AUC (mean ± std) | seeds | steps | pretrain s/seed |",
             "|---|---|---|---|---|---|"]
    for m in args.methods:
        r = [row for row in rows if row["method"] == m]
        if not r:
            continue
        t, v = [row["test_auc"] for row in r], [row["val_auc"] for row in r]

        def sd(a):
            return statistics.stdev(a) if len(a) > 1 else float("nan")

        lines.append(f"| {m} | {statistics.mean(t):.3f} ± {sd(t):.3f} | {statistics.mean(v):.3f} ± {sd(v):.3f} | "
                     f"{len(r)} | {r[0]['steps']} | {statistics.mean(row['pretrain_s'] for row in r):.0f} |")
    return "\n".join(lines)


def read_rows(path: Path) -> list[dict]:
    """Rows of an earlier ``results.csv`` with numbers parsed back (empty if the file does not exist)."""
    if not path.exists():
        return []
    numeric = {"seed": int, "steps": int, "l2": float, "val_auc": float, "test_auc": float, "pretrain_s": float,
               "n_labels_used": int}
    with open(path, newline="") as f:
        return [{k: numeric.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(out / "results.csv") if args.resume else []
    done = {(row["seed"], row["method"]) for row in rows}
    for seed in args.seeds:
        if all((seed, m) in done for m in args.methods):
            continue
        t0 = time.perf_counter()
        splits = load_splits(args.data, args.size, seed)
        counts = {k: (len(v), sum(d["label"] == 1 for d in v), sum(d["label"] == 0 for d in v))
                  for k, v in splits.items() if k in ("train", "val", "test")}
        print(f"seed {seed}: (images, covid, other) per split {counts} ({time.perf_counter() - t0:.1f}s)", flush=True)
        for method in args.methods:
            if (seed, method) in done:
                continue
            row = run_method(method, seed, splits, args, out)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(out / "results.csv", "w", newline="") as f:  # rewritten after every run: partial runs survive
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
                writer.writerows(rows)
    table = summarise(rows, args)
    settings = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    (out / "summary.md").write_text(f"settings: `{settings}`\n\n{table}\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
