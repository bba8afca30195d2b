"""NT-Xent (normalised temperature-scaled cross-entropy), the SimCLR / MICLe contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.dist import gather_with_grad, get_rank, get_world_size

__all__ = ["NTXentLoss"]


class NTXentLoss(nn.Module):
    """Multi-view, multi-positive NT-Xent loss (Chen et al. 2020; Azizi et al. 2021 for MICLe).

    Embeddings are L2-normalised, compared with one matrix product, the self-similarity is masked out, and each
    anchor's loss is the mean negative log-softmax over its positives. Positives of an anchor are the other views
    of the same sample and, when ``group_ids`` or ``positive_mask`` is given, every view of the samples in its
    group (e.g. several images of one patient). All other views in the (optionally gathered) batch are negatives.
    For two views and no groups this is exactly SimCLR's loss, and it equals ``monai.losses.ContrastiveLoss`` at the
    same temperature.

    The similarities and softmax are computed in float32 with autocast disabled, so the loss is stable in
    fp16/bf16 training even at temperatures as low as 0.02.

    Args:
        temperature: softmax temperature ``tau`` (SimCLR: 0.1; MONAI's ContrastiveLoss defaults to 0.5).
        gather_distributed: gather embeddings from every process (``torch.distributed``) so negatives span the
            global batch; gradients flow back to each process's own embeddings.
        reduction: ``"mean"`` (over anchors), ``"sum"`` or ``"none"`` (per anchor, shape (V * B,) in
            view-major order).

    Call as ``loss(z1, z2)`` with (B, D) tensors, or ``loss(z)`` with a (V, B, D) tensor of V >= 2 views. Optional
    ``group_ids`` (B,) (ints; samples sharing an id are positives of each other; with ``gather_distributed`` ids
    must be globally unique) or ``positive_mask`` (B, B) bool (single process only).
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got '{reduction}'")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.reduction = reduction

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor | None = None,
        group_ids: torch.Tensor | None = None,
        positive_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        views = self._stack_views(z1, z2)
        num_views, batch, dim = views.shape
        with torch.autocast(device_type=views.device.type, enabled=False):
            z = F.normalize(views.float().reshape(num_views * batch, dim), dim=1)
            gather = self.gather_distributed and get_world_size() > 1
            z_all = gather_with_grad(z) if gather else z  # columns ordered (rank, view, sample)
            logits = z @ z_all.T / self.temperature  # (V*B, W*V*B)
            offset = get_rank() * num_views * batch if gather else 0
            rows = torch.arange(num_views * batch, device=z.device)
            logits[rows, rows + offset] = float("-inf")  # self-similarity
            if num_views == 2 and group_ids is None and positive_mask is None:
                target = (rows + batch) % (2 * batch) + offset
                return F.cross_entropy(logits, target, reduction=self.reduction)
            pos = self._positives(num_views, batch, group_ids, positive_mask, gather, z.device)
            log_prob = torch.log_softmax(logits, dim=1)
            per_anchor = -torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / pos.sum(1)
        if self.reduction == "mean":
            return per_anchor.mean()
        if self.reduction == "sum":
            return per_anchor.sum()
        return per_anchor

    @staticmethod
    def _stack_views(z1: torch.Tensor, z2: torch.Tensor | None) -> torch.Tensor:
        if z2 is not None:
            if z1.ndim != 2 or z1.shape != z2.shape:
                raise ValueError(f"z1 and z2 must both be (B, D) of equal shape, "
                                 f"got {tuple(z1.shape)} and {tuple(z2.shape)}")
            return torch.stack([z1, z2])
        if z1.ndim != 3 or z1.shape[0] < 2:
            raise ValueError(f"a single input must be (V, B, D) with V >= 2 views, got {tuple(z1.shape)}")
        return z1

    def _positives(self, num_views, batch, group_ids, positive_mask, gather, device) -> torch.Tensor:
        """(V*B, W*V*B) bool: same sample (or group), not self; columns in (rank, view, sample) order."""
        world = get_world_size() if gather else 1
        rank = get_rank() if gather else 0
        if positive_mask is not None:
            if gather:
                raise ValueError("positive_mask is not supported with gather_distributed; pass global group_ids")
            if positive_mask.shape != (batch, batch):
                raise ValueError(f"positive_mask must be ({batch}, {batch}), got {tuple(positive_mask.shape)}")
            sample_pos = positive_mask.to(device=device, dtype=torch.bool)
        else:
            if group_ids is None:
                ids = torch.arange(batch, device=device) + rank * batch
                ids_all = torch.arange(world * batch, device=device)
            else:
                if group_ids.shape != (batch,):
                    raise ValueError(f"group_ids must have shape ({batch},), got {tuple(group_ids.shape)}")
                ids = group_ids.to(device)
                ids_all = gather_with_grad(ids) if gather else ids
            sample_pos = ids[:, None] == ids_all[None, :]  # (B, W*B)
        # expand samples to views: rows (view, sample); columns (rank, view, sample)
        cols = sample_pos.reshape(batch, world, 1, batch).expand(batch, world, num_views, batch).reshape(batch, -1)
        pos = cols.unsqueeze(0).expand(num_views, batch, cols.shape[1]).reshape(num_views * batch, -1).clone()
        rows = torch.arange(num_views * batch, device=device)
        pos[rows, rows + rank * num_views * batch] = False
        return pos
