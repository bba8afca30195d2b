"""Write masked-autoencoder reconstruction grids (input / masked / reconstruction) as PNG and to TensorBoard."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.utils import optional_import

from ..networks.patching import patchify, unpatchify
from ..utils.enums import SSLKeys

Image, _has_pil = optional_import("PIL.Image")

__all__ = ["ReconstructionImageHandler", "reconstruction_grid"]


def reconstruction_grid(
    image: torch.Tensor,
    pred: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int | Sequence[int],
    norm_pix_loss: bool = False,
    max_images: int = 4,
    slice_axis: int = -1,
    eps: float = 1e-6,
) -> np.ndarray:
    """Build one image grid: a row per sample, columns input | masked input | reconstruction | visible + recon.

    Args:
        image: ``(B, C, *spatial)`` input batch (2D or 3D).
        pred: ``(B, L, prod(patch_size) * C)`` predicted patches.
        mask: ``(B, L)``, 1 = masked.
        patch_size: the model's ``pred_patch_size``.
        norm_pix_loss: predictions are per-patch normalised; they are mapped back with each true patch's
            mean and std (as MAE visualisations do).
        max_images: rows shown.
        slice_axis: for 3D inputs the spatial axis (-1, -2, -3) whose middle slice is shown.
        eps: as the loss's ``eps``.

    Returns:
        ``(H_grid, W_grid, 3)`` uint8 array; each row is min-max scaled by its input's range.
    """
    n = min(int(max_images), image.shape[0])
    image, pred, mask = (t[:n].detach().float().cpu() for t in (image, pred, mask))
    spatial = tuple(image.shape[2:])
    target = patchify(image, patch_size)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} does not match the patchified image {tuple(target.shape)}.")
    if norm_pix_loss:
        mean = target.mean(-1, keepdim=True)
        std = target.std(-1, keepdim=True, unbiased=False)
        pred = pred * (std + eps) + mean
    recon = unpatchify(pred, patch_size, spatial)
    mask_img = unpatchify(mask[..., None].expand_as(pred).contiguous(), patch_size, spatial)
    lo = image.flatten(1).amin(1).view(-1, *[1] * (image.ndim - 1))
    hi = image.flatten(1).amax(1).view(-1, *[1] * (image.ndim - 1))
    fill = (lo + hi) / 2
    panels = [image, image * (1 - mask_img) + fill * mask_img, recon, image * (1 - mask_img) + recon * mask_img]
    rows = []
    for panel in panels:
        p = ((panel - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
        if p.ndim == 5:
            axis = 2 + (slice_axis % 3)
            p = p.select(axis, p.shape[axis] // 2)
        p = p[:, :3] if p.shape[1] >= 3 else p[:, :1].expand(-1, 3, -1, -1)  # (n, 3, H, W)
        rows.append(p)
    grid = torch.stack(rows, dim=1)  # (n, 4, 3, H, W)
    grid = torch.nn.functional.pad(grid, (1, 1, 1, 1), value=1.0)
    n_, cols, c, h, w = grid.shape
    grid = grid.permute(0, 3, 1, 4, 2).reshape(n_ * h, cols * w, c)
    return (grid.numpy() * 255).round().astype(np.uint8)


class ReconstructionImageHandler:
    """Every ``every_n_epochs`` epochs, render the last batch's reconstructions as PNG and/or to TensorBoard.

    Reads ``pred``/``mask`` and the input the network saw from ``engine.state.output`` (as written by
    :class:`~monai_ssl.engines.MaskedAutoencoderTrainer`; views made on the device are there only), else the input
    from ``engine.state.batch[image_key]``.

    Args:
        output_dir: folder for ``{prefix}_epoch{epoch:04d}.png`` files (``None``: no PNG).
        summary_writer: a TensorBoard ``SummaryWriter`` (anything with ``add_image``), or ``None``.
        every_n_epochs: rendering period in epochs.
        patch_size: prediction unit; defaults to ``engine.network.pred_patch_size``.
        norm_pix_loss: see :func:`reconstruction_grid`.
        max_images, slice_axis: see :func:`reconstruction_grid`.
        image_key, pred_key, mask_key: batch/output keys.
        prefix: file name prefix and TensorBoard tag.
        enabled: False attaches nothing (e.g. ``torch.distributed.get_rank() != 0`` in multi-GPU configs, so only
            one process writes the images).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        summary_writer: Any | None = None,
        every_n_epochs: int = 1,
        patch_size: int | Sequence[int] | None = None,
        norm_pix_loss: bool = False,
        max_images: int = 4,
        slice_axis: int = -1,
        image_key: str = SSLKeys.IMAGE.value,
        pred_key: str = SSLKeys.PRED.value,
        mask_key: str = SSLKeys.MASK.value,
        prefix: str = "reconstruction",
        enabled: bool = True,
    ) -> None:
        if output_dir is None and summary_writer is None:
            raise ValueError("ReconstructionImageHandler needs output_dir and/or summary_writer.")
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        if output_dir is not None and not _has_pil:
            raise ImportError("writing PNG files needs Pillow (pip install pillow).")
        self.output_dir = None if output_dir is None else os.fspath(output_dir)
        self.summary_writer = summary_writer
        self.every_n_epochs = int(every_n_epochs)
        self.patch_size = patch_size
        self.norm_pix_loss = norm_pix_loss
        self.max_images = max_images
        self.slice_axis = slice_axis
        self.image_key, self.pred_key, self.mask_key = image_key, pred_key, mask_key
        self.prefix = prefix
        self.enabled = bool(enabled)
        self.written: list[str] = []

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.every_n_epochs), self)

    def __call__(self, engine: Engine) -> None:
        output, batch = engine.state.output, engine.state.batch
        if isinstance(output, dict) and self.image_key in output:  # the prepared input (e.g. on-device views)
            batch = output
        for key, src, name in ((self.pred_key, output, "output"), (self.mask_key, output, "output"),
                               (self.image_key, batch, "batch")):
            if not isinstance(src, dict) or key not in src:
                raise KeyError(f"ReconstructionImageHandler: engine.state.{name} has no {key!r}.")
        patch_size = self.patch_size
        if patch_size is None:
            network = getattr(engine, "network", None)
            network = getattr(network, "module", network)  # DistributedDataParallel / DataParallel wrapper
            patch_size = getattr(network, "pred_patch_size", None)
            if patch_size is None:
                raise ValueError("patch_size not given and engine.network has no pred_patch_size.")
        grid = reconstruction_grid(
            torch.as_tensor(batch[self.image_key]), output[self.pred_key], output[self.mask_key], patch_size,
            norm_pix_loss=self.norm_pix_loss, max_images=self.max_images, slice_axis=self.slice_axis,
        )
        epoch = engine.state.epoch
        if self.output_dir is not None:
            os.makedirs(self.output_dir, exist_ok=True)
            path = os.path.join(self.output_dir, f"{self.prefix}_epoch{epoch:04d}.png")
            Image.fromarray(grid).save(path)
            self.written.append(path)
        if self.summary_writer is not None:
            self.summary_writer.add_image(self.prefix, grid, epoch, dataformats="HWC")
