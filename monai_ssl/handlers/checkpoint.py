"""Checkpoints that resume a run exactly: model, optimizer, scheduler, scaler, engine counters and RNG states."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from ..data.loader import SeededDataLoader

__all__ = ["RNGState", "SSLCheckpointHandler", "load_checkpoint", "latest_checkpoint"]

logger = logging.getLogger(__name__)


def _find_random_states(root: Any, max_depth: int = 64) -> list[Any]:
    """Every ``numpy.random.RandomState``, ``torch.Generator`` and :class:`~monai_ssl.data.SeededDataLoader`
    reachable from ``root`` through attributes, lists and dicts.

    MONAI's ``Randomizable`` transforms keep their stream in ``.R``; a ``SeededDataLoader``'s pass counter sets its
    shuffling and worker seeds. Collecting them lets a checkpoint restore the exact augmentation stream of datasets,
    transform chains and loaders. A ``DataLoader`` is entered through its dataset, generator and samplers only
    (never its live worker iterator).
    """
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if depth > max_depth or id(obj) in seen or isinstance(obj, (str, bytes, int, float, torch.Tensor, np.ndarray)):
            return
        seen.add(id(obj))
        if isinstance(obj, (np.random.RandomState, torch.Generator)):
            found.append(obj)
            return
        if isinstance(obj, torch.utils.data.DataLoader):
            if isinstance(obj, SeededDataLoader):
                found.append(obj)
            children = [obj.dataset, obj.generator, obj.sampler, obj.batch_sampler]
        elif isinstance(obj, Mapping):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            children = list(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
            children = list(vars(obj).values())
        else:
            return
        for child in children:
            visit(child, depth + 1)

    visit(root, 0)
    return found


def _np_state_to_tensors(state: tuple) -> dict[str, torch.Tensor]:
    _, keys, pos, has_gauss, cached = state
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": torch.tensor(pos),
            "has_gauss": torch.tensor(has_gauss), "cached": torch.tensor(cached, dtype=torch.float64)}


def _np_state_from_tensors(d: Mapping[str, torch.Tensor]) -> tuple:
    return ("MT19937", d["keys"].numpy().astype(np.uint32), int(d["pos"]), int(d["has_gauss"]), float(d["cached"]))


class RNGState:
    """Checkpointable random state: Python, NumPy global, torch (CPU and CUDA), the ``RandomState`` of every
    MONAI ``Randomizable`` and every ``torch.Generator`` found in ``objects`` (data loaders, datasets, transform
    chains). Pass the training ``DataLoader`` (a :class:`~monai_ssl.data.SeededDataLoader`) so that its generator,
    which sets the shuffling and every worker's seed, resumes too.

    Stored as tensors and plain containers, so checkpoints load with ``torch.load(..., weights_only=True)``.
    """

    def __init__(self, *objects: Any) -> None:
        self.objects = objects

    def _streams(self) -> list[np.random.RandomState]:
        return [s for s in self._all() if isinstance(s, np.random.RandomState)]

    def _generators(self) -> list[torch.Generator]:
        return [s for s in self._all() if isinstance(s, torch.Generator)]

    def _loaders(self) -> list[SeededDataLoader]:
        return [s for s in self._all() if isinstance(s, SeededDataLoader)]

    def _all(self) -> list[Any]:
        found, seen = [], set()
        for obj in self.objects:
            for s in _find_random_states(obj):
                if id(s) not in seen:
                    seen.add(id(s))
                    found.append(s)
        return found

    def state_dict(self) -> dict[str, Any]:
        py_state = random.getstate()
        return {
            "python": torch.tensor(py_state[1], dtype=torch.int64),
            "python_version": py_state[0],
            "numpy": _np_state_to_tensors(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "streams": [_np_state_to_tensors(s.get_state()) for s in self._streams()],
            "generators": [g.get_state() for g in self._generators()],
            "loaders": [loader.state_dict() for loader in self._loaders()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), None))
        np.random.set_state(_np_state_from_tensors(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and len(state["cuda"]):
            torch.cuda.set_rng_state_all(state["cuda"])
        streams = self._streams()
        if len(streams) != len(state["streams"]):
            raise ValueError(
                f"checkpoint holds {len(state['streams'])} transform random streams, this pipeline has {len(streams)}:"
                " the data pipeline differs from the one that was checkpointed"
            )
        generators, saved_generators = self._generators(), list(state.get("generators", []))
        loaders, saved_loaders = self._loaders(), list(state.get("loaders", []))
        for what, now, saved in (("generators", generators, saved_generators), ("seeded loaders", loaders, saved_loaders)):
            if len(now) != len(saved):
                raise ValueError(f"checkpoint holds {len(saved)} data {what}, this pipeline has {len(now)}: the data "
                                 "pipeline differs from the one that was checkpointed")
        for stream, saved in zip(streams, state["streams"]):
            stream.set_state(_np_state_from_tensors(saved))
        for generator, saved in zip(generators, saved_generators):
            generator.set_state(saved)
        for loader, saved in zip(loaders, saved_loaders):
            loader.load_state_dict(saved)


_STEP = re.compile(r"_(\d+)\.pt$")


def latest_checkpoint(directory: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The checkpoint with the highest step in ``directory`` (files ``<prefix>_<step>.pt``), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.glob(f"{prefix}_*.pt") if (m := _STEP.search(p.name))]
    return max(found)[1] if found else None


def load_checkpoint(path: str | Path, to_load: Mapping[str, Any], map_location: str | torch.device = "cpu") -> None:
    """Restore ``to_load`` objects (name -> object with ``load_state_dict``) from a checkpoint file.

    Loads with ``weights_only=True`` (nothing is unpickled). Raises ``FileNotFoundError`` or a ``RuntimeError``
    naming the file when it is unreadable (e.g. truncated) or lacks an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise RuntimeError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e
    missing = [k for k in to_load if k not in checkpoint]
    if missing:
        raise RuntimeError(f"{path}: checkpoint lacks {missing}; it holds {sorted(checkpoint)}")
    Checkpoint.load_objects(to_load=dict(to_load), checkpoint=checkpoint)


class SSLCheckpointHandler:
    """Save everything needed to resume, every ``save_every`` epochs (and iterations if set), atomically; resume
    from the newest checkpoint in ``save_dir`` when ``resume`` is True.

    Built on Ignite's ``Checkpoint`` + ``DiskSaver(atomic=True)``: each file is written to a temporary file and
    renamed, so a kill mid-write never leaves a truncated checkpoint under the final name. ``to_save`` should hold
    the trainer itself (epoch/iteration counters), the network, optimizer, LR scheduler, the trainer's
    ``grad_scaler`` and an :class:`RNGState`.

    Args:
        save_dir: folder for ``checkpoint_<iteration>.pt`` files.
        to_save: name -> object with ``state_dict``/``load_state_dict``.
        save_every_epochs: save at the end of every N epochs.
        save_every_iterations: also save every N iterations (None: only per epoch).
        n_saved: how many recent checkpoints to keep.
        resume: on ``attach``, restore from the newest checkpoint in ``save_dir`` if there is one.
    """

    def __init__(self, save_dir: str | Path, to_save: Mapping[str, Any], save_every_epochs: int = 1,
                 save_every_iterations: int | None = None, n_saved: int | None = 2, resume: bool = True) -> None:
        self.save_dir = Path(save_dir)
        self.to_save = dict(to_save)
        self.save_every_epochs = save_every_epochs
        self.save_every_iterations = save_every_iterations
        self.resume = resume
        self.resumed_from: Path | None = None
        self._checkpoint = Checkpoint(
            self.to_save,
            DiskSaver(str(self.save_dir), require_empty=False, atomic=True, create_dir=True),
            filename_prefix="",
            n_saved=n_saved,
            global_step_transform=lambda engine, _: engine.state.iteration,
            filename_pattern="checkpoint_{global_step}.{ext}",
        )

    def attach(self, engine: Engine) -> None:
        if self.resume:
            path = latest_checkpoint(self.save_dir)
            if path is not None:
                target_epochs = engine.state.max_epochs
                load_checkpoint(path, self.to_save)
                # the checkpoint carries the old run's max_epochs; keep this run's target (train on to it)
                engine.state.max_epochs = max(target_epochs or 0, engine.state.epoch)
                self.resumed_from = path
                logger.info("resumed from %s at epoch %d, iteration %d", path, engine.state.epoch,
                            engine.state.iteration)
                if engine.state.epoch >= engine.state.max_epochs:
                    # Ignite restarts a finished state from epoch 0 on run(); a finished run stays finished
                    counters = (engine.state.epoch, engine.state.iteration)
                    engine.add_event_handler(Events.STARTED, self._keep_finished, counters)
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_every_epochs), self._checkpoint)
        if self.save_every_iterations:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_every_iterations), self._checkpoint)

    @staticmethod
    def _keep_finished(engine: Engine, counters: tuple[int, int]) -> None:
        if engine.state.iteration == 0:
            engine.state.epoch, engine.state.iteration = counters
            logger.info("run already finished at epoch %d (iteration %d): nothing to train; raise max_epochs "
                        "to train on", *counters)

    @property
    def last_checkpoint(self) -> Path | None:
        last = self._checkpoint.last_checkpoint
        return self.save_dir / last if last is not None else None
