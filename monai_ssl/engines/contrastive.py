"""SimCLR / MICLe trainer."""

from __future__ import annotations

import zlib
from typing import Any

import torch

from ..utils.enums import SSLKeys, view_key
from .base import SSLTrainer

__all__ = ["ContrastiveTrainer"]


class ContrastiveTrainer(SSLTrainer):
    """Contrastive pretraining (SimCLR; MICLe when fed by :class:`~monai_ssl.data.MultiInstanceDataset`).

    Each batch holds ``num_views`` views under ``"<image_key>_view_<i>"``; they are concatenated into one forward
    pass (so BatchNorm sees every view), the model's ``"projection"`` output (V * B, D) is reshaped to (V, B, D)
    and passed to the loss (:class:`~monai_ssl.losses.NTXentLoss`). With ``group_key`` (e.g. ``"patient_id"``) the
    batch's group ids are passed as ``group_ids`` so that different samples of one group are positives (useful when
    a bag is a study and a patient can have several studies in one batch).

    Args:
        num_views: views per sample (>= 2).
        image_key: base key of the views.
        group_key: optional batch key of group ids (ints or strings; strings are hashed with CRC32).
        other arguments: see :class:`~monai_ssl.engines.SSLTrainer`.

    ``engine.state.output`` holds ``loss``, ``features`` (V * B, F) and ``projection`` (V * B, D).
    """

    def __init__(self, *args: Any, num_views: int = 2, image_key: str = SSLKeys.IMAGE.value,
                 group_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if num_views < 2:
            raise ValueError(f"num_views must be >= 2, got {num_views}")
        self.num_views = num_views
        self.image_key = image_key
        self.group_key = group_key

    def _group_ids(self, batch: dict, device: torch.device) -> torch.Tensor | None:
        if self.group_key is None:
            return None
        ids = batch[self.group_key]
        if isinstance(ids, torch.Tensor):
            return ids.to(device=device, dtype=torch.long)
        return torch.tensor([zlib.crc32(str(i).encode()) for i in ids], dtype=torch.long, device=device)

    def compute_loss(self, engine: ContrastiveTrainer, batch: dict) -> dict[str, Any]:
        keys = [view_key(self.image_key, i) for i in range(self.num_views)]
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(f"batch lacks view keys {missing}; present: {sorted(batch)}")
        views = [batch[k] for k in keys]
        out = engine.network(torch.cat(views, dim=0))
        z = out[SSLKeys.PROJECTION.value]
        z = z.reshape(self.num_views, views[0].shape[0], -1)
        loss = engine.loss_function(z, group_ids=self._group_ids(batch, z.device))
        return {SSLKeys.LOSS.value: loss, **out}
