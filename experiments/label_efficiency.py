"""Label efficiency: MONAI ResNet-18 or ViT from scratch vs SSL-pretrained (SimCLR, MICLe, MAE), 1/10/100 % labels.

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
  cached in ``<ckpt-dir>/<init>_encoder.pt`` (default ``--out``; reused by reruns) with its log line in
  ``<init>_pretrain.txt``; the same encoder initialises all fine-tuning seeds.

``--arch vit`` swaps the network for a small MONAI ``ViT`` classifier (:data:`VIT`: hidden 96, 4 blocks of 3
heads, MLP 384 (0.45 M parameters: a 192-wide, 6-block ViT costs 4x more per step, about 5 s per batch of 32 on
the shared CPU), patch 4 up to 32 px (49 tokens at 28 px), 8 up to 128 px, else 16; ``classification=True`` with a
class token and a plain linear 2-way head (MONAI's default ``Tanh`` post-activation would cap the logits at +-1);
fixed sin-cos position table, no qkv bias). Inits:

* ``scratch``: that ViT from its seeded random init;
* ``mae``: the same ViT whose encoder (patch embedding, blocks, final norm) is first pretrained as a
  :class:`~monai_ssl.networks.nets.MaskedAutoencoderViT` (same encoder config, decoder :data:`MAE_DECODER`, 75 %
  of the patches masked, norm-pix loss) on the ``pretrain`` images without labels, through
  :func:`~monai_ssl.engines.run_stage` (a ``"masked"`` :class:`~monai_ssl.engines.CurriculumStage`:
  :class:`~monai_ssl.engines.MaskedAutoencoderTrainer`, AdamW betas (0.9, 0.95), weight decay 0.05, warm-up +
  cosine), views from :func:`~monai_ssl.transforms.mae_augmentations` (random resized crop ``--mae-crop-scale``,
  default 50-100 % area since 28 px is small, and a horizontal flip). ``mae_encoder.pt`` holds the encoder in
  MONAI ``ViT`` names and loads with :func:`~monai_ssl.networks.load_pretrained` (``kind="mae_vit"``),
  which must place every cached tensor; only the class token and the head stay fresh (the MAE has no class token).

SimCLR / MICLe need ``--arch resnet18`` (the default) and MAE needs ``--arch vit``; an output folder remembers its
network (``network.txt``) so a resumed run cannot mix ResNet and ViT rows under one init name.

Selection protocol (:func:`~monai_ssl.apps.run_label_efficiency`): at label fraction ``f`` a run sees
``f`` of the training labels (nested, label-stratified subsets, whole patients:
:func:`~monai_ssl.data.label_fraction_subset`) and the same fraction ``f`` of the validation labels; both count in
``n_labels_used``. Every init tries the same candidate grid (``--recipes tuned``, :data:`RECIPE_GRIDS`): end-to-end
fine-tuning (:func:`~monai_ssl.evaluation.finetune_classifier`: AdamW, warm-up + cosine, class-balanced 2-output
softmax CE, random horizontal flips, ``--steps`` optimisation steps per fraction) at two learning rates, each with
one LR and with a per-stage / per-block LR decay of 0.5 (:func:`~monai_ssl.evaluation.layerwise_lr_decay_groups`),
and a frozen-encoder logistic-regression probe (L2 chosen on the same validation subset). The candidate with the
best validation AUC (ties: lower validation log-loss) that does not predict one class for every validation image is
scored on the test split, once:
AUC with a 1,000-resample bootstrap 95 % CI, accuracy, balanced accuracy, F1. A chosen model that predicts one class
for every test image is a failed run (``status``), left out of the means. The pretraining recipes (SimCLR: crops of
30-100 % area, 150 steps; MAE: 400 steps) are fixed a priori, not tuned. ``results.csv`` is written after every run
(rerunning continues unless ``--fresh``), with ``summary.md`` and ``label_efficiency.png``.

CPU smoke (about a minute)::

    python experiments/label_efficiency.py --fractions 0.01 0.1 --seeds 0 --steps 2 2 --pretrain-steps 2 \
        --batch-size 16 --out /tmp/le_smoke

The committed runs (2-core CPU; the exact commands are in ``<out>/summary.md``)::

    python experiments/label_efficiency.py --workers 1 --out results/label_efficiency
    python experiments/label_efficiency.py --arch vit --inits scratch mae --pretrain-steps 400 \
        --out results/label_efficiency_vit

COVID CXR (``--dataset covid``: 64 px, one patient-level 70/15/15 split, recipes chosen on the validation
patients)::

    python experiments/label_efficiency.py --dataset covid --steps 30 60 100 --out results/label_efficiency_covid
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

INITS = ("scratch", "simclr", "micle", "mae")
ARCH_INITS = {"resnet18": ("scratch", "simclr", "micle"), "vit": ("scratch", "mae")}
PRETTY = {"simclr": "SimCLR", "micle": "MICLe", "mae": "MAE"}
DEFAULT_INITS = {"pneumoniamnist": ["scratch", "simclr"], "covid": ["scratch", "simclr", "micle"]}
# the --arch vit encoder (ViT classifier and MAE encoder alike) and the MAE's light decoder
VIT = {"hidden_size": 96, "mlp_dim": 384, "num_layers": 4, "num_heads": 3}
MAE_DECODER = {"decoder_hidden_size": 64, "decoder_mlp_dim": 256, "decoder_num_layers": 2, "decoder_num_heads": 2}
MASKING_RATIO = 0.75
# candidate recipes, the same for every init (the baseline gets the SSL arm's tuning budget); every fine-tune uses
# class-balanced cross-entropy (PneumoniaMNIST is 74 % pneumonia: unweighted CE lets small-label runs collapse onto
# the majority class). "probe": frozen encoder + logistic regression (L2 chosen on the same validation subset).
RECIPE_GRIDS = {
    "tuned": {
        "ft_lr3e-4": {"mode": "finetune", "lr": 3e-4, "layer_decay": None},
        "ft_lr1e-3": {"mode": "finetune", "lr": 1e-3, "layer_decay": None},
        "ft_lr3e-4_ld0.5": {"mode": "finetune", "lr": 3e-4, "layer_decay": 0.5},
        "ft_lr1e-3_ld0.5": {"mode": "finetune", "lr": 1e-3, "layer_decay": 0.5},
        "probe": {"mode": "probe"},
    },
    "fixed": None,  # one recipe from --lr / --layer-decay
}


def vit_patch_size(size: int) -> int:
    """ViT patch side for images of side ``size``: 4 up to 32 px, 8 up to 128 px, else 16."""
    return 4 if size <= 32 else 8 if size <= 128 else 16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pneumoniamnist", choices=("pneumoniamnist", "covid"))
    p.add_argument("--arch", default="resnet18", choices=tuple(ARCH_INITS),
                   help="resnet18 (inits scratch simclr micle) or a small ViT (inits scratch mae; see VIT)")
    p.add_argument("--data-root", default=None, help="folder with the dataset's .npz (default: shipped data)")
    p.add_argument("--size", type=int, default=None, help="image side (default: 28 PneumoniaMNIST, 64 COVID)")
    p.add_argument("--split-seed", type=int, default=0, help="COVID patient-level split seed (fixed for all runs)")
    p.add_argument("--test-split", default="test", choices=("test", "val+test"),
                   help="COVID: score on the test patients (15 %%) or on val + test (30 %%, twice the negatives; "
                        "then nothing is left to choose on: needs --recipes fixed)")
    p.add_argument("--recipes", default="tuned", choices=tuple(RECIPE_GRIDS),
                   help="tuned (default): every init picks the best of the same candidate grid (fine-tuning LR x "
                        "layer decay, and a frozen linear probe) on the label-fraction subset of the validation split; "
                        "fixed: one fine-tuning recipe (--lr, --layer-decay), nothing chosen")
    p.add_argument("--inits", nargs="+", default=None, choices=INITS,
                   help="default: scratch simclr (PneumoniaMNIST), scratch simclr micle (COVID), scratch mae (ViT)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, nargs="+", default=[60, 100, 150],
                   help="fine-tuning optimisation steps per label fraction (one value, or one per fraction)")
    p.add_argument("--batch-size", type=int, default=32, help="fine-tuning batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning AdamW peak learning rate (--recipes fixed)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the fine-tuning steps")
    p.add_argument("--layer-decay", type=float, default=None,
                   help="LR decay per ResNet stage / ViT block for fine-tuning (--recipes fixed); default: one LR")
    p.add_argument("--stem-stride", type=int, default=2, help="ResNet-18 7x7 stem stride (MONAI default 1: 4x cost)")
    p.add_argument("--pretrain-steps", type=int, default=150, help="SimCLR / MICLe / MAE optimisation steps")
    p.add_argument("--pretrain-batch-size", type=int, default=64,
                   help="SimCLR images (x2 views) / MICLe patients / MAE images per step")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--crop-scale", type=float, nargs=2, default=[0.3, 1.0], help="SimCLR random-resized-crop area")
    p.add_argument("--mae-crop-scale", type=float, nargs=2, default=[0.5, 1.0], help="MAE random-resized-crop area")
    p.add_argument("--pretrain-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the pretraining views")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the test AUC's 95 %% CI")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--out", default="results/label_efficiency")
    p.add_argument("--ckpt-dir", default=None, help="pretrained encoder cache <init>_encoder.pt (default: <out>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing results.csv (default: resume)")
    args = p.parse_args(argv)
    args.inits = args.inits or (["scratch", "mae"] if args.arch == "vit" else DEFAULT_INITS[args.dataset])
    args.size = args.size or (28 if args.dataset == "pneumoniamnist" else 64)
    wrong = [i for i in args.inits if i not in ARCH_INITS[args.arch]]
    if wrong:
        other = "vit" if args.arch == "resnet18" else "resnet18"
        p.error(f"--inits {' '.join(wrong)} cannot initialise --arch {args.arch} (it pretrains the "
                f"{'ViT' if other == 'vit' else 'ResNet-18'}): use --arch {other}, or inits from "
                f"{' '.join(ARCH_INITS[args.arch])}")
    if args.arch == "vit" and args.size % vit_patch_size(args.size):
        p.error(f"--arch vit: --size {args.size} is not a multiple of its patch size {vit_patch_size(args.size)}")
    if "micle" in args.inits and args.dataset != "covid":
        p.error("micle needs patient ids: use --dataset covid")
    if args.test_split == "val+test" and args.recipes != "fixed":
        p.error("--test-split val+test leaves no validation data to choose a recipe on: add --recipes fixed")
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
    keep = ("image", "label", "patient_id", "view")  # view: for the shortcut diagnosis (covid_shortcuts.py)
    items = [{**{k: d[k] for k in keep},
              "image": convert_to_tensor(resize(d["image"]), dtype=torch.float32, track_meta=False).contiguous()}
             for d in items]
    split = patient_split(items, fractions=(0.7, 0.15, 0.15), seed=args.split_seed)
    out = {k: [d for d in split[k] if d["label"] >= 0] for k in ("train", "val", "test")}
    if args.test_split == "val+test":  # held-out patients = val + test; nothing left to tune on
        out["test"], out["val"] = out["val"] + out["test"], []
    out["pretrain"] = split["train"]
    return out


def make_classifier(seed: int, stem_stride: int = 2, arch: str = "resnet18", size: int = 28) -> torch.nn.Module:
    """Seeded 2-class classifier: MONAI ResNet-18 (``stem_stride``) or the :data:`VIT` ``ViT`` for ``size`` px."""
    from monai.networks.nets import ViT, resnet18

    torch.manual_seed(seed)
    if arch == "vit":
        return ViT(in_channels=1, img_size=size, patch_size=vit_patch_size(size), spatial_dims=2, classification=True,
                   num_classes=2, pos_embed_type="sincos", post_activation=None, **VIT)
    return resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=stem_stride)


def progress_printer(label: str, every: float = 0.1):
    """``on_progress`` callback of a :class:`~monai_ssl.engines.CurriculumStage`: one line per ``every`` of it."""
    state = {"next": 0.0, "t0": time.perf_counter()}

    def report(fraction: float) -> None:
        if fraction + 1e-9 >= state["next"]:
            print(f"  {label}: {100 * fraction:3.0f} % ({time.perf_counter() - state['t0']:.0f} s)", flush=True)
            state["next"] += every

    return report


def pretrain_encoder(kind: str, items: list[dict], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """SimCLR (two views of one image) or MICLe (two different images of one patient where it has 2+) on
    ``items`` with labels unused, through the ``micle_pretrain`` bundle (MAE: :func:`pretrain_mae`); the bundle
    exports the encoder state dict to ``path``.

    The bundle's ``train.yaml`` runs as it is (network, NT-Xent loss, AdamW, warm-up + cosine per step,
    ``SeededDataLoader``, ``ContrastiveTrainer``) with the run's settings as overrides; only its dataset is
    replaced by these in-memory images (``train#dataset``), with the milder crop scale a 28 px image needs.
    """
    if kind == "mae":
        return pretrain_mae(items, args, path)
    import shutil
    import tempfile

    from ignite.engine import Events
    from monai.data import Dataset

    from monai_ssl.apps import run_bundle
    from monai_ssl.data import MultiInstanceDataset
    from monai_ssl.transforms import RandMultiViewd, cxr_augmentations

    seed = args.pretrain_seed
    augment = cxr_augmentations(args.size, crop_scale=tuple(args.crop_scale))
    if kind == "micle":  # one patient bag per item
        data = MultiInstanceDataset([{"image": d["image"], "patient_id": d["patient_id"]} for d in items], augment,
                                    seed=seed)
    else:
        views = RandMultiViewd("image", augment, num_views=2, delete_original=True)
        data = Dataset([{"image": d["image"]} for d in items], views)  # no labels
    losses: list[float] = []
    report = progress_printer(f"{PRETTY[kind]} pretraining")

    def watch(wf) -> None:
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.ITERATION_STARTED,
                                  lambda e: report((e.state.iteration - 1) / max(1, args.pretrain_steps)))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))

    work = Path(tempfile.mkdtemp(prefix=f"{kind}_bundle_", dir=path.parent))  # checkpoints + logs, removed after
    try:
        wf = run_bundle(
            REPO / "bundles" / "micle_pretrain", before_run=watch, output_dir=str(work), encoder_path=str(path),
            pair_mode="micle" if kind == "micle" else "simclr", seed=seed, image_size=args.size,
            batch_size=args.pretrain_batch_size, max_epochs=1, epoch_length=args.pretrain_steps,
            num_workers=args.workers, learning_rate=args.pretrain_lr, weight_decay=1e-6,
            temperature=args.temperature, stem_stride=args.stem_stride, device=torch.device(args.device),
            resume=False, progress_bar=False, **{"train#dataset": data},
        )
        iterations = wf.parser.get_parsed_content("train#trainer").state.iteration
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"task": "contrastive", "iterations": iterations, "epoch_losses": [sum(losses) / max(1, len(losses))]}


def pretrain_mae(items: list[dict], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """MAE pretraining of the :data:`VIT` encoder on ``items`` (labels unused) through the ``mae_pretrain`` bundle
    (``network_name vit``); the bundle exports the encoder in MONAI ``ViT`` names to ``path``.

    The bundle's ``train.yaml`` runs with the run's settings as overrides: its ViT block takes :data:`VIT` and
    :data:`MAE_DECODER`, and its mixed-modality loader is replaced by a seeded shuffling loader over these
    in-memory images (one :func:`~monai_ssl.transforms.mae_augmentations` view each), so the bundle's modality
    sampler is not used (``train#sampler`` stands in as a no-op for its per-epoch reseed).
    """
    import shutil
    import tempfile
    from types import SimpleNamespace

    from ignite.engine import Events
    from monai.data import Dataset

    from monai_ssl.apps import run_bundle
    from monai_ssl.data import SeededDataLoader
    from monai_ssl.transforms import RandMultiViewd, mae_augmentations
    from monai_ssl.utils import SSLKeys, view_key

    seed = args.pretrain_seed
    augment = mae_augmentations(args.size, crop_scale=tuple(args.mae_crop_scale))
    view = RandMultiViewd(SSLKeys.IMAGE.value, augment, num_views=1, delete_original=True)
    data = Dataset([{SSLKeys.IMAGE.value: d["image"]} for d in items], view)  # no labels
    loader = SeededDataLoader(data, seed=seed, batch_size=min(args.pretrain_batch_size, len(data)), shuffle=True,
                              drop_last=True, num_workers=args.workers)
    losses: list[float] = []
    report = progress_printer("MAE pretraining")

    def watch(wf) -> None:
        trainer = wf.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.ITERATION_STARTED,
                                  lambda e: report((e.state.iteration - 1) / max(1, args.pretrain_steps)))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))

    vit = {"img_size": args.size, "patch_size": vit_patch_size(args.size), "qkv_bias": False, **VIT, **MAE_DECODER}
    work = Path(tempfile.mkdtemp(prefix="mae_bundle_", dir=path.parent))  # checkpoints + logs, removed after
    try:
        wf = run_bundle(
            REPO / "bundles" / "mae_pretrain", before_run=watch, output_dir=str(work), encoder_path=str(path),
            network_name="vit", mask_mode="random", masking_ratio=MASKING_RATIO, norm_pix_loss=True, seed=seed,
            image_size=args.size, batch_size=args.pretrain_batch_size, max_epochs=1,
            epoch_length=args.pretrain_steps, num_workers=args.workers, learning_rate=args.pretrain_lr,
            weight_decay=0.05, device=torch.device(args.device), resume=False, progress_bar=False,
            **{f"networks#vit#{k}": v for k, v in vit.items()},
            **{"train#dataloader": loader, "train#sampler": SimpleNamespace(set_epoch=lambda epoch: None),
               "train#trainer#image_key": view_key(SSLKeys.IMAGE.value, 0),
               "train#handlers_by_name#reconstruction_images#_disabled_": True},
        )
        iterations = wf.parser.get_parsed_content("train#trainer").state.iteration
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"task": "masked", "iterations": iterations, "epoch_losses": [sum(losses) / max(1, len(losses))]}


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor | list[dict]) -> torch.Tensor:
    """(N, F) frozen features of images ``x`` ((N, 1, S, S), or items with an ``"image"``): ResNet: the 512-d pooled
    output (the classifier without its ``fc``); ViT: the mean of the patch tokens after the final norm (class token
    excluded: the MAE has none)."""
    if isinstance(x, list):
        x = torch.stack([d["image"] for d in x])
    was = model.training
    model.eval()
    try:
        if hasattr(model, "fc"):
            fc, model.fc = model.fc, torch.nn.Identity()
            try:
                return torch.cat([model(x[i:i + 512]) for i in range(0, len(x), 512)])
            finally:
                model.fc = fc
        tokens: list[torch.Tensor] = []
        hook = model.norm.register_forward_hook(lambda _m, _i, y: tokens.append(y[:, 1:].mean(1)))
        try:
            for i in range(0, len(x), 512):
                model(x[i:i + 512])
        finally:
            hook.remove()
        return torch.cat(tokens)
    finally:
        model.train(was)


class ProbeClassifier(torch.nn.Module):
    """A frozen encoder (``model`` read through :func:`features`) followed by a fitted linear probe: one logit."""

    def __init__(self, model: torch.nn.Module, probe: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(features(self.model, x)).float()


def load_encoder(model: torch.nn.Module, path: Path, arch: str = "resnet18") -> Any:
    """Copy a cached encoder into ``model`` through :func:`~monai_ssl.networks.load_pretrained`; every
    cached tensor must find a home and every encoder tensor of ``model`` must receive one (ResNet-18: all but ``fc``,
    kind ``contrastive_resnet``; ViT: all but the class token and head, kind ``mae_vit``).

    Raises:
        ValueError: the checkpoint does not fit (shapes, too little loaded on either side).
    """
    from monai_ssl.networks import load_pretrained

    kind = "mae_vit" if arch == "vit" else "contrastive_resnet"
    return load_pretrained(model, path, kind=kind, min_loaded_fraction=1.0, verbose=False)


def build_model(name: str, seed: int, args: argparse.Namespace, ckpts: dict[str, Path]) -> torch.nn.Module:
    """The classifier of init ``name`` for fine-tuning seed ``seed`` (head seeded identically for every init)."""
    model = make_classifier(seed, args.stem_stride, args.arch, args.size)
    if name in ckpts:
        load_encoder(model, ckpts[name], args.arch)
    return model


def pretrain_line(name: str, run: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    """One-line description of a pretraining run (kept in ``<init>_pretrain.txt`` next to the cached encoder)."""
    if name == "mae":
        what = (f"{args.pretrain_batch_size} images, {MASKING_RATIO:.0%} masked (ViT {VIT['hidden_size']}x"
                f"{VIT['num_layers']}, patch {vit_patch_size(args.size)}, crop {args.mae_crop_scale[0]:g}-"
                f"{args.mae_crop_scale[1]:g}, lr {args.pretrain_lr:g})")
    else:
        what = f"{args.pretrain_batch_size} {'patients' if name == 'micle' else 'images'} x 2 views"
    return (f"{PRETTY[name]} pretraining: {run['iterations']} steps x {what}, loss {run['epoch_losses'][-1]:.3f}, "
            f"{seconds:.0f}s")


def check_network_marker(out: Path, arch: str, fresh: bool) -> None:
    """Refuse to resume ``out`` with another network than its rows were made with (``network.txt``; a folder with a
    ``results.csv`` and no marker predates ``--arch`` and holds ResNet-18 rows)."""
    marker = out / "network.txt"
    legacy = "resnet18" if (out / "results.csv").is_file() else None
    found = marker.read_text().strip() if marker.is_file() else legacy
    if found is not None and found != arch and not fresh:
        raise SystemExit(f"{out} holds --arch {found} results ({marker.name}); resuming them with --arch {arch} "
                         f"would mix networks under one init name: use another --out (or --fresh)")
    if arch != "resnet18" or marker.is_file():
        marker.write_text(arch + "\n")


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from monai.data import DataLoader, Dataset
    from monai.transforms import RandFlipd

    from monai_ssl.apps import run_label_efficiency
    from monai_ssl.data import SeededDataLoader
    from monai_ssl.evaluation import (
        balanced_class_weights,
        classification_report,
        finetune_classifier,
        fit_linear_probe,
        predict_proba,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check_network_marker(out, args.arch, args.fresh)
    splits = load_splits(args)
    settings = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    print(f"label efficiency: {settings}; train/val/test/pretrain {[len(v) for v in splits.values()]}", flush=True)

    ckpt_dir = Path(args.ckpt_dir) if args.ckpt_dir else out
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpts = {name: ckpt_dir / f"{name}_encoder.pt" for name in args.inits if name != "scratch"}
    for name, ckpt in ckpts.items():
        if not ckpt.exists():  # pretrain once; the log line is kept next to the encoder for the summary
            t0 = time.perf_counter()
            run = pretrain_encoder(name, splits["pretrain"], args, ckpt)
            line = pretrain_line(name, run, args, time.perf_counter() - t0)
            print(line, flush=True)
            (ckpt_dir / f"{name}_pretrain.txt").write_text(line + "\n")  # describes the cached encoder

    def init_fn(name: str):
        return lambda seed: build_model(name, seed, args, ckpts)

    steps_of = dict(zip(args.fractions, args.steps))
    fixed = {"fixed": {"mode": "finetune", "lr": args.lr, "layer_decay": args.layer_decay}}
    recipes = RECIPE_GRIDS[args.recipes] or fixed

    def train_fn(model, labelled, val, seed, fraction, mode="finetune", lr=args.lr, layer_decay=args.layer_decay):
        labels = [d["label"] for d in labelled]
        if mode == "probe":
            x = {k: torch.stack([d["image"] for d in v]) for k, v in (("train", labelled), ("val", val))}
            probe = fit_linear_probe(features(model, x["train"]), torch.tensor(labels),
                                     features(model, x["val"]) if val else None,
                                     torch.tensor([d["label"] for d in val]) if val else None,
                                     task="binary", class_balanced=True)
            return ProbeClassifier(model, probe)
        ds = Dataset(labelled, RandFlipd("image", prob=0.5, spatial_axis=1))
        loader = SeededDataLoader(ds, seed=seed, batch_size=min(args.batch_size, len(labelled)), shuffle=True,
                                  drop_last=True)
        torch.manual_seed(seed)
        finetune_classifier(model, loader, None, epochs=1, epoch_length=steps_of[fraction], lr=lr,
                            warmup_epochs=args.warmup, weight_decay=args.weight_decay, layer_decay=layer_decay,
                            device=args.device, task="binary", class_weights=balanced_class_weights(labels, 2))
        return None

    def eval_fn(model, items):
        probs, labels = predict_proba(model, DataLoader(items, batch_size=256), args.device, "binary")
        report = classification_report(probs, labels, "binary", n_boot=args.n_boot, seed=0)
        out = {k: v["value"] for k, v in report.items() if k != "n"}
        p = probs.double().clamp(1e-6, 1 - 1e-6)
        out.update(auc_low=report["auc"]["low"], auc_high=report["auc"]["high"],
                   log_loss=float(-(labels * p.log() + (1 - labels) * (1 - p).log()).mean()),
                   predicted_classes=float(len(torch.unique((probs >= 0.5).long()))))
        return out

    data = {k: splits[k] for k in ("train", "val", "test")}
    rows = run_label_efficiency(data, {n: init_fn(n) for n in args.inits}, train_fn, eval_fn, out,
                                fractions=args.fractions, seeds=args.seeds, resume=not args.fresh, recipes=recipes)
    summary = (out / "summary.md").read_text()
    test = splits["test"]
    if args.dataset == "pneumoniamnist":
        what = f"PneumoniaMNIST {args.size} px, official test split ({len(test)} images)"
    else:
        scored = "val + test" if args.test_split == "val+test" else "test"
        what = (f"COVID CXR {args.size} px, COVID-19 vs other finding, patient-level split seed {args.split_seed} "
                f"({scored}: {len(test)} images of {len({d['patient_id'] for d in test})} patients, "
                f"{sum(d['label'] == 0 for d in test)} other)")
    log_lines = [(ckpt_dir / f"{n}_pretrain.txt").read_text().strip() for n in sorted(ckpts)
                 if (ckpt_dir / f"{n}_pretrain.txt").is_file()]
    net = (f"ResNet-18 stem stride {args.stem_stride}" if args.arch == "resnet18" else
           f"ViT hidden {VIT['hidden_size']}, {VIT['num_layers']} blocks x {VIT['num_heads']} heads, MLP "
           f"{VIT['mlp_dim']}, patch {vit_patch_size(args.size)}")
    header = [f"# Label efficiency: {what}", "",
              f"command: `python experiments/label_efficiency.py {settings}`", "",
              f"fine-tuning steps per fraction: {steps_of}, batch {args.batch_size}, class-balanced CE, "
              f"{net}; recipes ({args.recipes}, chosen per run on the label-fraction subset of the validation split, "
              f"test scored once): " + ", ".join(f"{k} {v}" for k, v in recipes.items()), *log_lines, ""]
    (out / "summary.md").write_text("\n".join(header) + "\n" + summary)
    print(summary)
    return rows


if __name__ == "__main__":
    main()
