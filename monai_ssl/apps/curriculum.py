"""Curricular self-supervised learning, the orchestration (Tamé et al. 2023; Sirotkin et al. 2021).

One backbone trained through a sequence of :class:`~monai_ssl.engines.CurriculumStage` pretext-task stages, each
run by :func:`~monai_ssl.engines.run_stage`; the order is the user's, ranked by a short probe run per task
(:func:`rank_by_probe`, weakest first) or found by exhaustive search over the orders of <= 3 tasks
(:func:`search_order`). The bundle ``micle_pretrain`` drives it from ``configs/curriculum.yaml``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engines.curriculum import CurriculumStage, run_stage

__all__ = ["rank_by_probe", "run_curriculum", "search_order"]


def _run_sequence(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, device: torch.device | str,
    output_dir: Path | None,
) -> list[dict[str, Any]]:
    summaries = []
    for i, stage in enumerate(stages):
        summary = run_stage(stage, encoder, feature_dim, device)
        summary["index"] = i
        if output_dir is not None:
            path = output_dir / f"stage{i}_{stage.label}_encoder.pt"
            torch.save({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, path)
            summary["checkpoint"] = str(path)
        summaries.append(summary)
    return summaries


def rank_by_probe(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, probe_fn: Callable[[nn.Module], float],
    device: torch.device | str = "cpu", probe_epochs: int | None = None,
) -> list[tuple[str, float]]:
    """Train each stage alone (from a copy of ``encoder``, ``probe_epochs`` each), score it with ``probe_fn``.

    Args:
        probe_fn: ``probe_fn(encoder) -> score``, higher is better (e.g. linear-probe AUC on a labelled val split).
        probe_epochs: short budget per task (default: each stage's own epochs).

    Returns:
        ``[(stage label, score), ...]`` sorted from the weakest to the strongest task.
    """
    scores = []
    for stage in stages:
        trial = copy.deepcopy(encoder)
        run_stage(replace(stage, epochs=probe_epochs or stage.epochs), trial, feature_dim, device)
        scores.append((stage.label, float(probe_fn(trial))))
    return sorted(scores, key=lambda s: s[1])


def search_order(
    stages: Sequence[CurriculumStage], encoder: nn.Module, feature_dim: int, probe_fn: Callable[[nn.Module], float],
    device: torch.device | str = "cpu", probe_epochs: int | None = None, max_tasks: int = 3,
) -> list[tuple[tuple[str, ...], float]]:
    """Exhaustive search: run every order of the stages (from copies of ``encoder``) and score each with ``probe_fn``.

    Returns:
        ``[(order, score), ...]`` best first. Raises ``ValueError`` for more than ``max_tasks`` stages (n! runs).
    """
    if len(stages) > max_tasks:
        raise ValueError(f"exhaustive search over {len(stages)} tasks is {len(stages)}! runs; max_tasks={max_tasks}.")
    results = []
    for perm in itertools.permutations(stages):
        trial = copy.deepcopy(encoder)
        short = [replace(s, epochs=probe_epochs or s.epochs) for s in perm]
        _run_sequence(short, trial, feature_dim, device, None)
        results.append((tuple(s.label for s in perm), float(probe_fn(trial))))
    return sorted(results, key=lambda r: -r[1])


def run_curriculum(
    stages: Sequence[CurriculumStage],
    encoder: nn.Module,
    feature_dim: int,
    order: str | Sequence[str] = "user",
    probe_fn: Callable[[nn.Module], float] | None = None,
    probe_epochs: int | None = None,
    device: torch.device | str = "cpu",
    output_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``encoder`` in place through a curriculum of pretext-task stages and return a summary.

    Args:
        stages: the task pool, each a :class:`CurriculumStage` (user order = list order; e.g. rotation -> jigsaw
            -> contrastive, our default: Tamé et al. 2023 state no order for chest X-rays).
        encoder: backbone returning pooled ``(B, F)`` features or ``(B, F, *spatial)`` maps; trained in place.
        feature_dim: F.
        order: ``"user"``; ``"probe"`` (each task alone for ``probe_epochs``, ordered weakest -> strongest by
            ``probe_fn``); ``"search"`` (every order of <= 3 tasks, best ``probe_fn`` score kept); or an explicit
            sequence of stage labels.
        probe_fn: ``probe_fn(encoder) -> score`` (higher is better), required for ``"probe"``/``"search"``.
        probe_epochs: budget per stage during ranking/search (default: the stage's epochs).
        device: training device.
        output_dir: where to write ``stage<i>_<name>_encoder.pt`` (encoder state dict after each stage, loadable
            with ``torch.load(..., weights_only=True)``) and ``summary.json``.

    Returns:
        ``{"order": [labels], "stages": [per-stage summary], "probe": ranking or search scores or None}``.
    """
    by_label = {s.label: s for s in stages}
    if len(by_label) != len(stages):
        raise ValueError(f"stage labels must be unique, got {[s.label for s in stages]}; set CurriculumStage.name.")
    probe: Any = None
    if isinstance(order, str) and order in ("probe", "search"):
        if probe_fn is None:
            raise ValueError(f"order='{order}' needs a probe_fn(encoder) -> score.")
        if order == "probe":
            probe = rank_by_probe(stages, encoder, feature_dim, probe_fn, device, probe_epochs)
            labels = [name for name, _ in probe]
        else:
            probe = search_order(stages, encoder, feature_dim, probe_fn, device, probe_epochs)
            labels = list(probe[0][0])
    elif isinstance(order, str) and order == "user":
        labels = list(by_label)
    elif isinstance(order, str):
        raise ValueError(f"order must be 'user', 'probe', 'search' or a sequence of stage labels, got '{order}'.")
    else:
        labels = list(order)
        unknown = [name for name in labels if name not in by_label]
        if unknown:
            raise ValueError(f"unknown stage labels {unknown}; stages are {list(by_label)}.")
    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    summaries = _run_sequence([by_label[n] for n in labels], encoder, feature_dim, device, out_dir)
    result = {"order": labels, "stages": summaries, "probe": probe}
    if out_dir is not None:
        (out_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result
