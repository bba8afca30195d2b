"""Distributed helpers that work unchanged in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["get_rank", "get_world_size", "gather_with_grad"]


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process (0 without ``torch.distributed``)."""
    return dist.get_rank() if _active() else 0


def get_world_size() -> int:
    """Number of processes (1 without ``torch.distributed``)."""
    return dist.get_world_size() if _active() else 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather ``tensor`` (N, ...) from every process along dim 0, keeping gradients.

    Gradients of the gathered result flow back to each process's own slice (summed over processes by
    ``torch.distributed.nn.functional.all_gather``'s backward). Every process must pass the same shape.
    In a single process it returns ``tensor`` itself.

    Returns:
        (world_size * N, ...) tensor ordered by rank.
    """
    if get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)
