"""MR brain segmentation on the ch2 T1 + AAL atlas: SwinUNETR from scratch vs from a Swin-MAE, same budget.

Data (Debian ``mricron-data``, ``/usr/share/mricron/templates``): ``ch2.nii.gz`` (Colin27 single-subject T1, with
skull, 1 mm, 181x217x181) and ``aal.nii.gz`` (AAL atlas, 116 regions, same grid). Choices, made so the whole run
fits a few CPU-minutes on 2 shared cores:

* both volumes are reoriented to RAS and resampled to ``--spacing`` mm (2 mm: 91x109x91; image bilinear, labels
  nearest); the image is percentile-scaled (0.5-99.5 -> [0, 1], :class:`monai_ssl.transforms.MRPresetd`);
* the 116 AAL regions are merged into four large groups (``LABEL_GROUPS``): left and right cerebrum (AAL 1-90
  odd / even without the deep nuclei; mricron's AAL regions are filled, so these cover most of each cerebral
  hemisphere, not only the cortical ribbon), deep grey nuclei (caudate, putamen, pallidum, thalamus,
  AAL 71-78, both sides) and the cerebellum with the vermis (AAL 91-116); background = 0;
* the task is 2D on axial slices (those with any label), zero-padded in-plane to 96x128 (SwinUNETR / Swin-MAE
  need multiples of 32); slices are split into interleaved blocks of 8 (every third block -> test, see
  :func:`split_slices`) with one unused slice on each side of a test block, so the test blocks cover the brain
  from the cerebellum to the vertex and no test slice has a training neighbour;
* Swin-MAE (VIS-MAE style: 16-px block masking, 75 %, mask tokens in the encoder, Swin-Unet decoder) is pretrained
  on the *training slices' images only* (no labels) for ``--mae-steps`` steps; SwinUNETR (same Swin config) is
  then fine-tuned on the training slices from random init and from the MAE encoder with the same seed, steps,
  optimiser, schedule and batches (random 96x96 crops along the A-P axis, so every crop holds the midline);
* test: sliding-window inference (ROI 96x96, overlap 0.5) on the full 96x128 test slices; Dice per class both
  averaged over the slices that contain the class (MONAI ``MeanDice``) and pooled over the test slab (volume).

This is a single subject and a single seed: a small, honest demo of the pipeline, not a benchmark.

Run (once; about 10-15 CPU-minutes)::

    python experiments/segmentation_mr.py --out results/segmentation_mr

Smoke (seconds)::

    python experiments/segmentation_mr.py --mae-steps 2 --ft-steps 2 --out /tmp/seg_mr_smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = Path("/usr/share/mricron/templates")
# group name -> AAL ids (aal.nii.txt: odd = left, even = right; 71-78 caudate/putamen/pallidum/thalamus)
_DEEP = set(range(71, 79))
LABEL_GROUPS: dict[str, list[int]] = {
    "left_cerebrum": [i for i in range(1, 91, 2) if i not in _DEEP],
    "right_cerebrum": [i for i in range(2, 91, 2) if i not in _DEEP],
    "deep_grey": sorted(_DEEP),
    "cerebellum": list(range(91, 117)),
}
SLICE_SIZE = (96, 128)  # padded in-plane size (R-L, P-A) at 2 mm
ROI = (96, 96)


def aal_to_groups(aal: torch.Tensor) -> torch.Tensor:
    """AAL region ids -> group index (0 = background, ``i + 1`` for the i-th entry of ``LABEL_GROUPS``)."""
    lut = torch.zeros(256, dtype=torch.long)
    for gi, ids in enumerate(LABEL_GROUPS.values(), start=1):
        lut[ids] = gi
    ids = aal.round().long()
    if ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"AAL label ids must be in [0, 255], got [{int(ids.min())}, {int(ids.max())}].")
    return lut[ids]


def load_mr_slices(template_dir: str | Path = TEMPLATE_DIR, spacing: float = 2.0) -> dict:
    """Load ch2 T1 + AAL, resample, merge labels and return the labelled axial slices.

    Returns:
        ``{"image": (N, 1, 96, 128) float32 in [0, 1], "label": (N, 1, 96, 128) long, "z_index": (N,) slice index
        in the resampled volume}``.

    Raises:
        FileNotFoundError: ``ch2.nii.gz`` or ``aal.nii.gz`` missing from ``template_dir``.
    """
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd, SpatialPad

    from monai_ssl.transforms import MRPresetd

    template_dir = Path(template_dir)
    files = {"image": template_dir / "ch2.nii.gz", "label": template_dir / "aal.nii.gz"}
    for key, f in files.items():
        if not f.is_file():
            raise FileNotFoundError(f"{key} file {f} not found (install the Debian package mricron-data).")
    geom = Compose([
        LoadImaged(["image", "label"], image_only=True),
        EnsureChannelFirstd(["image", "label"]),
        Orientationd(["image", "label"], axcodes="RAS"),
        Spacingd(["image", "label"], pixdim=spacing, mode=("bilinear", "nearest")),
    ])
    d = geom({k: str(v) for k, v in files.items()})
    d = MRPresetd("image", load=False, spatial_dims=3)(d)
    image, label = d["image"].as_tensor().float(), aal_to_groups(d["label"].as_tensor())
    if image.shape != label.shape:
        raise ValueError(f"image {tuple(image.shape)} and label {tuple(label.shape)} are not on the same grid.")
    keep = torch.nonzero((label > 0).flatten(0, 2).any(0)).flatten()  # axial slices (last axis, I->S) with labels
    pad = SpatialPad(SLICE_SIZE)
    img = torch.stack([pad(image[..., z]) for z in keep.tolist()])
    lab = torch.stack([pad(label[..., z]) for z in keep.tolist()])
    if img.shape[2:] != SLICE_SIZE:
        raise ValueError(f"slices are {tuple(img.shape[2:])} after padding, expected {SLICE_SIZE}; use spacing >= 2.")
    img, lab = (t.as_tensor() if hasattr(t, "as_tensor") else t for t in (img, lab))
    return {"image": img.float().contiguous(), "label": lab.long().contiguous(), "z_index": keep}


def split_slices(n: int, block: int = 8, period: int = 3, offset: int = 1) -> tuple[list[int], list[int]]:
    """Interleaved slab split: block ``b = i // block`` is test when ``b % period == offset``; training slices
    exclude the direct neighbours of test slices (one-slice gap). Returns ``(train, test)`` index lists."""
    test = [i for i in range(n) if (i // block) % period == offset]
    tset = set(test)
    train = [i for i in range(n) if i not in tset and i - 1 not in tset and i + 1 not in tset]
    return train, test


# ------------------------------------------------------------------------------------------------ training
def _loader(items: list[dict], batch: int, seed: int, crop: bool):
    from monai.data import Dataset
    from monai.transforms import Compose, RandScaleIntensityd, RandSpatialCropd

    from monai_ssl.data import SeededDataLoader

    keys = [k for k in ("image", "label") if k in items[0]]
    chain = [RandSpatialCropd(keys, roi_size=ROI, random_size=False)] if crop else []
    chain.append(RandScaleIntensityd("image", factors=0.1, prob=0.5))
    return SeededDataLoader(Dataset(items, Compose(chain)), seed=seed, batch_size=batch, shuffle=True, drop_last=True)


def _schedule(trainer, optimizer, warmup: int, steps: int) -> None:
    from monai.handlers import LrScheduleHandler

    from monai_ssl.optimizers import warmup_cosine_schedule

    LrScheduleHandler(warmup_cosine_schedule(optimizer, warmup, steps), epoch_level=False,
                      print_lr=False).attach(trainer)


def _record_loss(trainer, losses: list[float], is_list: bool) -> None:
    from ignite.engine import Events

    def rec(engine):
        out = engine.state.output
        losses.append(float(out[0]["loss"] if is_list else out["loss"]))

    trainer.add_event_handler(Events.ITERATION_COMPLETED, rec)


def swin_config(feature_size: int) -> dict:
    return {"feature_size": feature_size, "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24), "window_size": 7}


def pretrain_mae(images: torch.Tensor, args) -> tuple[dict, list[float]]:
    """Swin-MAE on unlabelled slices through the ``mae_pretrain`` bundle (``network_name swin``); returns the MAE's
    state dict and the per-step loss.

    Overrides: the Swin config of :func:`swin_config` with two Swin blocks per decoder level, the experiment's
    seeded crop loader over these slices as ``train#dataloader`` (the bundle's modality sampler is not used:
    ``train#sampler`` is a no-op for its per-epoch reseed) and one AdamW group over every parameter, as this
    experiment has always used (the bundle's default leaves biases and norm weights undecayed).
    """
    import shutil
    import tempfile
    from types import SimpleNamespace

    from monai_ssl.apps import run_bundle

    loader = _loader([{"image": x} for x in images], args.batch_size, args.seed, crop=True)
    swin = {**swin_config(args.feature_size), "decoder_depths": (2, 2, 2, 2), "mask_unit_size": 16}
    losses: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="mae_bundle_"))  # checkpoints, logs and the exported encoder, removed after
    try:
        wf = run_bundle(
            REPO / "bundles" / "mae_pretrain",
            before_run=lambda wf: _record_loss(wf.parser.get_parsed_content("train#trainer"), losses, is_list=False),
            output_dir=str(work), network_name="swin", mask_mode="random", masking_ratio=0.75, norm_pix_loss=False,
            seed=args.seed, batch_size=args.batch_size, max_epochs=1, epoch_length=args.mae_steps,
            learning_rate=args.mae_lr, weight_decay=0.05, device=torch.device("cpu"), resume=False,
            progress_bar=False,
            optimizer="$torch.optim.AdamW(@network.parameters(), lr=@learning_rate, betas=(0.9, 0.95), "
                      "weight_decay=@weight_decay)",
            **{f"networks#swin#{k}": v for k, v in swin.items()},
            **{"train#dataloader": loader, "train#sampler": SimpleNamespace(set_epoch=lambda epoch: None),
               "train#handlers_by_name#reconstruction_images#_disabled_": True},
        )
        state = {k: v.detach().clone() for k, v in wf.parser.get_parsed_content("network_def").state_dict().items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return state, losses


def finetune(images, labels, pretrained, args) -> tuple[torch.nn.Module, list[float], str]:
    """SwinUNETR fine-tuning (same seed/batches/schedule for both inits); returns model, losses, load report."""
    from monai_ssl.evaluation.segmentation import build_segmentation_model, build_segmentation_trainer

    torch.manual_seed(args.seed + 1)  # identical random decoder init for scratch and pretrained
    net, report = build_segmentation_model("swinunetr", 2, 1, len(LABEL_GROUPS) + 1, img_size=ROI,
                                           pretrained=pretrained, **swin_config(args.feature_size))
    opt = torch.optim.AdamW(net.parameters(), lr=args.ft_lr, betas=(0.9, 0.95), weight_decay=0.05)
    items = [{"image": x, "label": y.float()} for x, y in zip(images, labels)]
    trainer = build_segmentation_trainer("cpu", 1, _loader(items, args.batch_size, args.seed + 2, crop=True),
                                         net, opt, epoch_length=args.ft_steps)
    _schedule(trainer, opt, max(1, args.ft_steps // 10), args.ft_steps)
    losses: list[float] = []
    _record_loss(trainer, losses, is_list=True)
    trainer.run()
    return net, losses, "random init" if report is None else report.summary(4)


def evaluate(net, images, labels) -> dict:
    """Sliding-window test Dice: per-slice mean (MeanDice) and pooled over the test slab; hard predictions."""
    from ignite.engine import Events

    from monai_ssl.evaluation.segmentation import build_segmentation_evaluator, mean_dice_per_class

    n_cls = len(LABEL_GROUPS) + 1
    data = [{"image": images[i:i + 8], "label": labels[i:i + 8].float()} for i in range(0, len(images), 8)]
    ev = build_segmentation_evaluator("cpu", data, net, n_cls, roi_size=ROI, sw_batch_size=8, overlap=0.5)
    preds: list[torch.Tensor] = []
    ev.add_event_handler(Events.ITERATION_COMPLETED,
                         lambda e: preds.extend(o["pred"].argmax(0, keepdim=True) for o in e.state.output))
    ev.run()
    pred = torch.stack([torch.as_tensor(p) for p in preds])
    return {
        "slice_mean": torch.as_tensor(ev.state.metrics["val_mean_dice_per_class"]).float().tolist(),
        "volume": mean_dice_per_class(pred, labels, n_cls, pooled=True).tolist(),
        "pred": pred,
    }


# ------------------------------------------------------------------------------------------------ reporting
def save_png(path: Path, image, label, preds: dict, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["black", "tab:blue", "tab:orange", "tab:green", "tab:red"])
    fig, ax = plt.subplots(1, 3 + len(preds), figsize=(3.2 * (3 + len(preds)), 3.4))
    show = lambda a: np.rot90(np.asarray(a))  # noqa: E731  RAS (x, y) -> anterior up, patient left on the left
    ax[0].imshow(show(image), cmap="gray")
    ax[0].set_title("T1 (test slice)")
    ax[1].imshow(show(label), cmap=cmap, vmin=0, vmax=4, interpolation="nearest")
    ax[1].set_title("AAL groups")
    for a, (name, p) in zip(ax[2:], preds.items()):
        a.imshow(show(p), cmap=cmap, vmin=0, vmax=4, interpolation="nearest")
        a.set_title(name)
    for a in ax[:-1]:
        a.axis("off")
    for name, c in curves.items():
        ax[-1].plot(c, label=name)
    ax[-1].set_title("training loss")
    ax[-1].set_xlabel("step")
    ax[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--templates", default=str(TEMPLATE_DIR), help="folder with ch2.nii.gz and aal.nii.gz")
    p.add_argument("--spacing", type=float, default=2.0)
    p.add_argument("--feature-size", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--mae-steps", type=int, default=150)
    p.add_argument("--ft-steps", type=int, default=120)
    p.add_argument("--mae-lr", type=float, default=1e-3)
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy box)")
    p.add_argument("--out", default="results/segmentation_mr")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = load_mr_slices(args.templates, args.spacing)
    train, test = split_slices(len(data["image"]))
    img, lab = data["image"], data["label"]
    print(f"{len(img)} labelled axial slices, {len(train)} train / {len(test)} test, {time.time() - t0:.1f}s")

    timings = {}
    t = time.time()
    mae_state, mae_losses = pretrain_mae(img[train], args)
    timings["mae_pretrain_s"] = time.time() - t
    print(f"MAE: loss {mae_losses[0]:.4f} -> {np.mean(mae_losses[-10:]):.4f} in {timings['mae_pretrain_s']:.0f}s")
    results, curves, reports = {}, {"MAE (recon.)": mae_losses}, {}
    for name, init in (("scratch", None), ("MAE-pretrained", mae_state)):
        t = time.time()
        net, losses, reports[name] = finetune(img[train], lab[train], init, args)
        timings[f"finetune_{name}_s"] = time.time() - t
        results[name] = evaluate(net, img[test], lab[test])
        curves[f"{name} (Dice-CE)"] = losses
        print(f"{name}: fine-tune {timings[f'finetune_{name}_s']:.0f}s, loss {losses[0]:.3f} -> "
              f"{np.mean(losses[-10:]):.3f}; test Dice/class (slab) {np.round(results[name]['volume'], 3)}")

    groups = list(LABEL_GROUPS)
    with open(out / "dice.csv", "w", newline="") as f:
        w = csv.writer(f)
        # one fixed recipe, the last step's weights: nothing is chosen, on test or elsewhere (no validation split)
        w.writerow(["init", "class", "dice_volume", "dice_slice_mean", "selected_on", "n_labels_used"])
        tag = ["none (fixed recipe, final weights)", len(train)]
        for name, r in results.items():
            for g, dv, ds in zip(groups, r["volume"], r["slice_mean"]):
                w.writerow([name, g, f"{dv:.4f}", f"{ds:.4f}", *tag])
            w.writerow([name, "mean", f"{np.nanmean(r['volume']):.4f}", f"{np.nanmean(r['slice_mean']):.4f}", *tag])
    # example: the test slice with the most classes present (ties: most foreground)
    tl = lab[test]
    score = [(len(torch.unique(s)), int((s > 0).sum())) for s in tl]
    k = max(range(len(score)), key=lambda i: score[i])
    save_png(out / "example_slice.png", img[test][k, 0], tl[k, 0],
             {n: r["pred"][k, 0] for n, r in results.items()}, curves)
    timings["total_s"] = time.time() - t0

    rows = "\n".join(
        f"| {name} | " + " | ".join(f"{v:.3f}" for v in r["volume"]) + f" | **{np.nanmean(r['volume']):.3f}** | "
        + f"{np.nanmean(r['slice_mean']):.3f} |" for name, r in results.items())
    md = f"""# MR segmentation: SwinUNETR from scratch vs from a Swin-MAE (ch2 T1 + AAL, mricron-data)

Command: `python experiments/segmentation_mr.py {' '.join(sys.argv[1:] if argv is None else argv)}`
(torch {torch.__version__}, {args.threads} CPU thread(s) on a shared 2-core machine, seed {args.seed}).

Data: Debian `mricron-data` ch2.nii.gz (Colin27 T1 with skull) + aal.nii.gz, RAS, {args.spacing:g} mm,
percentile-scaled to [0, 1]; AAL merged into {len(groups)} groups ({', '.join(groups)}); {len(img)} labelled axial
slices padded to {SLICE_SIZE[0]}x{SLICE_SIZE[1]}; interleaved 8-slice blocks: {len(train)} train / {len(test)} test
slices (1-slice gaps). Swin-MAE (feature {args.feature_size}, depths 2-2-2-2, 75 % of 16-px blocks masked) on the
training slices' images only for {args.mae_steps} steps; SwinUNETR (same Swin config) fine-tuned {args.ft_steps}
steps, batch {args.batch_size} random 96x96 crops, AdamW lr {args.ft_lr} (0.9, 0.95) wd 0.05, warm-up + cosine,
loss 0.4 CE + 0.6 Dice; same seed, batches and decoder init for both. Test: sliding window (ROI 96x96,
overlap 0.5).

## Test Dice per class (pooled over the test slices = slab volume Dice)

| init | {' | '.join(groups)} | mean | mean of per-slice Dice |
|---|{'---|' * len(groups)}---|---|
{rows}

MAE reconstruction loss (masked pixels, MSE): {mae_losses[0]:.4f} -> {np.mean(mae_losses[-10:]):.4f} (mean of the
last 10 steps). Fine-tune loss (last 10 steps): scratch {np.mean(curves['scratch (Dice-CE)'][-10:]):.3f},
pretrained {np.mean(curves['MAE-pretrained (Dice-CE)'][-10:]):.3f}.
Time: {', '.join(f'{k} {v:.0f}' for k, v in timings.items())}.

Weight transfer (SwinMAE -> SwinUNETR): {reports['MAE-pretrained'].splitlines()[0]}; the convolutional
SwinUNETR decoder and skip blocks start random (MONAI's SwinUNETR decoder has no counterpart of the Swin-Unet MAE
decoder).

Single subject, single seed, a few minutes of CPU: differences of a few Dice points are within run-to-run noise.
Figure: `example_slice.png` (image | ground truth | scratch | pretrained | loss curves). Per-class values:
`dice.csv`.
"""
    (out / "summary.md").write_text(md)
    (out / "run.json").write_text(json.dumps({"args": vars(args), "timings": timings,
                                              "mae_loss_first_last": [mae_losses[0], mae_losses[-1]]}, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
