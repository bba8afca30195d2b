"""A DataLoader whose random draws all come from the run seed: distinct per worker, per epoch and per rank.

PyTorch's ``DataLoader`` forks its workers with copies of the dataset, so a MONAI ``Randomizable`` transform (or a
:class:`~monai_ssl.data.MultiInstanceDataset` pair draw) that nobody reseeds replays the same stream in every worker
and every epoch. MONAI's ``DataLoader`` fixes the workers (its ``worker_init_fn`` reseeds every ``Randomizable`` of
the worker's dataset copy from the worker's seed, which PyTorch derives from a base seed drawn from the loader's
``generator`` once per epoch, plus the worker id), but by default the base seed comes from the global torch RNG, so
every rank of a ``torchrun`` job that seeded alike draws alike. :class:`SeededDataLoader` is MONAI's ``DataLoader``
with its own ``torch.Generator``, reseeded from ``(seed, rank, pass)`` at the start of every pass over the data:
every draw (shuffling, the per-pass base seed, hence each worker's transform streams) is a function of the run seed,
the rank, the pass and the worker id. Its pass counter is part of :class:`~monai_ssl.handlers.RNGState`, so a resumed
run draws what the uninterrupted one would have drawn. (Reseeding per pass, rather than checkpointing the generator,
matters: PyTorch's ``RandomSampler`` draws once more from the generator when a pass is exhausted, which happens after
the epoch's checkpoint, so a restored generator state would be one draw behind.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader

from ..utils.dist import get_rank

__all__ = ["SeededDataLoader", "stream_seed"]


def stream_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for the stream named by ``(seed, *keys)`` (e.g. ``(run seed, rank)``).

    Built with ``numpy.random.SeedSequence``, so nearby inputs (seed 0 rank 1 vs seed 1 rank 0) give unrelated
    streams, unlike ``seed + rank``.
    """
    words = [int(seed), *(int(k) for k in keys)]
    if any(w < 0 for w in words):
        raise ValueError(f"stream_seed: seed and keys must be non-negative integers, got {words}")
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class SeededDataLoader(DataLoader):
    """``monai.data.DataLoader`` drawing every random number from a generator seeded by the run seed and the rank.

    * pass ``k`` (the ``k``-th ``iter(loader)``, one per epoch when an epoch is one pass) reseeds ``self.generator``
      with :func:`stream_seed` ``(seed, rank, k)``; shuffling (``shuffle=True``) and the workers' base seed use it;
    * with ``num_workers > 0`` each worker reseeds every MONAI ``Randomizable`` of its dataset copy from
      ``base seed + worker id`` (MONAI's ``worker_init_fn``): different per worker and per epoch;
    * with ``num_workers == 0`` the dataset's streams are seeded once from the generator (MONAI's rule) and then
      advance in the main process, so they differ per epoch too;
    * under ``torch.distributed`` the rank enters the generator's seed, so ranks draw differently.

    The loader is checkpointable (``state_dict`` / ``load_state_dict`` hold the seed and the pass counter), and
    :class:`~monai_ssl.handlers.RNGState` collects it and its dataset's streams when given the loader.

    Args:
        dataset: the dataset (its ``Randomizable`` parts are reseeded as above).
        seed: the run seed.
        rank: process rank mixed into the seed (default: ``torch.distributed`` rank, 0 without it).
        kwargs: as ``monai.data.DataLoader`` / ``torch.utils.data.DataLoader`` except ``generator``.

    Raises:
        ValueError: a ``generator`` is passed (this loader owns it).
    """

    def __init__(self, dataset: Any, seed: int = 0, rank: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("generator") is not None:
            raise ValueError("SeededDataLoader owns its generator (seeded from `seed` and the rank); "
                             "pass `seed` instead of `generator`")
        kwargs.pop("generator", None)
        self.seed = int(seed)
        self.rank = get_rank() if rank is None else int(rank)
        self.passes = 0
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.rank))
        super().__init__(dataset, generator=generator, **kwargs)

    def __iter__(self):
        self.generator.manual_seed(stream_seed(self.seed, self.rank, self.passes))
        self.passes += 1
        return super().__iter__()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The run seed and the number of passes started (the rank is the resuming process's own)."""
        return {"seed": torch.tensor(self.seed), "passes": torch.tensor(self.passes)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.seed, self.passes = int(state["seed"]), int(state["passes"])
