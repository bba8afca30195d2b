"""Label efficiency: MONAI ResNet-18 from scratch vs SSL-pretrained (SimCLR, MICLe), fine-tuned on 1/10/100 % labels.

Two datasets (``--dataset``):

* ``pneumoniamnist`` (default): PneumoniaMNIST 28 px, official splits (no patient ids, so each image is its own
  "patient"), test = the official test split (624 images). Inits ``scratch`` and ``simclr``.
* ``covid``: the shipped multi-instance COVID CXR (559 images, 329 patients), COVID-19 vs other finding, resized to
  ``--size`` (default 64 px), one patient-level 70/15/15 split (``--split-seed``) shared by every run so all inits
  and seeds meet the same test patients. Inits ``scratch``, ``simclr`` and ``micle`` (positives: two different
  images of one patient, :class:`~monai_ssl.data.MultiInstanceDataset`). Pretraining sees the training patients'
  images only, including the upstream "todo" (unlabelled) ones; fine-tuning and testing use labelled images.

* ``scratch``: ``monai.networks.nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)``.
* ``simclr`` / ``micle``: the same network whose encoder (everything but ``fc``) is first pretrained on the
  training images **without labels** (:class:`~monai_ssl.engines.ContrastiveTrainer` through
  :func:`~monai_ssl.engines.run_stage`, :class:`~monai_ssl.losses.NTXentLoss`, two views of
  :func:`~monai_ssl.transforms.cxr_augmentations` with a milder crop scale than 224 px training uses, since 8 % of
  a 28 px image is an 8 px patch). Pretraining runs once per init (seed ``--pretrain-seed``) and the encoder is
  cached in ``<out>/<init>_encoder.pt`` (reused by reruns); the same encoder initialises all fine-tuning seeds.

Every init is fine-tuned end-to-end identically (:func:`~monai_ssl.evaluation.finetune_classifier`: AdamW,
warm-up + cosine, 2-output softmax CE, random horizontal flips) for a fixed number of optimisation steps per label
fraction (``--steps``: the CPU budget), on nested label-stratified subsets of the training split
(:func:`~monai_ssl.data.label_fraction_subset`, whole patients), and scored by AUC (+ accuracy, balanced accuracy,
F1) on the test split. :func:`~monai_ssl.evaluation.run_label_efficiency` writes ``results.csv`` after every run
(``--resume`` is the default: rerunning continues), ``summary.md`` and ``label_efficiency.png``.

CPU smoke (about a minute)::

    python experiments/label_efficiency.py --fractions 0.01 0.1 --seeds 0 --steps 2 2 --pretrain-steps 2 \
        --batch-size 16 --out /tmp/le_smoke

Small CPU budgets (the committed runs; the exact commands are in ``<out>/summary.md``)::

    python experiments/label_efficiency.py --out results/label_efficiency
    python experiments/label_efficiency.py --dataset covid --out results/label_efficiency_covid
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

INITS = ("scratch", "simclr", "micle")
PRETTY = {"simclr": "SimCLR", "micle": "MICLe"}
DEFAULT_INITS = {"pneumoniamnist": ["scratch", "simclr"], "covid": ["scratch", "simclr", "micle"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pneumoniamnist", choices=("pneumoniamnist", "covid"))
    p.add_argument("--data-root", default=None, help="folder with the dataset's .npz (default: shipped data)")
    p.add_argument("--size", type=int, default=None, help="image side (default: 28 PneumoniaMNIST, 64 COVID)")
    p.add_argument("--split-seed", type=int, default=0, help="COVID patient-level split seed (fixed for all runs)")
    p.add_argument("--test-split", default="test", choices=("test", "val+test"),
                   help="COVID: score on the test patients (15 %%) or on val + test (30 %%, twice the negatives; the "
                        "runner uses no validation data: fixed step budgets, no model selection)")
    p.add_argument("--inits", nargs="+", default=None, choices=INITS,
                   help="default: scratch simclr (PneumoniaMNIST), scratch simclr micle (COVID)")
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
    p.add_argument("--ckpt-dir", default=None, help="pretrained encoder cache <init>_encoder.pt (default: <out>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing results.csv (default: resume)")
    args = p.parse_args(argv)
    args.inits = args.inits or DEFAULT_INITS[args.dataset]
    args.size = args.size or (28 if args.dataset == "pneumoniamnist" else 64)
    if "micle" in args.inits and args.dataset != "covid":
        p.error("micle needs patient ids: use --dataset covid")
    if len(args.steps) == 1:
        args.steps = args.steps * len(args.fractions)
    if len(args.steps) != len(args.fractions):
        p.error(f"--steps needs 1 or {len(args.fractions)} values, got {len(args.steps)}")
    return args


def load_splits(args: argparse.Namespace) -> dict[str, list[dict]]:
    """``{"train", "val", "test", "pretrain"}`` lists of ``{"image": (1, S, S) float tensor in [0, 1], "label": int}``
    (+ ``patient_id`` for COVID). ``pretrain`` is the training split's images, unlabelled ones included."""
    if args.dataset == "pneumoniamnist":
        from monai_ssl.data import MedMNISTDataset

        out = {}
        for split in ("train", "val", "test"):
            ds = MedMNISTDataset(args.data_root, "pneumoniamnist", split)
            images = torch.from_numpy(ds.images).float().div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
            if args.size != images.shape[-1]:
                images = torch.nn.functional.interpolate(images, size=args.size, mode="bilinear", antialias=True)
            out[split] = [{"image": images[i], "label": int(ds.labels[i].reshape(-1)[0])} for i in range(len(images))]
        out["pretrain"] = out["train"]
        return out

    from monai.transforms import Resize
    from monai.utils import convert_to_tensor

    from monai_ssl.data import load_covid_cxr, patient_split

    items = load_covid_cxr(Path(args.data_root) / "covid_cxr_256.npz" if args.data_root else None)
    resize = Resize((args.size, args.size), mode="area")
    keep = ("image", "label", "patient_id")
    items = [{**{k: d[k] for k in keep},
              "image": convert_to_tensor(resize(d["image"]), dtype=torch.float32, track_meta=False).contiguous()}
             for d in items]
    split = patient_split(items, fractions=(0.7, 0.15, 0.15), seed=args.split_seed)
    out = {k: [d for d in split[k] if d["label"] >= 0] for k in ("train", "val", "test")}
    if getattr(args, "test_split", "test") == "val+test":  # held-out patients = val + test; nothing left to tune on
        out["test"], out["val"] = out["val"] + out["test"], []
    out["pretrain"] = split["train"]
    return out


def make_classifier(seed: int, stem_stride: int) -> torch.nn.Module:
    from monai.networks.nets import resnet18

    torch.manual_seed(seed)
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=stem_stride)


def pretrain_encoder(kind: str, items: list[dict], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """SimCLR (two views of one image) or MICLe (two different images of one patient where it has 2+) on
    ``items`` with labels unused; saves the encoder state dict to ``path``."""
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import resnet18

    from monai_ssl.data import MultiInstanceDataset
    from monai_ssl.engines import CurriculumStage, build_optimizer, run_stage
    from monai_ssl.losses import NTXentLoss
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    seed = args.pretrain_seed
    torch.manual_seed(seed)
    encoder = resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False, conv1_t_stride=args.stem_stride)
    augment = cxr_augmentations(args.size, crop_scale=tuple(args.crop_scale))
    if kind == "micle":  # one patient bag per item
        data = MultiInstanceDataset([{"image": d["image"], "patient_id": d["patient_id"]} for d in items], augment,
                                    seed=seed)
    else:
        views = RandMultiViewd("image", augment, num_views=2, delete_original=True).set_random_state(seed)
        data = Dataset([{"image": d["image"]} for d in items], views)  # no labels
    loader = DataLoader(data, batch_size=min(args.pretrain_batch_size, len(data)), shuffle=True, drop_last=True,
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
    splits = load_splits(args)
    settings = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    print(f"label efficiency: {settings}; train/val/test/pretrain {[len(v) for v in splits.values()]}", flush=True)

    ckpt_dir = Path(args.ckpt_dir) if args.ckpt_dir else out
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpts = {name: ckpt_dir / f"{name}_encoder.pt" for name in args.inits if name != "scratch"}
    for name, ckpt in ckpts.items():
        if not ckpt.exists():  # pretrain once; the log line is kept next to the results for the summary
            t0 = time.perf_counter()
            run = pretrain_encoder(name, splits["pretrain"], args, ckpt)
            line = (f"{PRETTY[name]} pretraining: {run['iterations']} steps x {args.pretrain_batch_size} "
                    f"{'patients' if name == 'micle' else 'images'} x 2 views, loss {run['epoch_losses'][-1]:.3f}, "
                    f"{time.perf_counter() - t0:.0f}s")
            print(line, flush=True)
            (ckpt_dir / f"{name}_pretrain.txt").write_text(line + "\n")  # describes the cached encoder

    def init_fn(name: str):
        def make(seed: int) -> torch.nn.Module:
            model = make_classifier(seed, args.stem_stride)  # fc seeded identically for every init
            if name in ckpts:
                load_encoder(model, ckpts[name])
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
    test = splits["test"]
    what = (f"PneumoniaMNIST {args.size} px, official test split ({len(test)} images)" if args.dataset == "pneumoniamnist"
            else f"COVID CXR {args.size} px, COVID-19 vs other finding, patient-level split seed {args.split_seed} "
                 f"({'val + test' if args.test_split == 'val+test' else 'test'}: {len(test)} images of {len({d['patient_id'] for d in test})} patients, "
                 f"{sum(d['label'] == 0 for d in test)} other)")
    log_lines = [(ckpt_dir / f"{n}_pretrain.txt").read_text().strip() for n in sorted(ckpts)
                 if (ckpt_dir / f"{n}_pretrain.txt").is_file()]
    header = [f"# Label efficiency: {what}", "",
              f"command: `python experiments/label_efficiency.py {settings}`", "",
              f"fine-tuning steps per fraction: {steps_of}, batch {args.batch_size}, AdamW lr {args.lr}, "
              f"ResNet-18 stem stride {args.stem_stride}", *log_lines, ""]
    (out / "summary.md").write_text("\n".join(header) + "\n" + summary)
    print(summary)
    return rows


if __name__ == "__main__":
    main()
