"""The thin trainer all SSL engines share: one optimisation step per iteration, everything else is a handler."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn
from monai.transforms import Transform
from torch import nn
from torch.optim import Optimizer

from ..utils.enums import SSLKeys

__all__ = ["SSLTrainer", "prepare_ssl_batch"]


def prepare_ssl_batch(batchdata: Any, device: torch.device | str | None = None, non_blocking: bool = False,
                      **kwargs: Any) -> dict:
    """Move every tensor of a batch dictionary to ``device``; other values (ids, paths) pass through.

    ``kwargs`` go to ``Tensor.to``; a ``memory_format`` (e.g. ``torch.channels_last`` through the trainer's
    ``to_kwargs``) is applied to the 4-D ``(B, C, H, W)`` / 5-D tensors it fits (``channels_last_3d`` for 5-D) and
    skipped for labels and ids.
    """
    if not isinstance(batchdata, dict):
        raise TypeError(f"SSL trainers expect dictionary batches, got {type(batchdata).__name__}")
    memory_format = kwargs.pop("memory_format", None)

    def move(v: torch.Tensor) -> torch.Tensor:
        v = v.to(device, non_blocking=non_blocking, **kwargs)
        if memory_format in (torch.channels_last, torch.channels_last_3d) and v.ndim in (4, 5):
            v = v.contiguous(memory_format=torch.channels_last if v.ndim == 4 else torch.channels_last_3d)
        return v

    return {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in batchdata.items()}


class SSLTrainer(Trainer):
    """Base trainer for self-supervised objectives, a thin ``monai.engines.Trainer``.

    Each iteration: prepare the batch -> ``compute_loss(engine, batch)`` under autocast -> backward (through a
    ``GradScaler`` for fp16) -> optional gradient-norm clipping -> optimizer step. Subclasses implement only
    :meth:`compute_loss`, returning a dict holding at least ``SSLKeys.LOSS``; it becomes ``engine.state.output``
    (tensors detached). Checkpointing, LR schedules, logging, NaN guarding and monitors are handlers.

    Fires MONAI's ``IterationEvents`` (FORWARD_COMPLETED, LOSS_COMPLETED before backward, BACKWARD_COMPLETED,
    MODEL_COMPLETED), so a handler on LOSS_COMPLETED can stop a bad step before it reaches the weights.

    Args:
        device, max_epochs, train_data_loader, epoch_length, non_blocking, iteration_update, postprocessing,
        key_train_metric, additional_metrics, metric_cmp_fn, train_handlers, event_names, event_to_attr,
        to_kwargs: as ``monai.engines.SupervisedTrainer``.
        network: the model being trained.
        optimizer: its optimizer.
        loss_function: the SSL loss (used by subclasses).
        prepare_batch: batch preparation; defaults to moving every tensor of the batch dict to ``device``
            (:class:`~monai_ssl.engines.DeviceViews` also makes the views there; one with ``attach`` gets the engine).
        amp: use automatic mixed precision.
        amp_dtype: ``torch.bfloat16`` (default) or ``torch.float16`` (adds a ``GradScaler``; the steps it skips on
            inf/NaN gradients are counted in ``skipped_steps`` and a run that skipped 1 % or more ends with a warning --
            on CPU a short fp16 run can skip every step while the scale comes down from 65536).
        grad_clip_norm: clip the global gradient norm to this value (None: no clipping).
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_ssl_batch,
        iteration_update: Callable | None = None,
        postprocessing: Transform | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        amp_dtype: torch.dtype = torch.bfloat16,
        grad_clip_norm: float | None = None,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
        to_kwargs: dict | None = None,
    ) -> None:
        if amp_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"amp_dtype must be torch.bfloat16 or torch.float16, got {amp_dtype}")
        super().__init__(
            device=torch.device(device),
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=train_handlers,
            amp=amp,
            event_names=[IterationEvents, *(event_names or [])],
            event_to_attr=event_to_attr,
            decollate=False,
            to_kwargs=to_kwargs,
        )
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.amp_dtype = amp_dtype
        self.grad_clip_norm = grad_clip_norm
        use_scaler = amp and amp_dtype == torch.float16
        self.grad_scaler = torch.amp.GradScaler(torch.device(device).type, enabled=use_scaler)
        self.skipped_steps = 0  # optimizer steps the fp16 GradScaler skipped (inf/NaN gradients) in this run
        self._steps = 0  # optimizer steps tried in this run (a resumed run starts at a later iteration)
        if hasattr(prepare_batch, "attach"):  # e.g. DeviceViews: seeds its draws from the engine's iteration
            prepare_batch.attach(self)

    def run(self) -> None:
        self.scaler = self.grad_scaler
        self.skipped_steps = self._steps = 0
        super(Trainer, self).run()
        if self.skipped_steps and 100 * self.skipped_steps >= self._steps:  # a few early skips of a long run are normal
            warnings.warn(
                f"amp_dtype=float16: the GradScaler skipped {self.skipped_steps} of {self._steps} optimizer "
                f"steps (inf/NaN gradients while the loss scale came down to {self.grad_scaler.get_scale():g}); the "
                f"weights moved in only {self._steps - self.skipped_steps} steps"
                + (" -- on CPU use amp_dtype=bfloat16" if self.state.device.type == "cpu" else ""), stacklevel=2)

    def compute_loss(self, engine: SSLTrainer, batch: dict) -> dict[str, Any]:
        """Forward pass and loss for one prepared batch; must return a dict with ``SSLKeys.LOSS``."""
        raise NotImplementedError

    def _iteration(self, engine: SSLTrainer, batchdata: dict) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=engine.state.device.type, dtype=engine.amp_dtype, enabled=engine.amp):
            output = engine.compute_loss(engine, batch)
        if SSLKeys.LOSS.value not in output:
            raise KeyError(f"{type(engine).__name__}.compute_loss must return '{SSLKeys.LOSS.value}'")
        engine.state.output = output
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss = output[SSLKeys.LOSS.value]
        engine.grad_scaler.scale(loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if engine.grad_clip_norm is not None:
            engine.grad_scaler.unscale_(engine.optimizer)
            torch.nn.utils.clip_grad_norm_(engine.network.parameters(), engine.grad_clip_norm)
        counting = engine.grad_scaler.is_enabled()  # fp16 only: reading the scale syncs with the device
        scale = engine.grad_scaler.get_scale() if counting else None
        engine.grad_scaler.step(engine.optimizer)
        engine.grad_scaler.update()
        engine._steps += 1
        engine.skipped_steps += int(counting and engine.grad_scaler.get_scale() < scale)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        engine.state.output = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in output.items()}
        return engine.state.output
