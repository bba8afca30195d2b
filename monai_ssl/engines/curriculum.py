"""Curricular self-supervised learning (Tamé et al. 2023; Sirotkin et al. 2021; METHODS.md §2).

The curriculum is over **pretext tasks**, not samples: one backbone is trained through a sequence of stages
(e.g. rotation -> jigsaw -> contrastive); each stage wraps the *current* backbone in its own task head, trains
it with a fresh optimiser and schedule, then drops the head and hands the backbone to the next stage. The order
is given by the user, ranked by a short linear-probe run per task (weakest first, so the most transferable task
comes last), or found by exhaustive search over the orders of <= 3 tasks.

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

import copy
import itertools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.data import MetaTensor
from torch import nn
from torch.optim import Optimizer

from ..utils.enums import SSLKeys
from .base import SSLTrainer
from ..optimizers import build_optimizer, warmup_cosine_schedule

__all__ = [
    "CLASSIFICATION_TASKS",
    "CurriculumStage",
    "PretextTrainer",
    "linear_ramp",
    "run_stage",
    "rank_by_probe",
    "search_order",
    "run_curriculum",
]

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

    METHODS.md §2.3 (optional, ours): e.g. crop minimum area ``linear_ramp(0.6, 0.08)`` within a stage.
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
        from ..networks.nets.contrastive import ContrastiveModel

        from ..networks.blocks.heads import ProjectionHead

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
        scheduler_fn = stage.scheduler_fn or (lambda opt, total: warmup_cosine_schedule(opt, max(1, total // 10), total))
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


def _run_sequence(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, device: torch.device | str,
    output_dir: Path | None,
) -> list[dict[str, Any]]:
    summaries = []
    for i, stage in enumerate(stages):
        summary = run_stage(stage, encoder, feature_dim, device)
        summary["index"] = i
        if output_dir is not None:
            path = output_dir / f"stage{i}_{stage.label}_encoder.pt"
            torch.save({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, path)
            summary["checkpoint"] = str(path)
        summaries.append(summary)
    return summaries


def rank_by_probe(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, probe_fn: Callable[[nn.Module], float],
    device: torch.device | str = "cpu", probe_epochs: int | None = None,
) -> list[tuple[str, float]]:
    """Train each stage alone (from a copy of ``encoder``, ``probe_epochs`` each), score it with ``probe_fn``.

    Args:
        probe_fn: ``probe_fn(encoder) -> score``, higher is better (e.g. linear-probe AUC on a labelled val split).
        probe_epochs: short budget per task (default: each stage's own epochs).

    Returns:
        ``[(stage label, score), ...]`` sorted from the weakest to the strongest task.
    """
    scores = []
    for stage in stages:
        trial = copy.deepcopy(encoder)
        run_stage(replace(stage, epochs=probe_epochs or stage.epochs), trial, feature_dim, device)
        scores.append((stage.label, float(probe_fn(trial))))
    return sorted(scores, key=lambda s: s[1])


def search_order(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, probe_fn: Callable[[nn.Module], float],
    device: torch.device | str = "cpu", probe_epochs: int | None = None, max_tasks: int = 3,
) -> list[tuple[tuple[str, ...], float]]:
    """Exhaustive search: run every order of the stages (from copies of ``encoder``) and score each with ``probe_fn``.

    Returns:
        ``[(order, score), ...]`` best first. Raises ``ValueError`` for more than ``max_tasks`` stages (n! runs).
    """
    if len(stages) > max_tasks:
        raise ValueError(f"exhaustive search over {len(stages)} tasks is {len(stages)}! runs; max_tasks={max_tasks}.")
    results = []
    for perm in itertools.permutations(stages):
        trial = copy.deepcopy(encoder)
        short = [replace(s, epochs=probe_epochs or s.epochs) for s in perm]
        _run_sequence(short, trial, feature_dim, device, None)
        results.append((tuple(s.label for s in perm), float(probe_fn(trial))))
    return sorted(results, key=lambda r: -r[1])


def run_curriculum(
    stages: Sequence[CurriculumStage],
    encoder: nn.Module,
    feature_dim: int,
    order: str | Sequence[str] = "user",
    probe_fn: Callable[[nn.Module], float] | None = None,
    probe_epochs: int | None = None,
    device: torch.device | str = "cpu",
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``encoder`` in place through a curriculum of pretext-task stages and return a summary.

    Args:
        stages: the task pool, each a :class:`CurriculumStage` (user order = list order; e.g. rotation -> jigsaw
            -> contrastive, METHODS.md's default).
        encoder: backbone returning pooled ``(B, F)`` features or ``(B, F, *spatial)`` maps; trained in place.
        feature_dim: F.
        order: ``"user"``; ``"probe"`` (each task alone for ``probe_epochs``, ordered weakest -> strongest by
            ``probe_fn``); ``"search"`` (every order of <= 3 tasks, best ``probe_fn`` score kept); or an explicit
            sequence of stage labels.
        probe_fn: ``probe_fn(encoder) -> score`` (higher is better), required for ``"probe"``/``"search"``.
        probe_epochs: budget per stage during ranking/search (default: the stage's epochs).
        device: training device.
        output_dir: where to write ``stage<i>_<name>_encoder.pt`` (encoder state dict after each stage, loadable
            with ``torch.load(..., weights_only=True)``) and ``summary.json``.

    Returns:
        ``{"order": [labels], "stages": [per-stage summary], "probe": ranking or search scores or None}``.
    """
    by_label = {s.label: s for s in stages}
    if len(by_label) != len(stages):
        raise ValueError(f"stage labels must be unique, got {[s.label for s in stages]}; set CurriculumStage.name.")
    probe: Any = None
    if isinstance(order, str) and order in ("probe", "search"):
        if probe_fn is None:
            raise ValueError(f"order='{order}' needs a probe_fn(encoder) -> score.")
        if order == "probe":
            probe = rank_by_probe(stages, encoder, feature_dim, probe_fn, device, probe_epochs)
            labels = [name for name, _ in probe]
        else:
            probe = search_order(stages, encoder, feature_dim, probe_fn, device, probe_epochs)
            labels = list(probe[0][0])
    elif isinstance(order, str) and order == "user":
        labels = list(by_label)
    elif isinstance(order, str):
        raise ValueError(f"order must be 'user', 'probe', 'search' or a sequence of stage labels, got '{order}'.")
    else:
        labels = list(order)
        unknown = [name for name in labels if name not in by_label]
        if unknown:
            raise ValueError(f"unknown stage labels {unknown}; stages are {list(by_label)}.")
    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    summaries = _run_sequence([by_label[n] for n in labels], encoder, feature_dim, device, out_dir)
    result = {"order": labels, "stages": summaries, "probe": probe}
    if out_dir is not None:
        (out_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result
