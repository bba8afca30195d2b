"""Test-set Dice report of a segmentation evaluator, written to JSON and CSV."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys

__all__ = ["SegmentationReportHandler"]

logger = logging.getLogger(__name__)


class SegmentationReportHandler:
    """Per foreground class: the Dice averaged over the items holding the class (the evaluator's MONAI ``MeanDice``
    metrics ``metric_name`` and ``<metric_name>_per_class``) and the Dice pooled over all items (intersection and
    volumes summed first: for 2D slices of one volume, the volume Dice of the evaluated slab).

    Writes ``<output_dir>/metrics_<name>.json`` and ``metrics_<name>.csv`` (class, dice_mean, dice_pooled; a last
    ``mean`` row) at ``Events.COMPLETED``; ``result`` then holds ``{"mean_dice", "mean_dice_pooled",
    "per_class": {name: {"dice_mean", "dice_pooled"}}, "n_items", "split", "checkpoint"}``.

    Args:
        output_dir: folder for the two files (created).
        class_names: ``num_classes`` names, background first.
        name: suffix of the files (the evaluated split).
        checkpoint: the evaluated checkpoint (recorded).
        metric_name: the evaluator's key metric (``<metric_name>_per_class`` its per-class companion).
        pred_key, label_key: output keys of the one-hot ``(C, *spatial)`` prediction and label.
    """

    def __init__(self, output_dir: str | os.PathLike, class_names: Sequence[str], name: str = "test",
                 checkpoint: str | os.PathLike = "", metric_name: str = "dice", pred_key: str = CommonKeys.PRED,
                 label_key: str = CommonKeys.LABEL) -> None:
        self.output_dir, self.class_names, self.name = Path(output_dir), [str(c) for c in class_names], name
        self.checkpoint, self.metric_name = str(checkpoint), metric_name
        self.pred_key, self.label_key = pred_key, label_key
        self.result: dict[str, Any] | None = None
        self._counts = torch.zeros(3, len(self.class_names), dtype=torch.float64)
        self._n = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _reset(self, engine: Engine) -> None:
        self._counts.zero_()
        self._n = 0

    def _accumulate(self, engine: Engine) -> None:
        k = len(self.class_names)
        for o in engine.state.output:
            p = o[self.pred_key].reshape(k, -1).double().cpu()
            y = o[self.label_key].reshape(k, -1).double().cpu()
            self._counts[0] += (p * y).sum(1)  # intersection, predicted and true voxels per class
            self._counts[1] += p.sum(1)
            self._counts[2] += y.sum(1)
            self._n += 1

    def _report(self, engine: Engine) -> None:
        metrics = engine.state.metrics
        per_item = torch.as_tensor(metrics[f"{self.metric_name}_per_class"]).flatten().tolist()
        pooled = (2 * self._counts[0] / (self._counts[1] + self._counts[2]).clamp_min(1e-8)).tolist()
        per_class = {c: {"dice_mean": float(per_item[i - 1]), "dice_pooled": float(pooled[i])}
                     for i, c in enumerate(self.class_names) if i > 0}
        result = {"mean_dice": float(metrics[self.metric_name]),
                  "mean_dice_pooled": float(sum(v["dice_pooled"] for v in per_class.values()) / len(per_class)),
                  "per_class": per_class, "n_items": self._n, "split": self.name, "checkpoint": self.checkpoint}
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / f"metrics_{self.name}.json").write_text(json.dumps(result, indent=2) + "\n")
        with open(out / f"metrics_{self.name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "dice_mean", "dice_pooled"])
            for c, v in per_class.items():
                w.writerow([c, f"{v['dice_mean']:.6f}", f"{v['dice_pooled']:.6f}"])
            w.writerow(["mean", f"{result['mean_dice']:.6f}", f"{result['mean_dice_pooled']:.6f}"])
        self.result = result
        logger.info("evaluate (%s): mean Dice %.4f (pooled %.4f)", self.name, result["mean_dice"],
                    result["mean_dice_pooled"])
