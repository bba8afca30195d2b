"""Real mixed-modality masked-autoencoder pretraining on the shipped X-ray + ultrasound data (VIS-MAE style).

X-ray = PneumoniaMNIST train (28 px) + COVID CXR (256 px), ultrasound = BreastMNIST train (28 px); each source
goes through its modality preset (XRayPresetd / USPresetd, resized to ``--size``), is pooled by
:class:`~monai_ssl.data.mixed_modality.MixedModalityDataset` and drawn by
:class:`~monai_ssl.data.mixed_modality.MixedModalitySampler`. The network is :class:`SwinMAE` (VIS-MAE's Swin
masked autoencoder on MONAI's SwinTransformer: 16-px block masking at 75 %, mask tokens in the encoder) trained
by :class:`~monai_ssl.engines.MaskedAutoencoderTrainer`: the ``mae_pretrain`` bundle (``network_name swin``) runs it,
with this script's settings as overrides and its data (a few test images and 4 COVID images held out) as
``train#dataset`` / ``train#sampler`` / ``train#dataloader``.

Writes to ``--out``: ``loss.csv`` + ``loss.png`` (per-iteration loss), ``reconstruction.png`` (held-out X-ray and
US images: input | masked | reconstruction | visible + reconstruction), ``summary.json`` (settings, modality mix,
held-out masked MSE before/after per modality, timings) and ``encoder.pt`` only with ``--save-weights``.

Example (a few CPU minutes)::

    python scripts/pretrain_mae_mixed.py --out results/mae_mixed --iterations 150 --batch-size 16
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.transforms import Compose, RandFlipd, SelectItemsd
from torch.utils.data import ConcatDataset, Subset

from monai_ssl.apps import run_bundle
from monai_ssl.data import MedMNISTDataset, SeededDataLoader, load_covid_cxr
from monai_ssl.data.mixed_modality import MixedModalityDataset, MixedModalitySampler
from monai_ssl.handlers.reconstruction_images import reconstruction_grid
from monai_ssl.networks import pretrained_filter
from monai_ssl.transforms import USPresetd, XRayPresetd

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO / "data"))
    p.add_argument("--out", default=str(REPO / "results" / "mae_mixed"))
    p.add_argument("--size", type=int, default=64, help="image size (multiple of 16 * patch size)")
    p.add_argument("--feature-size", type=int, default=24)
    p.add_argument("--patch-size", type=int, default=4, help="4 = VIS-MAE (a 16-px unit is 4x4 tokens)")
    p.add_argument("--decoder-depth", type=int, default=1, help="Swin blocks per decoder level")
    p.add_argument("--mask-mode", default="random", choices=("random", "entropy"))
    p.add_argument("--weighting", default="0.5", help="'proportional', 'balanced' or alpha (p_m ~ n_m^alpha)")
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--epoch-length", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up share of the iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--save-weights", action="store_true")
    return p.parse_args()


def build_data(data_dir: str, size: int, seed: int):
    """Train pool (X-ray, US), held-out pools, with per-modality presets and a shared flip."""
    xray_preset = XRayPresetd(load=False, spatial_size=size, use_header_window=False)
    us_preset = USPresetd(load=False, spatial_size=size, fan_crop=False)
    shared = Compose([SelectItemsd(["image", "modality"]), RandFlipd("image", prob=0.5, spatial_axis=1)])
    covid = load_covid_cxr(os.path.join(data_dir, "covid_cxr_256.npz"))
    rng = np.random.default_rng(seed)
    held_covid = set(rng.choice(len(covid), 4, replace=False).tolist())
    train = MixedModalityDataset(
        {
            "xray": ConcatDataset([MedMNISTDataset(data_dir, "pneumoniamnist", "train"),
                                   [c for i, c in enumerate(covid) if i not in held_covid]]),
            "us": MedMNISTDataset(data_dir, "breastmnist", "train"),
        },
        transforms={"xray": xray_preset, "us": us_preset},
        transform=shared,
    ).set_random_state(seed)
    held = MixedModalityDataset(
        {
            "xray": ConcatDataset([Subset(MedMNISTDataset(data_dir, "pneumoniamnist", "test"), range(2)),
                                   [covid[i] for i in sorted(held_covid)][:2]]),
            "us": Subset(MedMNISTDataset(data_dir, "breastmnist", "test"), range(4)),
        },
        transforms={"xray": xray_preset, "us": us_preset},
        transform=SelectItemsd(["image", "modality"]),
    )
    return train, held


@torch.no_grad()
def held_out_loss(net, loss_fn, images, modalities, device) -> dict[str, float]:
    """Masked MSE per modality on fixed held-out images with fixed masks (same generator seed every call)."""
    net.eval()
    gen = torch.Generator(device=device).manual_seed(1234)
    pred, mask = net(images, generator=gen)
    out = {}
    for m in sorted(set(modalities)):
        idx = [i for i, mm in enumerate(modalities) if mm == m]
        out[m] = float(loss_fn(pred[idx], images[idx], mask[idx]))
    net.train()
    return out


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    weighting = args.weighting if args.weighting in ("proportional", "balanced") else float(args.weighting)

    train, held = build_data(args.data_dir, args.size, args.seed)
    sampler = MixedModalitySampler(train, weighting, num_samples=args.epoch_length * args.batch_size, seed=args.seed)
    loader = SeededDataLoader(train, seed=args.seed, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    held_batch = [held[i] for i in range(len(held))]
    held_images = torch.stack([torch.as_tensor(h["image"]).as_subclass(torch.Tensor) for h in held_batch]).to(device)
    held_modalities = [h["modality"] for h in held_batch]

    max_epochs = math.ceil(args.iterations / args.epoch_length)
    rows: list[tuple[int, float, float, int]] = []
    mix = {m: 0 for m in train.modalities}
    before: dict[str, float] = {}
    t_start = 0.0

    def prepare(wf) -> None:
        """Held-out loss of the initial network, and the per-iteration log, before the bundle's run."""
        nonlocal t_start
        trainer = wf.parser.get_parsed_content("train#trainer")
        net, loss_fn = wf.parser.get_parsed_content("network"), wf.parser.get_parsed_content("loss")
        optimizer = wf.parser.get_parsed_content("optimizer")
        before.update(held_out_loss(net, loss_fn, held_images, held_modalities, device))

        @trainer.on(Events.ITERATION_COMPLETED)
        def _log(engine):
            n_us = sum(m == "us" for m in engine.state.batch["modality"])
            for m in engine.state.batch["modality"]:
                mix[m] += 1
            rows.append((engine.state.iteration, float(engine.state.output["loss"]), optimizer.param_groups[0]["lr"],
                         n_us))
            if engine.state.iteration % 10 == 0:
                print(f"iter {engine.state.iteration:4d}  loss {rows[-1][1]:.5f}  {time.perf_counter() - t_start:.0f}s",
                      flush=True)

        t_start = time.perf_counter()

    work = Path(tempfile.mkdtemp(prefix="mae_bundle_", dir=out))  # the bundle's checkpoints and logs, removed after
    try:
        wf = run_bundle(
            REPO / "bundles" / "mae_pretrain", before_run=prepare, output_dir=str(work), network_name="swin",
            mask_mode=args.mask_mode, masking_ratio=0.75, norm_pix_loss=False, seed=args.seed, image_size=args.size,
            batch_size=args.batch_size, max_epochs=max_epochs, epoch_length=args.epoch_length, learning_rate=args.lr,
            weight_decay=0.05, warmup_fraction=args.warmup, amp=args.amp, device=device, resume=False,
            progress_bar=False,
            **{"networks#swin#feature_size": args.feature_size, "networks#swin#patch_size": args.patch_size,
               "networks#swin#decoder_depths": [args.decoder_depth] * 4, "networks#swin#drop_path_rate": 0.1,
               "train#dataset": train, "train#sampler": sampler, "train#dataloader": loader,
               "train#handlers_by_name#reconstruction_images#_disabled_": True},
        )
        net, loss_fn = wf.parser.get_parsed_content("network"), wf.parser.get_parsed_content("loss")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    train_s = time.perf_counter() - t_start
    after = held_out_loss(net, loss_fn, held_images, held_modalities, device)

    with open(out / "loss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iteration", "loss", "lr", "us_in_batch"])
        w.writerows(rows)
    losses = np.array([r[1] for r in rows])
    k = max(1, len(losses) // 10)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="per iteration")
    ax.plot(np.arange(k, len(losses) + 1), smooth, lw=2, label=f"moving mean ({k})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("masked MSE")
    ax.set_yscale("log")
    ax.set_title(f"Swin-MAE, X-ray + US mixed, {args.size}px")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png")
    plt.close(fig)

    net.eval()
    with torch.no_grad():
        pred, mask = net(held_images, generator=torch.Generator(device=device).manual_seed(1234))
    grid = reconstruction_grid(held_images, pred, mask, net.pred_patch_size, max_images=len(held_batch))
    from PIL import Image

    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out / "reconstruction.png")

    first, last = float(losses[:k].mean()), float(losses[-k:].mean())
    summary = {
        "command": "python scripts/pretrain_mae_mixed.py " + " ".join(
            f"--{a.replace('_', '-')} {v}" for a, v in vars(args).items()
            if a not in ("data_dir", "out", "amp", "save_weights")
        ) + (" --amp" if args.amp else ""),
        "model": "SwinMAE (MONAI SwinTransformer encoder, Swin-Unet decoder without skips)",
        "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        "encoder_params_M": round(sum(p.numel() for p in net.encoder.parameters()) / 1e6, 3),
        "sources": {"xray": "PneumoniaMNIST train (4708) + COVID CXR (555 of 559)", "us": "BreastMNIST train (546)"},
        "pool_sizes": train.sizes,
        "sampling_probabilities": sampler.probabilities,
        "images_seen_per_modality": mix,
        "iterations": len(rows),
        "train_loss_first_mean": first,
        "train_loss_last_mean": last,
        "train_loss_ratio_last_first": last / first,
        "held_out_masked_mse_before": before,
        "held_out_masked_mse_after": after,
        "train_seconds": round(train_s, 1),
        "seconds_per_iteration": round(train_s / max(1, len(rows)), 3),
        "device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
                                 f" ({platform.processor() or platform.machine()}, {args.threads} threads)"),
        "torch": torch.__version__,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.save_weights:
        torch.save(pretrained_filter("swin_mae_swinunetr")(net.state_dict()), out / "encoder.pt")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
