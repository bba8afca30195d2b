"""Per-file class probabilities of an inference run, written to one CSV, with a status for every file."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
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
    ``status``, ``domain`` (when the items carry it), ``prob_<class>`` for each of ``class_names`` and ``pred``
    (the most probable class; ``multilabel``: the ``;``-joined findings with probability >= 0.5, ``none`` when
    there is none), one row per input, in input order. MONAI's ``ClassificationSaver`` writes one
    column per class index with the source file taken from image metadata; this writer names the classes, keeps
    the path it was given and writes a row for the files that were not scored too.

    ``status`` is the item's ``status_key`` value (``"ok"`` when absent): a file whose preprocessing failed
    (``ReportFileErrorsd(on_error="mark")``) keeps its reason (``"out_of_domain: ..."``, ``"error: ..."``) and
    empty probabilities. An ``ok`` item whose probabilities are not finite gets ``"error: non-finite prediction"``
    instead of a score.

    Args:
        output_csv: the CSV file (parent folder created; written once, at ``Events.COMPLETED``).
        class_names: names of the ``C`` outputs.
        file_key: batch key holding each input's path.
        pred_key: output key of the ``(C,)`` probabilities.
        multilabel: the outputs are independent findings (sigmoid), not exclusive classes.
        status_key: batch key of each input's status.
        domain_key: batch key of what the domain check covered (``"checked"``, ``"unchecked: no DICOM header"``).

    After the run, ``rows`` holds the written rows as dicts.

    Raises:
        ValueError: ``class_names`` does not match the number of outputs (naming the config key).
    """

    def __init__(self, output_csv: str | os.PathLike, class_names: Sequence[str], file_key: str = "file",
                 pred_key: str = CommonKeys.PRED, multilabel: bool = False, status_key: str = "status",
                 domain_key: str = "domain") -> None:
        self.output_csv, self.class_names = Path(output_csv), [str(c) for c in class_names]
        self.file_key, self.pred_key, self.multilabel = file_key, pred_key, bool(multilabel)
        self.status_key, self.domain_key = status_key, domain_key
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _collect(self, engine: Engine) -> None:
        n = len(engine.state.output)
        files = batch_values(engine.state.batch, self.file_key, n)
        statuses = batch_values(engine.state.batch, self.status_key, n)
        domains = batch_values(engine.state.batch, self.domain_key, n)
        for f, status, domain, item in zip(files, statuses, domains, engine.state.output):
            status = "ok" if status is None else str(status)
            row: dict[str, Any] = {"file": f, "status": status}
            if domain is not None:
                row["domain"] = str(domain)
            probs = {f"prob_{c}": "" for c in self.class_names}
            pred = ""
            if status == "ok":
                p = torch.as_tensor(item[self.pred_key]).detach().float().cpu().reshape(-1)
                if p.numel() != len(self.class_names):
                    raise ValueError(f"config key 'class_names': {len(self.class_names)} names for {p.numel()} "
                                     f"outputs")
                if bool(torch.isfinite(p).all()):
                    probs = {f"prob_{c}": round(float(v), 6) for c, v in zip(self.class_names, p)}
                    if self.multilabel:
                        pred = ";".join(c for c, v in zip(self.class_names, p) if v >= 0.5) or "none"
                    else:
                        pred = self.class_names[int(p.argmax())]
                else:
                    row["status"] = "error: non-finite prediction"
            if row["status"] != "ok":
                logger.warning("inference: %s not scored: %s", f, row["status"])
            self.rows.append(row | probs | {"pred": pred})

    def _write(self, engine: Engine) -> None:
        if not self.rows:
            return
        self.output_csv.parent.mkdir(parents=True, exist_ok=True)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.output_csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, restval="")
            w.writeheader()
            w.writerows(self.rows)
        counts = Counter(r["status"].split(":")[0] for r in self.rows)
        logger.info("inference: wrote %d rows to %s (%s)", len(self.rows), self.output_csv,
                    ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
