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

An Ignite epoch may also end mid-pass: with ``epoch_length`` shorter than ``len(loader)`` Ignite keeps the loader's
iterator across epochs. The loader therefore counts the batches served in the current pass and checkpoints the
count; the first pass after :meth:`SeededDataLoader.load_state_dict` regenerates the interrupted pass (same pass
seed, hence the same order and worker seeds) and skips the batches already served, so a resumed run continues
exactly where the checkpoint left off.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader

from ..utils.dist import get_rank

__all__ = ["SeededDataLoader", "stream_seed"]

_NO_EPOCH = -1  # ``sampler_epoch`` of a loader whose sampler has no ``set_epoch``


def stream_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for the stream named by ``(seed, *keys)`` (e.g. ``(run seed, rank)``).

    Built with ``numpy.random.SeedSequence``, so nearby inputs (seed 0 rank 1 vs seed 1 rank 0) give unrelated
    streams, unlike ``seed + rank``.
    """
    words = [int(seed), *(int(k) for k in keys)]
    if any(w < 0 for w in words):
        raise ValueError(f"stream_seed: seed and keys must be non-negative integers, got {words}")
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class _PassIterator:
    """The iterator of one pass of a :class:`SeededDataLoader`: the base iterator, counting the batches it serves.

    Counts into its loader only while it is the loader's current pass (an older iterator still being drained does
    not move the count of a newer pass). Attributes other than the iterator protocol are the base iterator's.
    """

    def __init__(self, loader: SeededDataLoader, base: Iterator[Any], after_first: Any = None) -> None:
        self._loader = loader
        self._base = base
        self._after_first = after_first  # called once the first batch is drawn

    def __iter__(self) -> _PassIterator:
        return self

    def __len__(self) -> int:
        return len(self._base)  # type: ignore[arg-type]

    def __next__(self) -> Any:
        current = self._loader._current is self
        try:
            batch = next(self._base)
        except StopIteration:
            if current:
                self._loader._open = False
            raise
        if current:
            self._loader._served += 1
        if self._after_first is not None:
            after, self._after_first = self._after_first, None
            after()
        return batch

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_loader", "_base", "_after_first"):
            raise AttributeError(name)
        return getattr(self._base, name)


class SeededDataLoader(DataLoader):
    """``monai.data.DataLoader`` drawing every random number from a generator seeded by the run seed and the rank.

    * pass ``k`` (the ``k``-th ``iter(loader)``, one per epoch when an epoch is one pass) reseeds ``self.generator``
      with :func:`stream_seed` ``(seed, rank, k)``; shuffling (``shuffle=True``) and the workers' base seed use it;
    * with ``num_workers > 0`` each worker reseeds every MONAI ``Randomizable`` of its dataset copy from
      ``base seed + worker id`` (MONAI's ``worker_init_fn``): different per worker and per epoch;
    * with ``num_workers == 0`` the dataset's streams are seeded once from the generator (MONAI's rule) and then
      advance in the main process, so they differ per epoch too;
    * under ``torch.distributed`` the rank enters the generator's seed, so ranks draw differently.

    The loader is checkpointable (``state_dict`` / ``load_state_dict`` hold the seed, the pass counter and how far
    the current pass got), and :class:`~monai_ssl.handlers.RNGState` collects it and its dataset's streams when
    given the loader. A checkpoint taken mid-pass (an Ignite ``epoch_length`` shorter than a pass) resumes mid-pass:
    the first ``iter`` after ``load_state_dict`` regenerates the interrupted pass and skips the batches it had
    served, so the next batch is the one the uninterrupted run would have drawn:

    * ``num_workers == 0``: the skip advances the sampler only (no item is loaded); the dataset's transform streams,
      which live in this process, are restored by :class:`~monai_ssl.handlers.RNGState`;
    * ``num_workers > 0`` (or an ``IterableDataset``): each worker's streams depend on the items it processed, so
      the skipped batches are loaded and discarded, which replays the workers' streams;
    * a sampler with ``set_epoch`` (``DistributedSampler``, :class:`~monai_ssl.data.MixedModalitySampler`) draws
      the pass's order from its epoch when the pass starts; that epoch is checkpointed and set again while the pass
      is regenerated (then the current one is put back).

    A pass that was fully served resumes as a new pass. ``persistent_workers=True`` keeps the workers' streams
    across passes, which a resumed run cannot regenerate: it resumes, but not bit-identically.

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
        self._served = 0  # batches served in the current pass (the last one started)
        self._open = False  # the current pass has not raised StopIteration
        self._sampler_epoch = _NO_EPOCH  # the epoch sampler's epoch when the current pass started
        self._current: _PassIterator | None = None
        self._resume: tuple[int, int] | None = None  # (batches to skip, sampler epoch) of a loaded open pass
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.rank))
        super().__init__(dataset, generator=generator, **kwargs)

    def _epoch_sampler(self) -> Any | None:
        """The sampler whose ``set_epoch`` sets the pass's order, if any."""
        for s in (self.sampler, self.batch_sampler, getattr(self.batch_sampler, "sampler", None)):
            if callable(getattr(s, "set_epoch", None)) and isinstance(getattr(s, "epoch", None), int):
                return s
        return None

    def _pass_length(self) -> int | None:
        try:
            return len(self)
        except TypeError:  # an IterableDataset without __len__
            return None

    def __iter__(self) -> _PassIterator:
        resume, self._resume = self._resume, None
        sampler = self._epoch_sampler()
        now_epoch = sampler.epoch if sampler is not None else _NO_EPOCH
        if resume is None:
            index, skip, pass_epoch = self.passes, 0, now_epoch
            self.passes += 1
        else:  # regenerate the interrupted pass (the checkpoint counted it as started)
            index, (skip, pass_epoch) = self.passes - 1, resume
        self.generator.manual_seed(stream_seed(self.seed, self.rank, index))
        set_epoch = sampler is not None and pass_epoch != _NO_EPOCH and pass_epoch != now_epoch
        if set_epoch:
            sampler.set_epoch(pass_epoch)
        base = super().__iter__()
        put_back = (lambda: sampler.set_epoch(now_epoch)) if set_epoch else None
        try:
            self._skip(base, skip, index)
        finally:
            if put_back is not None and (skip > 0 or self.num_workers > 0):  # the pass's order is drawn
                put_back()
                put_back = None
        self._current = _PassIterator(self, base, after_first=put_back)  # else it is drawn with the first batch
        self._served, self._open, self._sampler_epoch = skip, True, pass_epoch
        return self._current

    def _skip(self, base: Any, n: int, index: int) -> None:
        """Advance the fresh iterator ``base`` of pass ``index`` past its first ``n`` batches."""
        if n <= 0:
            return
        by_index = (self.num_workers == 0 and not isinstance(self.dataset, torch.utils.data.IterableDataset)
                    and callable(getattr(base, "_next_index", None)))
        done = 0
        try:
            for done in range(1, n + 1):
                if by_index:  # the sampler's draw only: no item is loaded, no transform stream moves
                    base._next_index()
                    base._num_yielded += 1
                else:  # load and discard: replays each worker's transform streams
                    next(base)
        except StopIteration:
            raise RuntimeError(
                f"SeededDataLoader: the checkpoint was taken {n} batches into pass {index}, but this pass ends after "
                f"{done - 1} batches: the dataset, sampler or batch size differ from the checkpointed run's"
            ) from None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The run seed, the number of passes started and how far the last one got (the rank is the resuming
        process's own).

        ``served`` (batches served in the last pass started) counts only while ``pass_open`` (that pass is neither
        exhausted nor fully served); ``sampler_epoch`` is its sampler's epoch when it started (-1: no
        ``set_epoch``).
        """
        if self._resume is not None:  # loaded and not iterated yet: the loaded state
            served, sampler_epoch, pass_open = *self._resume, True
        else:
            served, sampler_epoch = self._served, self._sampler_epoch
            length = self._pass_length()
            pass_open = self._open and (length is None or served < length)
        if not pass_open:
            served, sampler_epoch = 0, _NO_EPOCH
        return {"seed": torch.tensor(self.seed), "passes": torch.tensor(self.passes),
                "served": torch.tensor(served), "pass_open": torch.tensor(pass_open),
                "sampler_epoch": torch.tensor(sampler_epoch)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`; the next ``iter`` continues the pass it describes (or starts the next one).

        A state without ``served`` (an older checkpoint) resumes with a new pass, as before.

        Raises:
            ValueError: the state has no started pass to be open, or a negative count.
        """
        self.seed, self.passes = int(state["seed"]), int(state["passes"])
        pass_open = bool(state.get("pass_open", False))
        served = int(state.get("served", 0))
        if served < 0 or self.passes < 0 or (pass_open and self.passes == 0):
            raise ValueError(f"SeededDataLoader.load_state_dict: inconsistent state (passes {self.passes}, served "
                             f"{served}, pass_open {pass_open})")
        self._current, self._served, self._open, self._sampler_epoch = None, 0, False, _NO_EPOCH
        self._resume = (served, int(state.get("sampler_epoch", _NO_EPOCH))) if pass_open else None
