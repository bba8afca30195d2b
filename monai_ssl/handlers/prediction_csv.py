"""Per-file class probabilities of an inference run, written to one CSV."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys

from .classification_report import batch_values

__all__ = ["PredictionCSVWriter"]

logger = logging.getLogger(__name__)


class PredictionCSVWriter:
    """Collect an evaluator's per-sample probabilities and write ``output_csv`` with the columns ``file``,
    ``prob_<class>`` for each of ``class_names`` and ``pred`` (the most probable class; ``multilabel``: the
    ``;``-joined findings with probability >= 0.5, ``none`` when there is none), one row per input, in
    input order. MONAI's ``ClassificationSaver`` writes one column per class index with the source file taken
    from image metadata; this writer names the classes and keeps the path it was given.

    Args:
        output_csv: the CSV file (parent folder created; written once, at ``Events.COMPLETED``).
        class_names: names of the ``C`` outputs.
        file_key: batch key holding each input's path.
        pred_key: output key of the ``(C,)`` probabilities.
        multilabel: the outputs are independent findings (sigmoid), not exclusive classes.

    After the run, ``rows`` holds the written rows as dicts.

    Raises:
        ValueError: ``class_names`` does not match the number of outputs (naming the config key).
    """

    def __init__(self, output_csv: str | os.PathLike, class_names: Sequence[str], file_key: str = "file",
                 pred_key: str = CommonKeys.PRED, multilabel: bool = False) -> None:
        self.output_csv, self.class_names = Path(output_csv), [str(c) for c in class_names]
        self.file_key, self.pred_key, self.multilabel = file_key, pred_key, bool(multilabel)
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        files = batch_values(engine.state.batch, self.file_key, len(engine.state.output))
        for f, item in zip(files, engine.state.output):
            p = torch.as_tensor(item[self.pred_key]).detach().float().cpu().reshape(-1)
            if p.numel() != len(self.class_names):
                raise ValueError(f"config key 'class_names': {len(self.class_names)} names for {p.numel()} outputs")
            row: dict[str, Any] = {"file": f}
            row |= {f"prob_{c}": round(float(v), 6) for c, v in zip(self.class_names, p)}
            if self.multilabel:
                row["pred"] = ";".join(c for c, v in zip(self.class_names, p) if v >= 0.5) or "none"
            else:
                row["pred"] = self.class_names[int(p.argmax())]
            self.rows.append(row)

    def _write(self, engine: Engine) -> None:
        if not self.rows:
            return
        self.output_csv.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            w.writeheader()
            w.writerows(self.rows)
        logger.info("inference: wrote %d predictions to %s", len(self.rows), self.output_csv)
