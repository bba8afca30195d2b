"""Freezing a pretrained encoder for linear probing: one helper for the bundles, the runners and the Python API.

A linear probe (Chen et al., SimCLR, ICML 2020; He et al., MAE, CVPR 2022) trains only the head on top of frozen
features: the encoder's weights get no gradient *and* its BatchNorm statistics stay those of pretraining, which
``model.train()`` (called by MONAI's ``SupervisedTrainer`` every iteration) would otherwise start updating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

__all__ = ["HEAD_NAMES", "freeze_encoder", "unfreeze_encoder"]

#: child-module names taken for a classifier head: MONAI ``ResNet.fc``, ``ViT.classification_head``, the
#: project's ``ConvNeXt.head``, torchvision-style ``classifier``
HEAD_NAMES = ("fc", "classification_head", "head", "classifier")

_HOOK_ATTR = "_monai_ssl_freeze_hook"


def _keep_frozen_in_eval(frozen: Sequence[nn.Module]):
    def hook(module: nn.Module, args: Any) -> None:
        if module.training:  # SupervisedTrainer calls network.train() every iteration
            for m in frozen:
                m.eval()

    return hook


def freeze_encoder(model: nn.Module, head_names: Sequence[str] = HEAD_NAMES) -> list[nn.Module]:
    """Freeze every child module of ``model`` but its head (in place) and keep them in eval mode while training.

    The frozen children get ``requires_grad=False``; a forward pre-hook puts them back in eval mode whenever
    ``model`` runs in training mode, so BatchNorm running statistics and dropout stay as in evaluation. A second
    call replaces the first one's hook; :func:`unfreeze_encoder` undoes both.

    Args:
        model: a classifier whose head is a direct child (``fc``, ``classification_head``, ``head``, ...).
        head_names: names a head child may have; every child with one of them stays trainable.

    Returns:
        the frozen child modules.

    Raises:
        ValueError: no child of ``model`` is named one of ``head_names`` (naming the children).
    """
    heads = [n for n, _ in model.named_children() if n in head_names]
    if not heads:
        raise ValueError(
            f"freeze_encoder: {type(model).__name__} has no head module named one of {tuple(head_names)} "
            f"(children: {[n for n, _ in model.named_children()]}); pass head_names"
        )
    frozen = [m for n, m in model.named_children() if n not in heads]
    for m in frozen:
        m.requires_grad_(False)
    unfreeze_hook = getattr(model, _HOOK_ATTR, None)
    if unfreeze_hook is not None:
        unfreeze_hook.remove()
    setattr(model, _HOOK_ATTR, model.register_forward_pre_hook(_keep_frozen_in_eval(frozen)))
    return frozen


def unfreeze_encoder(model: nn.Module) -> None:
    """Undo :func:`freeze_encoder`: every parameter trains again and the eval-mode hook is removed."""
    model.requires_grad_(True)
    handle = getattr(model, _HOOK_ATTR, None)
    if handle is not None:
        handle.remove()
        delattr(model, _HOOK_ATTR)
