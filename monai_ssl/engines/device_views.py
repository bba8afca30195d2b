"""Views made on the training device: a ``prepare_batch`` for the SSL trainers (``views_on: device``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data.loader import stream_seed
from ..utils.dist import get_rank
from ..utils.enums import SSLKeys, view_key
from .base import prepare_ssl_batch

__all__ = ["DeviceViews"]


class DeviceViews:
    """Move a batch to the device, then make its views there with a batched augmentation.

    Use as the trainer's ``prepare_batch`` when the loader yields un-augmented (already resized) images: each
    tensor under ``keys`` is replaced by ``augmentation(tensor, generator)`` (e.g.
    :func:`~monai_ssl.transforms.batched_cxr_augmentations`); with ``num_views`` set, each key ``k`` is replaced by
    ``num_views`` independent views ``"<k>_view_<i>"`` (SimCLR from a plain image dataset). For MICLe, keep the
    dataset's two source images (``image_view_0``, ``image_view_1``, its ``view_transform`` an identity) and list
    both keys here: each gets its own draw.

    The draws of iteration ``t`` on rank ``r`` come from a generator seeded with ``stream_seed(seed, r, t, j)`` (``j``
    the output's index), so they are distinct per rank, iteration and view, and a resumed run (whose engine restarts
    at its checkpointed iteration) draws what the uninterrupted run would have drawn; no state to checkpoint.
    :class:`~monai_ssl.engines.SSLTrainer` calls :meth:`attach` with itself; without an engine the iteration is
    counted here (see :meth:`state_dict`).

    Args:
        augmentation: batched view transform ``(images (B, C, *spatial), generator) -> (B, C, *size)``.
        keys: batch keys to augment.
        seed: the run seed.
        num_views: None (augment each key in place) or the number of views to make of each key.
        memory_format: output memory format (e.g. ``torch.channels_last``); also taken from the trainer's
            ``to_kwargs``.
    """

    def __init__(self, augmentation: Callable, keys: str | Sequence[str] = SSLKeys.IMAGE.value, seed: int = 0,
                 num_views: int | None = None, memory_format: torch.memory_format | None = None) -> None:
        if num_views is not None and num_views < 1:
            raise ValueError(f"num_views must be None or >= 1, got {num_views}")
        self.augmentation = augmentation
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.seed = int(seed)
        self.num_views = num_views
        self.memory_format = memory_format
        self.iteration = 0  # used only when no engine is attached
        self._engine: Callable[[], Any] | None = None

    def attach(self, engine: Any) -> None:
        """Read the iteration from ``engine.state`` (a weak reference: the engine owns this object)."""
        self._engine = weakref.ref(engine)

    def state_dict(self) -> dict[str, int]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iteration = int(state["iteration"])

    def _step(self) -> int:
        engine = self._engine() if self._engine is not None else None
        if engine is not None:
            return int(engine.state.iteration)
        self.iteration += 1
        return self.iteration

    def __call__(self, batchdata: dict, device: torch.device | str | None = None, non_blocking: bool = False,
                 **kwargs: Any) -> dict:
        memory_format = kwargs.pop("memory_format", self.memory_format)
        batch = prepare_ssl_batch(batchdata, device, non_blocking, **kwargs)
        missing = [k for k in self.keys if k not in batch]
        if missing:
            raise KeyError(f"DeviceViews: the batch lacks keys {missing} (present: {sorted(batch)}); with "
                           "views_on: device the loader must yield the un-augmented images under these keys")
        step, rank = self._step(), get_rank()
        out_index = 0
        for key in self.keys:
            images = batch.pop(key) if self.num_views is not None else batch[key]
            names = [key] if self.num_views is None else [view_key(key, i) for i in range(self.num_views)]
            for name in names:
                gen = torch.Generator().manual_seed(stream_seed(self.seed, rank, step, out_index))
                view = self.augmentation(images, gen)
                if memory_format in (torch.channels_last, torch.channels_last_3d) and view.ndim in (4, 5):
                    # channels-last of the view's rank: a 3D view gets channels_last_3d
                    view = view.contiguous(memory_format=torch.channels_last if view.ndim == 4
                                           else torch.channels_last_3d)
                elif memory_format is not None:
                    view = view.contiguous(memory_format=memory_format)
                batch[name] = view
                out_index += 1
        return batch
