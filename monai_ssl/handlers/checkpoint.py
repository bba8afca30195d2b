"""Checkpoints that resume a run exactly: model, optimizer, scheduler, scaler, engine counters, RNG states and the
best-metric bookkeeping, one run per folder (a lock), with the run's key settings checked on resume."""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from ..data.loader import SeededDataLoader
from ..networks.weights import MAX_ABS_WEIGHT, check_weights
from ..utils.dist import get_rank

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = [
    "LOCK_NAME",
    "BestMetricState",
    "RNGState",
    "ResumeConfigError",
    "RunLockError",
    "SSLCheckpointHandler",
    "checkpoint_files",
    "latest_checkpoint",
    "load_checkpoint",
]

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
        pairs = (("generators", generators, saved_generators), ("seeded loaders", loaders, saved_loaders))
        for what, now, saved in pairs:
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
LOCK_NAME = "train.lock"
# temporary files of an atomic checkpoint write (ours, and Ignite's DiskSaver's NamedTemporaryFile names)
_TMP_PREFIX, _TMP_SUFFIX = ".tmp_checkpoint_", ".part"
_IGNITE_TMP = re.compile(r"^tmp[a-z0-9_]{8}$")
_UNSET = "<unset>"


class RunLockError(RuntimeError):
    """Raised when another live training run holds the checkpoint folder's lock."""


class ResumeConfigError(ValueError):
    """Raised when a run would resume a checkpoint written with different key settings."""


def checkpoint_files(directory: str | Path, prefix: str = "checkpoint") -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``<prefix>_<step>.pt`` in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in directory.glob(f"{prefix}_*.pt") if (m := _STEP.search(p.name)))


def latest_checkpoint(directory: str | Path, prefix: str = "checkpoint") -> Path | None:
    """The checkpoint with the highest step in ``directory`` (files ``<prefix>_<step>.pt``), or None."""
    found = checkpoint_files(directory, prefix)
    return found[-1][1] if found else None


def _read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise RuntimeError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from e


def load_checkpoint(path: str | Path, to_load: Mapping[str, Any], map_location: str | torch.device = "cpu") -> None:
    """Restore ``to_load`` objects (name -> object with ``load_state_dict``) from a checkpoint file.

    Loads with ``weights_only=True`` (nothing is unpickled). Raises ``FileNotFoundError`` or a ``RuntimeError``
    naming the file when it is unreadable (e.g. truncated) or lacks an object.
    """
    path = Path(path)
    checkpoint = _read_checkpoint(path, map_location)
    missing = [k for k in to_load if k not in checkpoint]
    if missing:
        raise RuntimeError(f"{path}: checkpoint lacks {missing}; it holds {sorted(checkpoint)}")
    Checkpoint.load_objects(to_load=dict(to_load), checkpoint=checkpoint)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON-like data (tuples -> lists, paths -> str), comparable and ``weights_only``-safe."""
    return json.loads(json.dumps(value, default=str))


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _RunLock:
    """An exclusive ``flock`` on ``<directory>/train.lock``, whose text names the holder (pid, host, start time).

    The kernel drops the lock when its process dies, so a lock file left by a killed run is stale and taken over
    (with a warning naming the dead pid). A lock this process still holds from an earlier run that ended by an
    exception (its engine never completed) is taken over silently: one process trains one engine at a time.
    """

    _held: dict[str, _RunLock] = {}  # path -> lock held by this process

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        self._atexit = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def _holder(fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return json.loads(os.read(fd, 4096).decode() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        if self._fd is not None:
            return
        if fcntl is None:  # pragma: no cover - not POSIX
            logger.warning("no fcntl on this platform: %s is not locked against a second run", self.path.parent)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                earlier = _RunLock._held.get(key)
                if earlier is not None and earlier is not self:
                    logger.info("%s: taking over the lock of an earlier run in this process", self.path)
                    earlier.release()
                    continue
                raise RunLockError(
                    f"{self.path.parent} is in use by another training run: pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} (since {holder.get('started', '?')}) holds {self.path}. Two runs in "
                    "one output_dir overwrite each other's checkpoints: wait for that run to end or stop it, or "
                    "give this run another output_dir (ckpt_dir)"
                ) from None
            try:
                current = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                current = False
            if not current:  # the holder released (unlinked) the file between our open and flock
                os.close(fd)
                continue
            previous = self._holder(fd)
            if previous.get("pid") is not None and previous.get("pid") != os.getpid():
                pid, host = previous.get("pid"), previous.get("host", "?")
                state = "not running" if host == socket.gethostname() and not _pid_running(int(pid)) else \
                    "no longer holding it"
                logger.warning("%s: taking over the stale lock of pid %s on %s (since %s, %s): that run was killed "
                               "or crashed", self.path, pid, host, previous.get("started", "?"), state)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv[:8]}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(info) + "\n").encode())
            os.fsync(fd)
            self._fd = fd
            _RunLock._held[key] = self
            if not self._atexit:
                atexit.register(self.release)
                self._atexit = True
            return
        raise RunLockError(f"{self.path}: could not take the lock (it keeps changing hands)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None
        key = str(self.path.resolve())
        if _RunLock._held.get(key) is self:
            del _RunLock._held[key]


class _AtomicDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver(atomic=True)`` with recognisable temporary files (``.tmp_checkpoint_*.part``, created
    by ``mkstemp`` in the checkpoint folder and fsynced before the rename), so those of a killed write can be found
    and deleted on the next start."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Any) -> None:
        if not self._atomic:
            return super()._save_func(checkpoint, path, func)
        fd, tmp = tempfile.mkstemp(dir=self.dirname, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                func(checkpoint, f, **self.kwargs)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.remove(tmp)
            raise
        os.chmod(path, os.stat(path).st_mode | stat.S_IRGRP | stat.S_IROTH)


class _RunConfig:
    """The run's key settings as a checkpoint entry (plain values, compared on resume)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = _plain(dict(values))

    def state_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # compared in SSLCheckpointHandler, not loaded
        pass


class BestMetricState:
    """Checkpointable best-metric bookkeeping, so a resumed run does not replace its best model with a worse one.

    MONAI's ``CheckpointSaver(save_key_metric=True)`` keeps the best score in memory only: after a kill and resume
    it starts from nothing and the first validation of the resumed run overwrites ``model.pt``, however bad. Put
    this object in :class:`SSLCheckpointHandler`'s ``to_save`` (the bundles use the entry ``best``): it stores the
    saver's key-metric list (score, file) and the evaluator's ``best_metric`` / ``best_metric_epoch`` with every
    training checkpoint and restores them on resume. If the best model file itself has gone missing, its score is
    dropped (with a warning) so the next validation writes it again.

    Args:
        saver: the MONAI ``CheckpointSaver`` with ``save_key_metric=True``.
        evaluator: the MONAI evaluator whose ``state.best_metric`` / ``best_metric_epoch`` to keep (optional).
    """

    optional_entry = True  # checkpoints written before it existed resume with a warning

    def __init__(self, saver: Any, evaluator: Engine | None = None) -> None:
        self.saver = saver
        self.evaluator = evaluator

    def _key_checkpoint(self) -> Checkpoint | None:
        return getattr(self.saver, "_key_metric_checkpoint", None)  # MONAI keeps it private, with no state_dict

    def state_dict(self) -> dict[str, Any]:
        ck = self._key_checkpoint()
        saved = [[float(p), str(f)] for p, f in ck.state_dict()["_saved"]] if ck is not None else []
        state = getattr(self.evaluator, "state", None)
        return {"saved": saved, "best_metric": float(getattr(state, "best_metric", -1)),
                "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1))}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ck = self._key_checkpoint()
        saved = [(float(p), str(f)) for p, f in state.get("saved", [])]
        best, epoch = float(state.get("best_metric", -1)), int(state.get("best_metric_epoch", -1))
        if ck is not None and saved:
            handler = ck.save_handler
            files = [Path(handler.dirname) / (getattr(handler, "filename", None) or f) for _, f in saved]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                logger.warning("best-metric model %s is missing: its score %.4f (epoch %d) is forgotten and the next "
                               "validation writes it again", ", ".join(missing), best, epoch)
                saved, best, epoch = [], -1.0, -1
        if ck is not None:
            ck.load_state_dict({"_saved": saved})
        if self.evaluator is not None:
            self.evaluator.state.best_metric, self.evaluator.state.best_metric_epoch = best, epoch
        if saved:
            logger.info("best model so far: %s = %.4f at epoch %d", saved[-1][1], best, epoch)


class SSLCheckpointHandler:
    """Save everything needed to resume, every ``save_every`` epochs (and iterations if set), atomically; resume
    from the newest readable checkpoint in ``save_dir`` when ``resume`` is True.

    Built on Ignite's ``Checkpoint`` + ``DiskSaver(atomic=True)``: each file is written to a temporary file and
    renamed, so a kill mid-write never leaves a truncated checkpoint under the final name. ``to_save`` should hold
    the trainer itself (epoch/iteration counters), the network, optimizer, LR scheduler, the trainer's
    ``grad_scaler`` and an :class:`RNGState` (and a :class:`BestMetricState` when a validation keeps a best model).

    Nothing lost, nothing silent:

    * **one run per folder**: ``attach`` takes an exclusive lock, ``<save_dir>/train.lock`` (holding the pid, host and
      start time), released when the run completes or is terminated (or the process ends). A second live run on the
      folder stops with a :class:`RunLockError` naming the folder and the holder's pid; the lock of a killed run is
      taken over with a warning naming its pid. Under ``torch.distributed`` rank 0 locks and tidies the folder.
    * **tidy folder**: temporary files of killed writes are deleted and the checkpoints are pruned to ``n_saved``,
      also those of earlier runs (which Ignite alone never deletes).
    * **fallback**: if the newest checkpoint is unreadable (e.g. truncated by a full disk), a warning names it, it is
      renamed ``<name>.unreadable`` and the run resumes from the previous readable one; with none, the error names
      the file. A fresh start (``resume=False``) moves earlier checkpoints to ``superseded_<time>/`` so a later
      resume cannot pick them up.
    * **same settings**: with ``run_config`` (plain values: learning rate, image size, ...), the settings are stored
      in every checkpoint and a resume with other values stops with a :class:`ResumeConfigError` listing
      ``key: old -> new``, except for the keys in ``allow_changed``.
    * **nothing diverged**: before each save the network's tensors are checked against NaN/inf and
      ``max_abs_weight`` and every other tensor against NaN/inf
      (:func:`~monai_ssl.networks.weights.check_weights`); a diverged state raises instead of replacing a good
      checkpoint, and so does a diverged checkpoint on resume.

    Args:
        save_dir: folder for ``checkpoint_<iteration>.pt`` files.
        to_save: name -> object with ``state_dict``/``load_state_dict``.
        save_every_epochs: save at the end of every N epochs.
        save_every_iterations: also save every N iterations (None: only per epoch).
        n_saved: how many recent checkpoints to keep (None: all).
        resume: on ``attach``, restore from the newest readable checkpoint in ``save_dir`` if there is one.
        run_config: the run's key settings (``{name: plain value}``), checked on resume (None: not checked).
        allow_changed: ``run_config`` keys that may differ on resume (default: ``max_epochs``, to train on).
        max_abs_weight: magnitude bound of the network tensors (None: finiteness only).
        lock: lock ``save_dir`` against a second run.
    """

    def __init__(self, save_dir: str | Path, to_save: Mapping[str, Any], save_every_epochs: int = 1,
                 save_every_iterations: int | None = None, n_saved: int | None = 2, resume: bool = True,
                 run_config: Mapping[str, Any] | None = None, allow_changed: Sequence[str] = ("max_epochs",),
                 max_abs_weight: float | None = MAX_ABS_WEIGHT, lock: bool = True) -> None:
        if "run_config" in to_save:
            raise ValueError("SSLCheckpointHandler: 'run_config' is a reserved entry name; pass run_config=...")
        self.save_dir = Path(save_dir)
        self.to_save = dict(to_save)
        self.save_every_epochs = save_every_epochs
        self.save_every_iterations = save_every_iterations
        self.n_saved = n_saved
        self.resume = resume
        self.run_config = _RunConfig(run_config) if run_config is not None else None
        self.allow_changed = tuple(allow_changed)
        self.max_abs_weight = max_abs_weight
        self.resumed_from: Path | None = None
        self._lock = _RunLock(self.save_dir) if lock else None
        entries = {**self.to_save, **({"run_config": self.run_config} if self.run_config is not None else {})}
        self._checkpoint = Checkpoint(
            entries,
            _AtomicDiskSaver(str(self.save_dir), require_empty=False, atomic=True, create_dir=True),
            filename_prefix="",
            n_saved=n_saved,
            global_step_transform=lambda engine, _: engine.state.iteration,
            filename_pattern="checkpoint_{global_step}.{ext}",
        )

    def attach(self, engine: Engine) -> None:
        main = get_rank() == 0
        if main:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            if self._lock is not None:
                self._lock.acquire()
        try:
            if main:
                self._remove_temp_files()
            if self.resume:
                self._resume(engine, main)
            elif main:
                self._set_aside_previous()
            self._adopt_existing(main)
        except BaseException:
            if self._lock is not None:
                self._lock.release()  # a refused resume does not keep the folder locked
            raise
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_every_epochs), self._save)
        if self.save_every_iterations:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_every_iterations), self._save)
        if main and self._lock is not None:
            engine.add_event_handler(Events.STARTED, lambda _: self._lock.acquire())
            engine.add_event_handler(Events.TERMINATE, lambda _: self._lock.release())
            engine.add_event_handler(Events.COMPLETED, lambda _: self._lock.release())

    def _remove_temp_files(self) -> None:
        for p in self.save_dir.iterdir():
            if p.is_file() and ((p.name.startswith(_TMP_PREFIX) and p.name.endswith(_TMP_SUFFIX))
                                or _IGNITE_TMP.match(p.name)):
                logger.warning("%s: deleting the temporary file of an interrupted checkpoint write", p)
                p.unlink()

    def _set_aside_previous(self) -> None:
        found = checkpoint_files(self.save_dir)
        if not found:
            return
        aside = self.save_dir / time.strftime("superseded_%Y%m%d_%H%M%S")
        aside.mkdir(exist_ok=True)
        for _, p in found:
            os.replace(p, aside / p.name)
        logger.warning("resume=False: the %d checkpoint(s) of an earlier run in %s were moved to %s (delete them if "
                       "not needed)", len(found), self.save_dir, aside)

    def _adopt_existing(self, main: bool) -> None:
        """Prune the folder's checkpoints to ``n_saved`` and hand the rest to Ignite, which rotates them."""
        found = checkpoint_files(self.save_dir)
        if self.n_saved is not None and len(found) > self.n_saved:
            if main:
                for _, p in found[:-self.n_saved]:
                    logger.info("%s: deleting an old checkpoint (n_saved=%d)", p, self.n_saved)
                    p.unlink()
            found = found[-self.n_saved:]
        self._checkpoint.load_state_dict({"_saved": [(step, p.name) for step, p in found]})

    def _resume(self, engine: Engine, main: bool) -> None:
        unreadable: list[tuple[Path, Exception]] = []
        path, checkpoint = None, None
        for _, candidate in reversed(checkpoint_files(self.save_dir)):
            try:
                checkpoint = _read_checkpoint(candidate)
                path = candidate
                break
            except (RuntimeError, FileNotFoundError) as err:
                unreadable.append((candidate, err))
        if path is None:
            if unreadable:
                first = unreadable[0][1]
                older = f"; no readable older checkpoint in {self.save_dir}" if len(unreadable) > 1 else ""
                raise RuntimeError(f"{first}{older}") from first
            return
        for bad, err in unreadable:
            kept = bad.with_name(bad.name + ".unreadable")
            if main and bad.exists():
                os.replace(bad, kept)
            logger.warning("%s; resuming from the previous readable checkpoint %s instead (the unreadable file is "
                           "kept as %s)", err, path, kept)
        self._check_run_config(path, checkpoint)
        to_load = {}
        for name, obj in self.to_save.items():
            if name in checkpoint:
                to_load[name] = obj
            elif getattr(obj, "optional_entry", False):
                logger.warning("%s holds no '%s' entry (an older checkpoint): it starts afresh", path, name)
            else:
                raise RuntimeError(f"{path}: checkpoint lacks {[name]}; it holds {sorted(checkpoint)}")
        self._check_state(checkpoint, f"checkpoint {path}")
        target_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint)
        # the checkpoint carries the old run's max_epochs; keep this run's target (train on to it)
        engine.state.max_epochs = max(target_epochs or 0, engine.state.epoch)
        self.resumed_from = path
        logger.info("resumed from %s at epoch %d, iteration %d", path, engine.state.epoch, engine.state.iteration)
        if engine.state.epoch >= engine.state.max_epochs:
            # Ignite restarts a finished state from epoch 0 on run(); a finished run stays finished
            counters = (engine.state.epoch, engine.state.iteration)
            engine.add_event_handler(Events.STARTED, self._keep_finished, counters)

    def _check_run_config(self, path: Path, checkpoint: Mapping[str, Any]) -> None:
        if self.run_config is None:
            return
        saved = checkpoint.get("run_config")
        if not isinstance(saved, Mapping):
            logger.warning("%s holds no run_config (an older checkpoint): the settings of this resumed run are not "
                           "compared with those it was started with", path)
            return
        now = self.run_config.values
        keys = list(now) + [k for k in saved if k not in now]
        changed = [k for k in keys if saved.get(k, _UNSET) != now.get(k, _UNSET)]
        refused = [k for k in changed if k not in self.allow_changed]
        if refused:
            diff = ", ".join(f"{k}: {saved.get(k, _UNSET)!r} -> {now.get(k, _UNSET)!r}" for k in refused)
            raise ResumeConfigError(
                f"resuming {path} with changed settings: {diff}. The checkpoint continues the run started with the "
                f"old values, so the new ones would be silently ignored or mixed in. Start a new run with another "
                f"output_dir (or resume=false, which moves the old checkpoints aside), or go back to the old values "
                f"(settings that may change on resume: {', '.join(self.allow_changed) or 'none'})"
            )
        for k in changed:
            logger.info("resuming %s with %s: %r -> %r", path, k, saved.get(k, _UNSET), now.get(k, _UNSET))

    def _check_state(self, state: Mapping[str, Any], what: str) -> None:
        for name, value in state.items():
            module = isinstance(self.to_save.get(name), torch.nn.Module)
            check_weights(value, f"{what}, entry '{name}'", max_abs=self.max_abs_weight if module else None)

    def _save(self, engine: Engine) -> None:
        self._check_state({name: obj.state_dict() for name, obj in self.to_save.items()},
                          f"refusing to checkpoint epoch {engine.state.epoch}, iteration {engine.state.iteration}")
        self._checkpoint(engine)

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
