"""Tiny deterministic contrastive setup shared by engine and handler tests."""

from __future__ import annotations

import torch
from torch import nn

from monai_ssl.data import MultiInstanceDataset, SeededDataLoader
from monai_ssl.engines import ContrastiveTrainer
from monai_ssl.losses import NTXentLoss
from monai_ssl.networks import ContrastiveModel, ProjectionHead
from monai_ssl.optimizers import build_optimizer, warmup_cosine_schedule
from monai_ssl.transforms import cxr_augmentations


def tiny_encoder() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def tiny_dataset(n_patients: int = 24, seed: int = 0) -> MultiInstanceDataset:
    g = torch.Generator().manual_seed(123)
    data = [{"image": torch.rand(1, 24, 24, generator=g), "patient_id": f"p{i // 2}", "label": (i // 2) % 2}
            for i in range(2 * n_patients)]
    return MultiInstanceDataset(data, cxr_augmentations(16), seed=seed)


def make_trainer(max_epochs: int = 2, seed: int = 0, amp: bool = False, amp_dtype=torch.bfloat16, lr: float = 1e-2,
                 grad_clip_norm=None, num_workers: int = 0, epoch_length: int | None = None):
    """Trainer, model, optimizer, scheduler and dataset of a tiny contrastive run (3 batches of 8 per pass).

    ``epoch_length`` (iterations per Ignite epoch, default one pass) shorter than a pass makes Ignite keep the loader
    iterator across epochs, so epochs end mid-pass.
    """
    torch.manual_seed(seed)
    ds = tiny_dataset(seed=seed)
    loader = SeededDataLoader(ds, seed=seed, batch_size=8, shuffle=True, num_workers=num_workers)
    model = ContrastiveModel(tiny_encoder(), ProjectionHead(16, 32, 8))
    opt = build_optimizer(model, "adamw", lr=lr)
    sched = warmup_cosine_schedule(opt, warmup_steps=2, total_steps=max_epochs * (epoch_length or len(loader)))
    trainer = ContrastiveTrainer(device="cpu", max_epochs=max_epochs, train_data_loader=loader, network=model,
                                 optimizer=opt, loss_function=NTXentLoss(0.2), amp=amp, amp_dtype=amp_dtype,
                                 grad_clip_norm=grad_clip_norm, epoch_length=epoch_length)
    from monai.handlers import LrScheduleHandler

    LrScheduleHandler(sched, epoch_level=False, print_lr=False).attach(trainer)
    return trainer, model, opt, sched, ds
