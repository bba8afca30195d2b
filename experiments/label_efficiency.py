"""Label efficiency on PneumoniaMNIST (28 px): MONAI ResNet-18 from scratch vs SimCLR-pretrained, fine-tuned.

* ``scratch``: ``monai.networks.nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)``.
* ``simclr``: the same network whose encoder (everything but ``fc``) is first pretrained by SimCLR on the
  PneumoniaMNIST **train images without labels** (:class:`~monai_ssl.engines.ContrastiveTrainer` through
  :func:`~monai_ssl.engines.run_stage`, :class:`~monai_ssl.losses.NTXentLoss`, two
  :class:`~monai_ssl.transforms.RandMultiViewd` views of :func:`~monai_ssl.transforms.cxr_augmentations` at 28 px
  with a milder crop scale, since 8 % of a 28 px image is a 8 px patch). Pretraining runs once (seed
  ``--pretrain-seed``) and the encoder is cached in ``--ckpt`` (reused by reruns); the same
  encoder initialises all fine-tuning seeds.

Both are fine-tuned end-to-end identically (:func:`~monai_ssl.evaluation.finetune_classifier`: AdamW, warm-up +
cosine, 2-output softmax CE, random horizontal flips) for a fixed number of optimisation steps per label fraction
(``--steps``: the CPU budget), on nested label-stratified subsets of the official train split
(:func:`~monai_ssl.data.label_fraction_subset`; PneumoniaMNIST has no patient ids, so each image is its own
"patient"), and scored by AUC (+ accuracy, balanced accuracy, F1) on the official test split (624 images).
:func:`~monai_ssl.evaluation.run_label_efficiency` writes ``results.csv`` after every run (``--resume`` is the
default: rerunning continues), ``summary.md`` and ``label_efficiency.png``.

CPU smoke (about a minute)::

    python experiments/label_efficiency.py --fractions 0.01 0.1 --seeds 0 --steps 2 2 --pretrain-steps 2 \
        --batch-size 16 --out /tmp/le_smoke

Small CPU budget (the committed run; the exact command is in ``<out>/summary.md``)::

    python experiments/label_efficiency.py --out results/label_efficiency
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

INITS = ("scratch", "simclr")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None, help="folder with pneumoniamnist.npz (default: shipped data)")
    p.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, nargs="+", default=[60, 100, 150],
                   help="fine-tuning optimisation steps per label fraction (one value, or one per fraction)")
    p.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning AdamW peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the fine-tuning steps")
    p.add_argument("--layer-decay", type=float, default=None,
                   help="stage-wise LR decay for fine-tuning (both inits); default: one learning rate")
    p.add_argument("--stem-stride", type=int, default=2, help="ResNet-18 7x7 stem stride (MONAI default 1: 4x cost)")
    p.add_argument("--pretrain-steps", type=int, default=150, help="SimCLR optimisation steps")
    p.add_argument("--pretrain-batch-size", type=int, default=64, help="SimCLR images per step (x2 views)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--crop-scale", type=float, nargs=2, default=[0.3, 1.0], help="SimCLR random-resized-crop area")
    p.add_argument("--pretrain-seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--out", default="results/label_efficiency")
    p.add_argument("--ckpt", default=None, help="SimCLR encoder cache (default: <out>/simclr_encoder.pt)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing results.csv (default: resume)")
    args = p.parse_args(argv)
    if len(args.steps) == 1:
        args.steps = args.steps * len(args.fractions)
    if len(args.steps) != len(args.fractions):
        p.error(f"--steps needs 1 or {len(args.fractions)} values, got {len(args.steps)}")
    return args


def load_splits(root: str | None) -> dict[str, list[dict]]:
    """Official PneumoniaMNIST splits as lists of ``{"image": (1, 28, 28) float tensor, "label": int}``."""
    from monai_ssl.data import MedMNISTDataset

    out = {}
    for split in ("train", "val", "test"):
        ds = MedMNISTDataset(root, "pneumoniamnist", split)
        images = torch.from_numpy(ds.images).float().div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
        out[split] = [{"image": images[i], "label": int(ds.labels[i].reshape(-1)[0])} for i in range(len(images))]
    return out


def make_classifier(seed: int, stem_stride: int) -> torch.nn.Module:
    from monai.networks.nets import resnet18

    torch.manual_seed(seed)
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=stem_stride)


def pretrain_simclr(train_items: list[dict], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """SimCLR on the train images (labels unused); saves the encoder state dict to ``path``."""
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import resnet18

    from monai_ssl.engines import CurriculumStage, build_optimizer, run_stage
    from monai_ssl.losses import NTXentLoss
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    seed = args.pretrain_seed
    torch.manual_seed(seed)
    encoder = resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=args.stem_stride)
    views = RandMultiViewd("image", cxr_augmentations(28, crop_scale=tuple(args.crop_scale)), num_views=2,
                           delete_original=True).set_random_state(seed)
    data = Dataset([{"image": d["image"]} for d in train_items], views)  # no labels
    loader = DataLoader(data, batch_size=args.pretrain_batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    stage = CurriculumStage(
        "contrastive", loader, epochs=1, loss_function=NTXentLoss(args.temperature),
        optimizer_fn=lambda m: build_optimizer(m, "adamw", lr=args.pretrain_lr, weight_decay=1e-6),
        trainer_kwargs={"epoch_length": args.pretrain_steps},
    )
    summary = run_stage(stage, encoder, 512, args.device)
    torch.save({k: v.cpu() for k, v in encoder.state_dict().items()}, path)
    return summary


def load_encoder(model: torch.nn.Module, path: Path) -> Any:
    """Copy the cached SimCLR encoder (MONAI ResNet names, no ``fc``) into ``model``; report of what loaded."""
    from monai_ssl.networks.weights import load_checkpoint_weights, load_mapped_state_dict

    return load_mapped_state_dict(model, load_checkpoint_weights(path), min_loaded_fraction=0.99, verbose=False)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from monai.data import DataLoader, Dataset
    from monai.transforms import RandFlipd

    from monai_ssl.evaluation import classification_metrics, finetune_classifier, predict_proba, run_label_efficiency

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(args.data_root)
    settings = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    print(f"label efficiency: {settings}; train/val/test {[len(v) for v in splits.values()]}", flush=True)

    log_lines: list[str] = []
    ckpt = Path(args.ckpt) if args.ckpt else out / "simclr_encoder.pt"
    if "simclr" in args.inits and not ckpt.exists():
        t0 = time.perf_counter()
        s = pretrain_simclr(splits["train"], args, ckpt)
        line = (f"SimCLR pretraining: {s['iterations']} steps x {args.pretrain_batch_size} images x 2 views, "
                f"loss {s['epoch_losses'][-1]:.3f}, {time.perf_counter() - t0:.0f}s")
        print(line, flush=True)
        log_lines.append(line)

    def init_fn(name: str):
        def make(seed: int) -> torch.nn.Module:
            model = make_classifier(seed, args.stem_stride)  # fc seeded identically for both inits
            if name == "simclr":
                load_encoder(model, ckpt)
            return model

        return make

    steps_of = dict(zip(args.fractions, args.steps))
    def train_fn(model, labelled, val, seed, fraction):
        ds = Dataset(labelled, RandFlipd("image", prob=0.5, spatial_axis=1).set_random_state(seed))
        loader = DataLoader(ds, batch_size=min(args.batch_size, len(labelled)), shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)
        steps = steps_of[fraction]
        finetune_classifier(model, loader, None, epochs=1, epoch_length=steps, lr=args.lr,
                            warmup_epochs=args.warmup, weight_decay=args.weight_decay, layer_decay=args.layer_decay,
                            device=args.device, task="binary")

    def eval_fn(model, test):
        probs, labels = predict_proba(model, DataLoader(test, batch_size=256), args.device, "binary")
        return classification_metrics(probs, labels, "binary")

    data = {k: splits[k] for k in ("train", "val", "test")}
    rows = run_label_efficiency(data, {n: init_fn(n) for n in args.inits}, train_fn, eval_fn, out,
                                fractions=args.fractions, seeds=args.seeds, resume=not args.fresh)
    summary = (out / "summary.md").read_text()
    header = [f"# Label efficiency: PneumoniaMNIST 28 px, official test split ({len(splits['test'])} images)", "",
              f"command: `python experiments/label_efficiency.py {settings}`", "",
              f"fine-tuning steps per fraction: {steps_of}, batch {args.batch_size}, AdamW lr {args.lr}, "
              f"ResNet-18 stem stride {args.stem_stride}", *log_lines, ""]
    (out / "summary.md").write_text("\n".join(header) + "\n" + summary)
    print(summary)
    return rows


if __name__ == "__main__":
    main()
