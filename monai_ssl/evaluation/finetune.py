"""Supervised fine-tuning of a (pretrained) classifier: layer-wise LR decay, warm-up + cosine, model selection.

``finetune_classifier`` is a thin wrapper around MONAI's ``SupervisedTrainer``: the LR schedule is
``warmup_cosine_schedule`` stepped per iteration by ``monai.handlers.LrScheduleHandler``, :class:`NaNGuard` stops
on a non-finite loss before the bad step, and an epoch handler keeps the weights of the best validation AUC.

Binary tasks: a network with **2 outputs** is trained with softmax cross-entropy (as the curriculum paper, de
Andrés Tamé et al., arXiv:2301.10687, and VIS-MAE, Liu et al., arXiv:2402.01034, do) and the positive-class
probability is ``softmax(logits)[:, 1]``; a network with **1 output** is trained with ``BCEWithLogits`` and scored
with ``sigmoid``. Multi-class: softmax cross-entropy;
multi-label: one sigmoid + BCE per class.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..utils.enums import SSLKeys

__all__ = [
    "TASKS",
    "balanced_class_weights",
    "classification_loss",
    "compute_auc",
    "finetune_classifier",
    "layer_id_fn",
    "layerwise_lr_decay_groups",
    "predict_proba",
]

TASKS = ("binary", "multiclass", "multilabel")

# parameter names (any prefix, e.g. "encoder." or "vit.") -> depth index; the head is whatever matches none
_VIT_EMBED = re.compile(r"(^|\.)(patch_embedding|cls_token|pos_embed|position_embeddings)(\.|$)")
_VIT_BLOCK = re.compile(r"(^|\.)blocks\.(\d+)\.")
_RESNET_STEM = re.compile(r"(^|\.)(conv1|bn1)\.")
_RESNET_STAGE = re.compile(r"(^|\.)layer(\d+)\.")
_CONVNEXT_DOWN = re.compile(r"(^|\.)downsample_layers\.(\d+)\.")
_CONVNEXT_STAGE = re.compile(r"(^|\.)stages\.(\d+)\.")
_NO_DECAY_NAMES = re.compile(r"(^|\.)(cls_token|pos_embed|position_embeddings|mask_token)$|norm|(^|\.)bn\d*\.")


def layer_id_fn(model: nn.Module) -> tuple[Callable[[str], int], int]:
    """Depth index of each parameter name and the number of depth levels, for ViT, ResNet or ConvNeXt names.

    * ViT (MONAI ``ViT`` / ``MaskedAutoencoderViT`` names): patch embedding, cls token and position embeddings are
      layer 0, ``blocks.i`` is layer ``i + 1``, everything else (final norm, classification head) the last layer.
    * ResNet (MONAI names): ``conv1``/``bn1`` stem 0, ``layerK`` is K, everything else (``fc``) the last layer.
    * ConvNeXt: ``downsample_layers.0`` 0, ``stages.i`` and ``downsample_layers.i`` (i >= 1) ``i + 1``, head last.

    Returns:
        ``(fn, num_layers)``: ``fn(name)`` in ``[0, num_layers - 1]``; ``num_layers - 1`` is the head.

    Raises:
        ValueError: no ViT, ResNet or ConvNeXt parameter names are found.
    """
    names = [n for n, _ in model.named_parameters()]

    def _max_index(pattern: re.Pattern) -> int:
        found = [int(m.group(2)) for n in names if (m := pattern.search(n))]
        return max(found) if found else -1

    if any(_VIT_BLOCK.search(n) for n in names):
        top = _max_index(_VIT_BLOCK) + 2

        def vit(name: str) -> int:
            if _VIT_EMBED.search(name):
                return 0
            m = _VIT_BLOCK.search(name)
            return int(m.group(2)) + 1 if m else top

        return vit, top + 1
    if any(_RESNET_STAGE.search(n) for n in names):
        top = _max_index(_RESNET_STAGE) + 1

        def resnet(name: str) -> int:
            if _RESNET_STEM.search(name):
                return 0
            m = _RESNET_STAGE.search(name)
            return int(m.group(2)) if m else top

        return resnet, top + 1
    if any(_CONVNEXT_STAGE.search(n) for n in names):
        top = _max_index(_CONVNEXT_STAGE) + 2

        def convnext(name: str) -> int:
            m = _CONVNEXT_STAGE.search(name) or _CONVNEXT_DOWN.search(name)
            if m is None:
                return top
            i = int(m.group(2))
            return 0 if (i == 0 and _CONVNEXT_DOWN.search(name)) else i + 1

        return convnext, top + 1
    raise ValueError(
        f"layer-wise LR decay: {type(model).__name__} has no ViT ('blocks.i'), ResNet ('layerK') or ConvNeXt "
        f"('stages.i') parameter names (first names: {names[:5]}); use layer_decay=None for one learning rate"
    )


def layerwise_lr_decay_groups(
    model: nn.Module, base_lr: float, decay: float = 0.75, weight_decay: float = 0.05
) -> list[dict[str, Any]]:
    """Optimiser parameter groups with learning rate ``base_lr * decay ** (num_layers - 1 - layer)``.

    The head gets ``base_lr``, each level below it ``decay`` times the one above (BEiT/MAE fine-tuning recipe;
    for ResNet/ConvNeXt the levels are stages, see :func:`layer_id_fn`). Biases, 1-d (norm) weights, and
    position/cls/mask tokens get no weight decay. Frozen parameters (``requires_grad=False``) are left out.

    Args:
        model: ViT / MaskedAutoencoderViT-named, ResNet or ConvNeXt classifier (names may carry a prefix).
        base_lr: learning rate of the head.
        decay: per-level factor in (0, 1].
        weight_decay: decay of the weight matrices/kernels.

    Returns:
        list of ``{"params", "lr", "weight_decay", "layer", "lr_scale"}`` for ``torch.optim`` optimisers
        (``lr_scale`` is informative; LR schedulers scale ``lr`` of every group by the same factor).
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    fn, num_layers = layer_id_fn(model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = fn(name)
        no_decay = p.ndim <= 1 or bool(_NO_DECAY_NAMES.search(name))
        scale = decay ** (num_layers - 1 - layer)
        group = groups.setdefault((layer, no_decay), {
            "params": [], "names": [], "lr": base_lr * scale, "lr_scale": scale, "layer": layer,
            "weight_decay": 0.0 if no_decay else weight_decay,
        })
        group["params"].append(p)
        group["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def classification_loss(
    task: str, num_outputs: int, class_weights: Sequence[float] | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss for ``task`` taking ``(logits (B, K), labels)``; labels may be ``(B,)`` or ``(B, 1)`` class indices
    (binary with K = 2, multiclass), ``(B,)``/``(B, 1)`` 0/1 (binary with K = 1) or ``(B, K)`` 0/1 (multilabel).

    ``class_weights`` (binary / multiclass): one weight per class for the cross-entropy (binary with one logit:
    ``pos_weight = w1 / w0``), e.g. :func:`balanced_class_weights` so a skewed label set does not reward
    predicting the majority class."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")
    if class_weights is not None and task == "multilabel":
        raise ValueError("class_weights are for binary / multiclass tasks")
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    if task == "multilabel" or (task == "binary" and num_outputs == 1):
        pos = None if weight is None else (weight[1] / weight[0]).reshape(1)
        bce = nn.BCEWithLogitsLoss(pos_weight=pos)

        def bce_loss(logits: Any, y: torch.Tensor) -> torch.Tensor:
            logits = _logits(logits)
            return bce(logits, y.reshape(logits.shape).to(logits.dtype))

        return bce_loss
    ce = nn.CrossEntropyLoss(weight=weight)

    def ce_loss(logits: Any, y: torch.Tensor) -> torch.Tensor:
        logits = _logits(logits)
        if ce.weight is not None and ce.weight.device != logits.device:
            ce.weight = ce.weight.to(logits.device)
        return ce(logits, y.reshape(-1).long())

    return ce_loss


def balanced_class_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """``N / (K * count[c])`` per class (scikit-learn's "balanced"); a class absent from ``labels`` gets 0.

    Raises:
        ValueError: a label outside ``[0, num_classes)``.
    """
    y = [int(v) for v in labels]
    bad = sorted({v for v in y if not 0 <= v < num_classes})
    if bad:
        raise ValueError(f"labels {bad} outside [0, {num_classes})")
    counts = [y.count(c) for c in range(num_classes)]
    return [len(y) / (num_classes * n) if n else 0.0 for n in counts]


def _logits(output: Any) -> torch.Tensor:
    """The logits of a network output: MONAI ``ViT(classification=True)`` returns ``(logits, hidden_states)``."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    logits = logits.float()
    if task == "binary":
        return torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, 1)[:, 1]
    return torch.softmax(logits, 1) if task == "multiclass" else torch.sigmoid(logits)


@torch.no_grad()
def predict_proba(
    model: nn.Module, loader: Iterable, device: torch.device | str = "cpu", task: str = "binary",
    image_key: str = SSLKeys.IMAGE.value, label_key: str = SSLKeys.LABEL.value,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of ``model`` (eval mode) over ``loader`` batches ``{image_key: (B, C, H, W), label_key}``.

    Returns:
        ``(probs, labels)`` on CPU: binary ``(N,)`` positive-class probability and ``(N,)`` labels; multiclass
        ``(N, K)`` softmax and ``(N,)`` labels; multilabel ``(N, K)`` sigmoids and ``(N, K)`` targets.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")
    was = model.training
    model.eval()
    probs, labels = [], []
    for batch in loader:
        if image_key not in batch:
            raise KeyError(f"predict_proba: batch has no '{image_key}' (keys: {sorted(batch)})")
        logits = _logits(model(torch.as_tensor(batch[image_key]).to(device)))
        probs.append(_probabilities(logits, task).cpu())
        if label_key in batch:
            y = torch.as_tensor(batch[label_key])
            labels.append(y.reshape(len(y), -1) if task == "multilabel" else y.reshape(-1))
    model.train(was)
    return torch.cat(probs), (torch.cat(labels) if labels else torch.empty(0))


def compute_auc(probs: torch.Tensor, labels: torch.Tensor, task: str = "binary") -> float:
    """ROC AUC of :func:`~monai_ssl.metrics.classification_metrics`: binary on the positive-class
    probability, multiclass one-vs-rest macro, multilabel macro over classes; NaN when only one class is present."""
    from ..metrics.classification import auc_score

    return auc_score(probs, labels, task)


def finetune_classifier(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    warmup_epochs: float = 1.0,
    weight_decay: float = 0.05,
    layer_decay: float | None = None,
    amp: bool = False,
    device: torch.device | str = "cpu",
    task: str = "binary",
    freeze_encoder: bool = False,
    head_names: Sequence[str] = ("fc", "classification_head", "head", "classifier"),
    epoch_length: int | None = None,
    val_interval: int = 1,
    select_best: bool = True,
    optimizer_fn: Callable[[list[dict]], torch.optim.Optimizer] | None = None,
    class_weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` (in place) with MONAI ``SupervisedTrainer`` and AdamW, warm-up + cosine per iteration.

    Args:
        model: classifier ``(B, C, H, W) -> (B, K)`` logits (e.g. MONAI ``resnet18(num_classes=2)``, or
            ``ViT(classification=True)`` whose ``(logits, hidden_states)`` output is unwrapped).
        train_loader: batches ``{"image": (B, C, H, W), "label": ...}``.
        val_loader: optional; AUC after every ``val_interval`` epochs, best weights restored when ``select_best``.
        epochs: training epochs (of ``epoch_length`` iterations if given, else ``len(train_loader)``).
        lr: peak learning rate (of the head with ``layer_decay``).
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        weight_decay: AdamW decay; none on biases, norms and tokens.
        layer_decay: None for one learning rate, else the per-level factor of :func:`layerwise_lr_decay_groups`.
        amp: mixed precision (passed to ``SupervisedTrainer``; CUDA only, ignored on CPU).
        device: training device.
        task: ``"binary"`` (2-output softmax CE or 1-output BCE, see the module docstring), ``"multiclass"`` or
            ``"multilabel"``.
        freeze_encoder: train only the head child module (``head_names``); the other children keep their weights
            and their BatchNorm statistics (kept in eval mode, :func:`monai_ssl.networks.freeze_encoder`): a
            linear probe trained end-to-end style. Undone when training ends.
        head_names: names of the head child module for ``freeze_encoder``.
        epoch_length: iterations per epoch (Ignite cycles the loader), to give every label fraction a fixed step
            budget.
        val_interval: validation period in epochs.
        select_best: restore the weights of the best validation AUC at the end.
        optimizer_fn: ``fn(param_groups) -> Optimizer`` replacing AdamW.
        class_weights: per-class cross-entropy weights (see :func:`classification_loss`), e.g.
            :func:`balanced_class_weights` of the labelled subset.

    Returns:
        ``{"train_loss": per-epoch mean loss, "val_auc": [(epoch, auc)], "best_epoch", "best_val_auc",
        "iterations"}``.
    """
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.handlers import LrScheduleHandler

    from ..handlers.nan_guard import NaNGuard
    from ..networks.freezing import freeze_encoder as freeze
    from ..networks.freezing import unfreeze_encoder
    from ..optimizers import param_groups_without_decay, warmup_cosine_schedule

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device)
    model.to(device)
    if freeze_encoder:
        freeze(model, head_names)
    if layer_decay is not None:
        groups = layerwise_lr_decay_groups(model, lr, layer_decay, weight_decay)
        for g in groups:
            g.pop("names")
    else:
        groups = [g for g in param_groups_without_decay(model, weight_decay) if g["params"]]
        for g in groups:
            g.pop("lars_adaptation", None)
    if not groups:
        raise ValueError("finetune_classifier: the model has no trainable parameters")
    optimizer = optimizer_fn(groups) if optimizer_fn else torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = epoch_length or len(train_loader)  # type: ignore[arg-type]
    total = epochs * steps_per_epoch
    scheduler = warmup_cosine_schedule(optimizer, int(round(warmup_epochs * steps_per_epoch)), total)
    num_outputs = _num_outputs(model, train_loader, device)
    trainer = SupervisedTrainer(
        device=device, max_epochs=epochs, train_data_loader=train_loader, network=model, optimizer=optimizer,
        loss_function=classification_loss(task, num_outputs, class_weights), epoch_length=epoch_length,
        amp=amp and device.type == "cuda", decollate=False,
        train_handlers=[LrScheduleHandler(scheduler, print_lr=False, epoch_level=False)],
    )
    NaNGuard(loss_key="loss").attach(trainer)
    history: dict[str, Any] = {"train_loss": [], "val_auc": [], "best_epoch": None, "best_val_auc": math.nan}
    running: list[float] = []
    best_state: dict[str, torch.Tensor] | None = None
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda e: running.append(float(e.state.output["loss"].detach())))

    def _epoch_done(engine: Any) -> None:
        nonlocal best_state
        history["train_loss"].append(sum(running) / max(1, len(running)))
        running.clear()
        if val_loader is None or engine.state.epoch % val_interval and engine.state.epoch != epochs:
            return
        auc = compute_auc(*predict_proba(model, val_loader, device, task), task=task)
        history["val_auc"].append((engine.state.epoch, auc))
        if select_best and (best_state is None or auc > history["best_val_auc"]):
            history["best_epoch"], history["best_val_auc"] = engine.state.epoch, auc
            best_state = copy.deepcopy(model.state_dict())

    trainer.add_event_handler(Events.EPOCH_COMPLETED, _epoch_done)
    trainer.run()
    if best_state is not None:
        model.load_state_dict(best_state)
    if freeze_encoder:
        unfreeze_encoder(model)
    history["iterations"] = trainer.state.iteration
    return history


@torch.no_grad()
def _num_outputs(model: nn.Module, loader: Iterable, device: torch.device) -> int:
    """Logit count K: from a final ``nn.Linear`` if there is one, else from one forward pass of a first batch."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if last:
        return last[-1].out_features
    batch = next(iter(loader))
    was = model.training
    model.eval()
    k = _logits(model(torch.as_tensor(batch[SSLKeys.IMAGE.value])[:1].to(device))).shape[1]
    model.train(was)
    return int(k)
