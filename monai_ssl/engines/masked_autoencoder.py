"""Masked-autoencoder trainer (ViT-MAE, Swin-MAE, ConvNeXt-MAE)."""

from __future__ import annotations

from typing import Any

import torch

from ..utils.enums import SSLKeys
from .base import SSLTrainer

__all__ = ["MaskedAutoencoderTrainer"]


class MaskedAutoencoderTrainer(SSLTrainer):
    """Masked-image-modelling pretraining, a thin :class:`~monai_ssl.engines.SSLTrainer`.

    Each iteration: ``batch[image_key] (B, C, *spatial)`` -> ``network`` -> ``(pred (B, L, P), mask (B, L))``
    -> ``loss_function(pred, image, mask)`` (:class:`~monai_ssl.losses.MaskedReconstructionLoss` built with
    the network's ``pred_patch_size``). Any model following that contract works
    (:class:`~monai_ssl.networks.nets.MaskedAutoencoderViT`, Swin-MAE, ConvNeXt-MAE). AMP, clipping,
    checkpoints, schedules and image logging come from :class:`SSLTrainer` and handlers (e.g.
    :class:`~monai_ssl.handlers.ReconstructionImageHandler`).

    Args:
        image_key: batch key of the images.
        other arguments: see :class:`~monai_ssl.engines.SSLTrainer`.

    ``engine.state.output`` holds ``loss`` (scalar), ``pred`` (B, L, P), ``mask`` (B, L) and the input ``image``
    the network saw (after ``prepare_batch``, e.g. on-device views), detached.

    Example::

        net = MaskedAutoencoderViT(1, 224, 16, spatial_dims=2, hidden_size=384, num_layers=6, num_heads=6)
        loss = MaskedReconstructionLoss(net.pred_patch_size, spatial_dims=2, norm_pix_loss=True)
        trainer = MaskedAutoencoderTrainer("cpu", 10, loader, net, torch.optim.AdamW(net.parameters()), loss)
        trainer.run()
    """

    def __init__(self, *args: Any, image_key: str = SSLKeys.IMAGE.value, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.image_key = image_key

    def compute_loss(self, engine: MaskedAutoencoderTrainer, batch: dict) -> dict[str, Any]:
        if self.image_key not in batch:
            raise KeyError(f"batch lacks the image key {self.image_key!r}; present: {sorted(batch)}")
        image = batch[self.image_key]
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"batch[{self.image_key!r}] must be a tensor, got {type(image).__name__}")
        if hasattr(image, "as_tensor"):  # MetaTensor: drop metadata tracking in the hot path
            image = image.as_tensor()
        pred, mask = engine.network(image)
        loss = engine.loss_function(pred, image, mask)
        return {SSLKeys.LOSS.value: loss, SSLKeys.PRED.value: pred, SSLKeys.MASK.value: mask, self.image_key: image}
