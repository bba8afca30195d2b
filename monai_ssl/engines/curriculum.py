"""Curricular self-supervised learning, the components (Tamé et al. 2023; Sirotkin et al. 2021).

The curriculum is over **pretext tasks**, not samples: one backbone is trained through a sequence of stages
(e.g. rotation -> jigsaw -> contrastive); each stage wraps the *current* backbone in its own task head, trains
it with a fresh optimiser and schedule, then drops the head and hands the backbone to the next stage. The order
is given by the user, ranked by a short linear-probe run per task (weakest first, so the most transferable task
comes last), or found by exhaustive search over the orders of <= 3 tasks: that orchestration
(:func:`~monai_ssl.apps.run_curriculum`, :func:`~monai_ssl.apps.rank_by_probe`, :func:`~monai_ssl.apps.search_order`)
lives in :mod:`monai_ssl.apps.curriculum`; this module holds the stage object, its trainers and :func:`run_stage`.

Stage types and their thin trainers:

* ``"rotation"``, ``"jigsaw"``, ``"relative_location"`` (or any task with a classification head):
  :class:`PretextTrainer`, cross-entropy of ``network(batch[image_key])`` against ``batch[label_key]``
  (batches from :mod:`monai_ssl.transforms.pretext`);
* ``"contrastive"``: :class:`~monai_ssl.engines.ContrastiveTrainer` with
  :class:`~monai_ssl.losses.NTXentLoss` on two views ``image_view_0/1`` (SimCLR, or MICLe batches from
  :class:`~monai_ssl.data.MultiInstanceDataset`);
* ``"masked"`` (masked reconstruction): :class:`~monai_ssl.engines.MaskedAutoencoderTrainer`; ``model_fn`` is
  required (a masked autoencoder whose ``.encoder`` is the curriculum's backbone, e.g. a
  :class:`~monai_ssl.networks.nets.ConvNeXtMAE` with its ``encoder`` replaced by a ConvNeXt backbone) and the
  default loss is :class:`~monai_ssl.losses.MaskedReconstructionLoss` on the model's ``pred_patch_size``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from ignite.engine import Events
from monai.data import MetaTensor
from torch import nn
from torch.optim import Optimizer

from ..optimizers import build_optimizer, warmup_cosine_schedule
from ..utils.enums import SSLKeys
from .base import SSLTrainer

__all__ = ["CLASSIFICATION_TASKS", "CurriculumStage", "PretextTrainer", "linear_ramp", "run_stage"]

CLASSIFICATION_TASKS = ("rotation", "jigsaw", "relative_location")
PRETEXT_LABEL = "pretext_label"


class PretextTrainer(SSLTrainer):
    """Classification-style pretext task: ``logits = network(batch[image_key])``, loss vs ``batch[label_key]``.

    ``engine.state.output`` holds ``loss`` and ``pred`` (the logits). Other arguments: see
    :class:`~monai_ssl.engines.SSLTrainer`.
    """

    def __init__(self, *args: Any, image_key: str = SSLKeys.IMAGE.value, label_key: str = PRETEXT_LABEL,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.image_key, self.label_key = image_key, label_key

    def compute_loss(self, engine: PretextTrainer, batch: dict) -> dict[str, Any]:
        for key in (self.image_key, self.label_key):
            if key not in batch:
                raise KeyError(f"PretextTrainer: batch lacks '{key}'; present: {sorted(batch)}")
        x = batch[self.image_key]
        logits = engine.network(x.as_tensor() if isinstance(x, MetaTensor) else x)  # skip per-op metadata cost
        target = torch.as_tensor(batch[self.label_key], device=logits.device).long().reshape(-1)
        return {SSLKeys.LOSS.value: engine.loss_function(logits, target), SSLKeys.PRED.value: logits}


@dataclass
class CurriculumStage:
    """One stage of a curriculum.

    Attributes:
        task: ``"rotation"``, ``"jigsaw"``, ``"relative_location"``, ``"contrastive"``, ``"masked"`` or any name
            when ``model_fn`` and ``trainer_fn`` are given.
        data_loader: iterable of dict batches for this task (pretext transforms / contrastive views applied).
        epochs: epochs of this stage.
        model_fn: ``model_fn(encoder) -> nn.Module`` wrapping the *current* encoder in this stage's head; the
            result must contain the encoder's parameters. Default: the task's head from
            :mod:`monai_ssl.networks.blocks.pretext_heads` (``head_kwargs`` passed on), or a
            :class:`~monai_ssl.networks.nets.ContrastiveModel` for ``"contrastive"``; required for ``"masked"``.
        head_kwargs: extra arguments of the default head (e.g. ``num_classes`` of the jigsaw head).
        loss_function: default cross-entropy (classification tasks), ``NTXentLoss(0.1)`` (contrastive) or
            norm-pix ``MaskedReconstructionLoss`` (masked).
        optimizer_fn: ``optimizer_fn(model) -> Optimizer``, called afresh every stage. Default AdamW, lr 1e-3,
            weight decay 1e-6 (none on biases and norm weights).
        scheduler_fn: ``scheduler_fn(optimizer, total_steps)`` -> LR scheduler stepped every iteration. Default
            (None): linear warm-up over 10% of the stage, then cosine (``warmup_cosine_schedule``).
        schedule: False keeps the learning rate constant (``scheduler_fn`` ignored).
        trainer_fn: ``trainer_fn(**kwargs) -> SSLTrainer`` overriding the task's trainer class; receives
            ``device, max_epochs, train_data_loader, network, optimizer, loss_function`` and ``trainer_kwargs``.
        trainer_kwargs: extra trainer arguments (``amp``, ``grad_clip_norm``, ``group_key``, ``epoch_length``...).
        on_progress: called with the stage's progress in [0, 1) before every iteration, e.g. to ramp
            augmentation strength (see :func:`linear_ramp`). It runs in the main process: with a ``DataLoader``
            of ``num_workers > 0`` a change reaches the workers only when they are re-created (each epoch unless
            ``persistent_workers``).
        name: label used in checkpoints and the summary (default: ``task``).
    """

    task: str
    data_loader: Iterable
    epochs: int = 1
    model_fn: Callable[[nn.Module], nn.Module] | None = None
    head_kwargs: dict = field(default_factory=dict)
    loss_function: Callable | None = None
    optimizer_fn: Callable[[nn.Module], Optimizer] | None = None
    scheduler_fn: Callable[[Optimizer, int], Any] | None = None
    schedule: bool = True
    trainer_fn: Callable[..., SSLTrainer] | None = None
    trainer_kwargs: dict = field(default_factory=dict)
    on_progress: Callable[[float], None] | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.task


def linear_ramp(start: float, end: float, ramp_fraction: float = 0.3) -> Callable[[float], float]:
    """``f(progress)``: ``start`` at 0, linear to ``end`` at ``ramp_fraction``, constant after.

    An addition of ours, not from the curricular-SSL papers: e.g. crop minimum area ``linear_ramp(0.6, 0.08)``
    within a stage.
    """
    if not 0 < ramp_fraction <= 1:
        raise ValueError(f"ramp_fraction must be in (0, 1], got {ramp_fraction}")
    return lambda p: start + (end - start) * min(1.0, max(0.0, p) / ramp_fraction)


def _default_model(stage: CurriculumStage, encoder: nn.Module, feature_dim: int) -> nn.Module:
    if stage.model_fn is not None:
        return stage.model_fn(encoder)
    if stage.task in CLASSIFICATION_TASKS:
        from ..networks.blocks.pretext_heads import build_pretext_head

        return build_pretext_head(stage.task, encoder, feature_dim, **stage.head_kwargs)
    if stage.task == "contrastive":
        from ..networks.blocks.heads import ProjectionHead
        from ..networks.nets.contrastive import ContrastiveModel

        return ContrastiveModel(encoder, ProjectionHead(feature_dim, **stage.head_kwargs))
    raise ValueError(f"stage '{stage.label}': no default head for task '{stage.task}'; pass model_fn.")


def _default_loss(stage: CurriculumStage, model: nn.Module) -> Callable:
    if stage.loss_function is not None:
        return stage.loss_function
    if stage.task == "masked":
        from ..losses.masked_reconstruction import MaskedReconstructionLoss

        patch = getattr(model, "pred_patch_size", None)
        if patch is None:
            raise ValueError(f"stage '{stage.label}': the masked model has no pred_patch_size; pass loss_function.")
        return MaskedReconstructionLoss(patch, spatial_dims=len(patch), norm_pix_loss=True)
    if stage.task == "contrastive":
        from ..losses.ntxent import NTXentLoss

        return NTXentLoss(temperature=0.1)
    if stage.task in CLASSIFICATION_TASKS:
        return nn.CrossEntropyLoss()
    raise ValueError(f"stage '{stage.label}': no default loss for task '{stage.task}'; pass loss_function.")


def _trainer_cls(stage: CurriculumStage) -> Callable[..., SSLTrainer]:
    if stage.trainer_fn is not None:
        return stage.trainer_fn
    if stage.task == "contrastive":
        from .contrastive import ContrastiveTrainer

        return ContrastiveTrainer
    if stage.task == "masked":
        from .masked_autoencoder import MaskedAutoencoderTrainer

        return MaskedAutoencoderTrainer
    return PretextTrainer


def _epoch_length(loader: Iterable, kwargs: dict) -> int:
    if kwargs.get("epoch_length") is not None:
        return int(kwargs["epoch_length"])
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError as e:
        raise ValueError("the stage's data_loader has no len(); set trainer_kwargs['epoch_length']") from e


def run_stage(
    stage: CurriculumStage, encoder: nn.Module, feature_dim: int, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Train ``encoder`` (in place) on one stage; returns the stage summary (losses per epoch, time).

    Raises:
        ValueError: the stage's model does not contain the encoder (weights would not be handed over).
    """
    device = torch.device(device)
    trainer_cls = _trainer_cls(stage)  # fails early for stage types without a trainer yet
    model = _default_model(stage, encoder, feature_dim).to(device)
    owned = {id(p) for p in model.parameters()}
    if not all(id(p) in owned for p in encoder.parameters()):
        raise ValueError(f"stage '{stage.label}': model_fn must wrap the encoder it is given (weights hand-over).")
    optimizer = (stage.optimizer_fn or (lambda m: build_optimizer(m, "adamw", lr=1e-3, weight_decay=1e-6)))(model)
    kwargs = dict(stage.trainer_kwargs)
    steps = stage.epochs * _epoch_length(stage.data_loader, kwargs)
    trainer = trainer_cls(
        device=device, max_epochs=stage.epochs, train_data_loader=stage.data_loader, network=model,
        optimizer=optimizer, loss_function=_default_loss(stage, model), **kwargs,
    )
    if stage.schedule:
        scheduler_fn = stage.scheduler_fn or (
            lambda opt, total: warmup_cosine_schedule(opt, max(1, total // 10), total))
        scheduler = scheduler_fn(optimizer, steps)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: scheduler.step())
    if stage.on_progress is not None:
        trainer.add_event_handler(
            Events.ITERATION_STARTED, lambda e: stage.on_progress((e.state.iteration - 1) / max(1, steps))
        )
    running: list[float] = []
    epoch_losses: list[float] = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: running.append(float(e.state.output[SSLKeys.LOSS.value]))
    )

    def _close_epoch(_: Any) -> None:
        epoch_losses.append(sum(running) / max(1, len(running)))
        running.clear()

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _close_epoch)
    start = time.perf_counter()
    trainer.run()
    return {"task": stage.task, "name": stage.label, "epochs": stage.epochs, "iterations": trainer.state.iteration,
            "epoch_losses": epoch_losses, "seconds": time.perf_counter() - start}
