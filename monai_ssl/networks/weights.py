"""Loading pretrained (SSL) weights into downstream networks with an explicit key map and a report.

``load_checkpoint_weights`` reads a checkpoint safely (``weights_only=True``) and unwraps the usual
containers; ``load_mapped_state_dict`` renames keys, copies what fits and reports what was loaded,
missing, unexpected, skipped and shape-mismatched, raising a clear error when too little was loaded;
``check_weights`` refuses NaN / inf and absurdly large tensors (a diverged run: see :data:`MAX_ABS_WEIGHT`),
on every load here, in checkpoints, in the encoder export and in :class:`~monai_ssl.handlers.NaNGuard`.
These are the pieces under the one loading door, :func:`monai_ssl.networks.load_pretrained`, whose registered
kinds hold the key maps (:mod:`monai_ssl.networks.pretrained`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from monai.utils import optional_import
from torch import nn

safetensors_load_file, has_safetensors = optional_import("safetensors.torch", name="load_file")

__all__ = [
    "MAX_ABS_WEIGHT",
    "NonFiniteWeightsError",
    "WeightLoadReport",
    "check_weights",
    "load_mapped_state_dict",
    "load_checkpoint_weights",
    "unwrap_state_dict",
    "compact_keys",
]

logger = logging.getLogger(__name__)

KeyMap = Mapping[str, str] | Callable[[str], "str | None"]

#: Largest magnitude a network weight or buffer may have before it is taken for divergence. Trained conv/ViT
#: weights are O(1) and BatchNorm running variances of normalised images O(1e2) at most; a run with a far too
#: high learning rate reaches 1e20-1e30 within a few steps while its (normalised, bounded) NT-Xent loss stays
#: finite. 1e6 leaves four orders of magnitude of headroom above any healthy value and catches those runs.
#: Integer tensors (e.g. ``num_batches_tracked``) are never bounded.
MAX_ABS_WEIGHT = 1e6


class NonFiniteWeightsError(ValueError):
    """Tensors that are NaN / inf or larger than the bound in magnitude: the weights of a diverged run, which must
    not be checkpointed, exported or loaded."""


def _named_tensors(obj: object, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """``(dotted name, tensor)`` for every tensor in nested mappings / lists (optimizer states included)."""
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    out = []
    for k, v in items:
        out += _named_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def check_weights(tensors: object, what: str, max_abs: float | None = MAX_ABS_WEIGHT, max_listed: int = 10) -> None:
    """Raise :class:`NonFiniteWeightsError` naming every floating tensor of ``tensors`` that holds NaN / inf or,
    with ``max_abs``, a value larger than ``max_abs`` in magnitude.

    Args:
        tensors: a state dict, or any nest of mappings / lists of tensors (e.g. a whole training checkpoint).
        what: what is checked, for the message (``"export to models/encoder.pt"``, a checkpoint path, ...).
        max_abs: magnitude bound (:data:`MAX_ABS_WEIGHT` by default); None checks finiteness only (optimizer
            moments and AMP loss scales may legitimately be large).
        max_listed: how many offending tensors the message names.

    Raises:
        NonFiniteWeightsError: listing ``name (nan|inf|max |x| = ...)`` of the offending tensors.
    """
    named = [(k, v.detach()) for k, v in _named_tensors(tensors)
             if (v.is_floating_point() or v.is_complex()) and v.numel()]
    if not named:
        return
    peaks = torch.stack([v.abs().amax().float().cpu() for _, v in named]).tolist()
    bad = []
    for (name, value), peak in zip(named, peaks):
        if peak != peak:  # NaN propagates through amax
            bad.append(f"{name} (nan)")
        elif peak == float("inf"):
            bad.append(f"{name} (inf)")
        elif max_abs is not None and peak > max_abs:
            bad.append(f"{name} (max |x| = {peak:.3g})")
    if bad:
        bound = f" or larger than {max_abs:g} in magnitude" if max_abs is not None else ""
        more = f", ... (+{len(bad) - max_listed} more)" if len(bad) > max_listed else ""
        shown = ", ".join(bad[:max_listed]) + more
        raise NonFiniteWeightsError(
            f"{what}: {len(bad)} of {len(named)} tensors are NaN / inf{bound}, the weights of a diverged run "
            f"(lower the learning rate, enable gradient clipping, check the inputs): {shown}"
        )


@dataclass
class WeightLoadReport:
    """What :func:`load_mapped_state_dict` did.

    Attributes:
        loaded: target keys that received a tensor.
        missing: target keys that received nothing (keep their current values).
        unexpected: mapped source keys with no such key in the target.
        skipped: source keys the key map dropped (mapped to ``None``).
        mismatched: ``(target key, source shape, target shape)`` for shape conflicts (not loaded).
        num_source: number of source keys after dropping ``skipped``.
        scope: the target keys that had to receive weights (e.g. every encoder tensor of a classifier, its head
            excluded); empty when no ``target_scope`` was given.
        fresh: the keys of ``scope`` that received nothing and keep their random initialisation.
        scope_numel: number of values (parameter and buffer elements) in ``scope``; ``fresh_numel`` likewise.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    num_source: int = 0
    scope: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    scope_numel: int = 0
    fresh_numel: int = 0

    @property
    def loaded_fraction(self) -> float:
        """Share of the (non-skipped) source tensors that were loaded into the target."""
        return len(self.loaded) / self.num_source if self.num_source else 0.0

    @property
    def target_fraction(self) -> float:
        """Share of the target's keys that were loaded."""
        total = len(self.loaded) + len(self.missing)
        return len(self.loaded) / total if total else 0.0

    @property
    def scope_fraction(self) -> float:
        """Share of the ``scope`` tensors (the target encoder) that received weights (1.0 without a scope)."""
        return 1.0 - len(self.fresh) / len(self.scope) if self.scope else 1.0

    @property
    def scope_numel_fraction(self) -> float:
        """Share of the ``scope`` values (parameters and buffers, counted by element) that received weights."""
        return 1.0 - self.fresh_numel / self.scope_numel if self.scope_numel else 1.0

    def summary(self, max_keys: int = 10) -> str:
        """Human-readable multi-line summary (lists truncated to ``max_keys``)."""

        def _fmt(keys: list) -> str:
            shown = ", ".join(str(k) for k in keys[:max_keys])
            return shown + (f", ... (+{len(keys) - max_keys})" if len(keys) > max_keys else "")

        lines = [
            f"loaded {len(self.loaded)}/{self.num_source} source tensors ({100 * self.loaded_fraction:.1f}%), "
            f"{100 * self.target_fraction:.1f}% of target keys",
            *([f"target encoder: {len(self.scope) - len(self.fresh)}/{len(self.scope)} tensors "
               f"({100 * self.scope_fraction:.1f}%), {100 * self.scope_numel_fraction:.1f}% of its values received "
               f"weights; left at random init ({len(self.fresh)}): {_fmt(self.fresh)}"] if self.scope else []),
            f"missing in source ({len(self.missing)}): {_fmt(self.missing)}",
            f"unexpected (no such target key) ({len(self.unexpected)}): {_fmt(self.unexpected)}",
            f"shape-mismatched ({len(self.mismatched)}): {_fmt(self.mismatched)}",
            f"skipped by key map ({len(self.skipped)}): {_fmt(self.skipped)}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def compact_keys(keys: list[str], universe: list[str]) -> list[str]:
    """``keys`` with every module whose tensors (in ``universe``) are all in ``keys`` written once as ``module.*``.

    E.g. the 96 tensors of the six ResNet-34 blocks a ResNet-18 checkpoint cannot fill become ``layer1.2.*``,
    ``layer2.2.*``, ... ; a lone tensor stays as it is.
    """
    chosen = set(keys)
    out: list[str] = []
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts)):
            prefix = ".".join(parts[:n]) + "."
            if all(k in chosen for k in universe if k.startswith(prefix)):
                item = prefix + "*"
                break
        else:
            item = key
        if item not in out:
            out.append(item)
    return out


def _apply_key_map(key: str, key_map: KeyMap | None) -> str | None:
    if key_map is None:
        return key
    if callable(key_map):
        return key_map(key)
    return key_map.get(key, key)


def load_mapped_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    key_map: KeyMap | None = None,
    min_loaded_fraction: float = 0.5,
    strict_shapes: bool = True,
    verbose: bool = True,
    target_scope: Callable[[str], bool] | None = None,
    min_target_fraction: float = 1.0,
    skipped: Sequence[str] = (),
) -> WeightLoadReport:
    """Copy ``state_dict`` into ``model`` through ``key_map`` and report what happened, on both sides.

    The source side: how many of the checkpoint's tensors found a home (``min_loaded_fraction``). The target
    side: how many of the tensors of ``model`` that *should* be pretrained (``target_scope``, e.g. every encoder
    tensor of a classifier but its head) received weights (``min_target_fraction``). Checking only the source side
    lets a ResNet-18 encoder load "100 %" into a ResNet-34 whose extra blocks stay random.

    Args:
        model: target network; its tensors are updated in place (``load_state_dict(strict=False)``).
        state_dict: source tensors (e.g. from :func:`load_checkpoint_weights`).
        key_map: ``None`` (names unchanged), a mapping ``{source key: target key}`` (keys absent from it
            keep their name) or a callable ``source key -> target key or None`` (``None`` drops the key).
        min_loaded_fraction: raise when fewer than this share of the (non-dropped) source tensors were
            loaded, which catches a wrong key map or architecture.
        strict_shapes: raise on a shape mismatch; when ``False`` mismatched keys are skipped and reported.
        verbose: log the report at INFO level.
        target_scope: ``target key -> bool``, the target tensors that must receive weights (None: no target-side
            check).
        min_target_fraction: raise when less than this share of the ``target_scope`` tensors received weights
            (default 1.0: all of them), listing those left at their random initialisation.
        skipped: source keys a filter already left out of ``state_dict`` on purpose (e.g. the pretext heads of a
            pretraining checkpoint); listed in the report's ``skipped`` (not counted as source tensors).

    Returns:
        a :class:`WeightLoadReport`.

    Raises:
        ValueError: on shape mismatches with ``strict_shapes``, or when too little would be loaded on either side;
            the model is left untouched in every case.
        NonFiniteWeightsError: a tensor to load is NaN / inf or larger than :data:`MAX_ABS_WEIGHT` in magnitude
            (a diverged run); the model is left untouched.
    """
    report = WeightLoadReport(skipped=list(skipped))
    target = model.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    for src_key, value in state_dict.items():
        dst_key = _apply_key_map(src_key, key_map)
        if dst_key is None:
            report.skipped.append(src_key)
            continue
        report.num_source += 1
        if dst_key not in target:
            report.unexpected.append(dst_key)
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state_dict[{src_key!r}] is a {type(value).__name__}, expected a tensor.")
        if tuple(value.shape) != tuple(target[dst_key].shape):
            report.mismatched.append((dst_key, tuple(value.shape), tuple(target[dst_key].shape)))
            continue
        to_load[dst_key] = value
    if report.mismatched and strict_shapes:
        raise ValueError(
            f"{len(report.mismatched)} tensors have shapes that do not match {type(model).__name__} "
            f"(key, source, target): {report.mismatched[:10]}; pass strict_shapes=False to skip them."
        )
    report.loaded = sorted(to_load)
    report.missing = sorted(set(target) - set(to_load))
    if target_scope is not None:
        report.scope = sorted(k for k in target if target_scope(k))
        report.fresh = [k for k in report.scope if k not in to_load]
        report.scope_numel = sum(target[k].numel() for k in report.scope)
        report.fresh_numel = sum(target[k].numel() for k in report.fresh)
    if report.num_source == 0 or report.loaded_fraction < min_loaded_fraction:
        raise ValueError(
            f"only {len(report.loaded)} of {report.num_source} source tensors matched {type(model).__name__} "
            f"(min_loaded_fraction={min_loaded_fraction}); wrong key map or architecture? Nothing was loaded.\n"
            f"{report.summary()}"
        )
    if report.scope and report.scope_fraction < min_target_fraction:
        raise ValueError(
            f"the checkpoint leaves {len(report.fresh)} of the {len(report.scope)} encoder tensors of "
            f"{type(model).__name__} at their random initialisation ({100 * report.scope_fraction:.1f}% received "
            f"weights, min_target_fraction={min_target_fraction}): a different architecture (depth, width)? Nothing "
            f"was loaded. Left random: {', '.join(compact_keys(report.fresh, report.scope))}\n{report.summary()}"
        )
    check_weights(to_load, f"weights for {type(model).__name__}")
    model.load_state_dict(to_load, strict=False)
    if verbose:
        logger.info("loading weights into %s:\n%s", type(model).__name__, report.summary())
    return report


_CONTAINER_KEYS = ("state_dict", "model", "network", "net", "model_state_dict", "module")


def unwrap_state_dict(
    obj: Mapping, key: str | None = None, strip_prefix: str | None = "module.", where: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` state dict inside a checkpoint container.

    A flat dict of tensors is returned as is; a container (Ignite/MONAI ``{"network": ..., "optimizer": ...}``,
    Lightning ``{"state_dict": ...}``, ...) gives its entry ``key``, else the first of ``state_dict``, ``model``,
    ``network``, ``net``, ``model_state_dict``, ``module`` that is a dict. ``strip_prefix`` (the DDP ``module.``)
    is removed from every key that has it.

    Args:
        obj: what ``torch.load`` (or ``safetensors``) returned, or an in-memory state dict / container.
        key: entry holding the weights inside a container (``None``: auto-detect).
        strip_prefix: prefix removed from every key that has it (``None`` keeps keys as they are).
        where: names the source in error messages (``"checkpoint path/to/file.pt"``).

    Raises:
        ValueError: no entry ``key``, or no tensors.
    """
    if key is not None:
        if key not in obj:
            raise ValueError(f"{where} has no entry {key!r}; entries: {sorted(obj)[:20]}.")
        obj = obj[key]
    elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for name in _CONTAINER_KEYS:
            if isinstance(obj.get(name), Mapping):
                obj = obj[name]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) else {}
    if not tensors:
        raise ValueError(f"{where} (entry {key!r}) holds no tensors; entries: {list(obj)[:20]}.")
    if strip_prefix:
        tensors = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in tensors.items()}
    return tensors


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    if not has_safetensors:
        raise ValueError(f"checkpoint {path}: reading .safetensors files needs the safetensors package "
                         "(pip install safetensors, or monai-ssl[weights]).")
    try:
        return safetensors_load_file(path, device="cpu")
    except Exception as err:  # safetensors raises its own error types for truncated / malformed headers
        raise ValueError(f"cannot read checkpoint {path} as a safetensors file (corrupt or not safetensors): "
                         f"{err}") from err


def load_checkpoint_weights(
    path: str | os.PathLike, key: str | None = None, strip_prefix: str | None = "module.", check_values: bool = True
) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely and return its flat ``{name: tensor}`` state dict.

    Uses ``torch.load(path, map_location="cpu", weights_only=True)``, or ``safetensors.torch.load_file`` for a
    ``.safetensors`` file (which holds tensors only by construction). Containers are unwrapped by
    :func:`unwrap_state_dict`: the entry ``key``, else the first of ``state_dict``, ``model``, ``network``,
    ``net``, ``model_state_dict``, ``module`` that holds tensors. A DDP ``module.`` prefix is stripped.

    Args:
        path: checkpoint file (``.pt`` / ``.pth`` / ``.ckpt`` ..., or ``.safetensors``).
        key: entry holding the weights inside a container checkpoint (``None``: auto-detect).
        strip_prefix: prefix removed from every key that has it (``None`` keeps keys as they are).
        check_values: refuse NaN / inf tensors and tensors larger than :data:`MAX_ABS_WEIGHT` in magnitude (False
            only to inspect a broken file).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read as a weights-only checkpoint, or holds no tensor dict.
        NonFiniteWeightsError: (a ``ValueError``) the weights hold NaN / inf or absurdly large values.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        obj = _read_safetensors(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle/zip errors differ between torch versions
            raise ValueError(f"cannot read checkpoint {path} with weights_only=True (corrupt or unsafe file): "
                             f"{err}") from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors.")
    tensors = unwrap_state_dict(obj, key, strip_prefix, where=f"checkpoint {path}")
    if check_values:
        check_weights(tensors, f"checkpoint {path}")
    return tensors
