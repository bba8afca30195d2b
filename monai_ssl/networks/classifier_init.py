"""Set a classifier up for fine-tuning or linear probing from a pretrained encoder checkpoint."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

from torch import nn

__all__ = ["prepare_classifier"]

logger = logging.getLogger(__name__)


def _check_stem_stride(network: nn.Module, pretrained_ckpt: str | os.PathLike) -> None:
    """Warn when the encoder export's sidecar (``<ckpt>.json``, see ``export_encoder``) records a
    ``conv1_t_stride`` other than the stride of ``network.conv1``: the weights fit, but the filters see another
    scale."""
    sidecar = Path(f"{pretrained_ckpt}.json")
    conv1 = getattr(network, "conv1", None)
    if not sidecar.is_file() or not isinstance(getattr(conv1, "stride", None), tuple):
        return
    try:
        target = str(json.loads(sidecar.read_text()).get("target", ""))
    except (OSError, ValueError, AttributeError):
        return
    found = re.search(r"conv1_t_stride\s*=\s*(\d+)", target)
    if found and int(found.group(1)) != conv1.stride[0]:
        warnings.warn(f"pretrained_ckpt {pretrained_ckpt}: the encoder was pretrained with conv1_t_stride="
                      f"{found.group(1)} ({sidecar.name}: {target}), the classifier's conv1 has stride "
                      f"{conv1.stride[0]} (config key 'stem_stride'): the weights load, but every filter sees the "
                      f"image at another scale; set --stem_stride {found.group(1)}", stacklevel=3)


def prepare_classifier(
    network: nn.Module,
    pretrained_ckpt: str | os.PathLike | None = None,
    pretrained_kind: str = "contrastive_resnet",
    mode: str = "finetune",
    head_name: str | None = None,
    min_loaded_fraction: float = 0.9,
) -> nn.Module:
    """Initialise ``network`` from a pretrained checkpoint and set it up for ``mode`` (in place).

    Args:
        network: the classifier (MONAI ``resnet18(num_classes=K)``, monai-ssl ``ConvNeXt``; its head is the child
            ``head_name``).
        pretrained_ckpt: checkpoint for :func:`monai_ssl.networks.load_pretrained`; ``""``/None = from scratch.
        pretrained_kind: a kind of :data:`monai_ssl.networks.PRETRAINED_KINDS` (``contrastive_resnet`` for the
            ``micle_pretrain`` export, ``state_dict``...).
        mode: ``finetune`` (every weight trains) or ``linear_probe`` (only the head trains; the encoder's
            weights are frozen and its BatchNorm statistics kept, by :func:`monai_ssl.networks.freeze_encoder`).
        head_name: name of the head child module; None: ``fc`` (ResNet) or, without one, ``head`` (ConvNeXt).
        min_loaded_fraction: passed to ``load_pretrained``.

    A ``conv1_t_stride`` in the ``target`` of the checkpoint's sidecar (``<pretrained_ckpt>.json``, written by the
    pretraining bundles' encoder export) that differs from the stride of ``network.conv1`` is warned about.

    Raises:
        ValueError: unknown ``mode`` or head, or a checkpoint that does not fit (see ``load_pretrained``).
        FileNotFoundError: ``pretrained_ckpt`` does not exist (naming the config key).
    """
    from ..utils.config import choose, require_path
    from .freezing import freeze_encoder
    from .pretrained import load_pretrained

    choose({"finetune": 1, "linear_probe": 1}, mode, "mode")
    if head_name is None:
        head_name = "head" if not hasattr(network, "fc") and hasattr(network, "head") else "fc"
    if pretrained_ckpt:
        require_path(pretrained_ckpt, "pretrained_ckpt", "file")
        report = load_pretrained(network, pretrained_ckpt, kind=pretrained_kind,
                                 min_loaded_fraction=min_loaded_fraction, verbose=False)
        logger.info("pretrained_ckpt %s: loaded %d tensors (%.0f%%), missing %s", pretrained_ckpt,
                    len(report.loaded), 100 * report.loaded_fraction, sorted(report.missing))
        _check_stem_stride(network, pretrained_ckpt)
    elif mode == "linear_probe":
        logger.warning("mode=linear_probe without pretrained_ckpt: probing a randomly initialised encoder")
    if mode == "linear_probe":
        children = dict(network.named_children())
        if head_name not in children:
            raise ValueError(f"config key 'mode': linear_probe needs a head child '{head_name}' in "
                             f"{type(network).__name__} (children: {sorted(children)})")
        freeze_encoder(network, (head_name,))
    return network
