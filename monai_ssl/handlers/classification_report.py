"""Test-set classification report of an evaluator: metrics with patient-clustered bootstrap CIs, written to files."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys

__all__ = ["ClassificationReportHandler", "batch_values"]

logger = logging.getLogger(__name__)


def batch_values(batch: Any, key: str, n: int) -> list[Any]:
    """The ``n`` per-sample values of ``key`` in an engine's ``state.batch``, collated (a dict of lists) or
    decollated (a list of dicts, MONAI's default); ``None`` for each sample lacking it."""
    if isinstance(batch, Mapping):
        values = batch.get(key)
        return list(values) if values is not None else [None] * n
    if isinstance(batch, Sequence) and len(batch) == n:
        return [d.get(key) if isinstance(d, Mapping) else None for d in batch]
    return [None] * n


class ClassificationReportHandler:
    """Collect an evaluator's per-sample class probabilities and labels; on completion compute
    :func:`monai_ssl.evaluation.classification_report` (every metric with its percentile-bootstrap 95 % CI,
    resampling whole patients) and write ``<output_dir>/metrics_<name>.json`` (report, member metrics, checkpoints,
    labels used), ``metrics_<name>.csv`` (metric, value, ci_low, ci_high) and ``predictions_<name>.csv``
    (index, patient_id, label, prob_positive for a binary task; index, patient_id, label, prob_<class> per class
    otherwise, the label a class index (multi-class) or the ``;``-joined findings (multi-label)).

    ``task`` picks the metrics (:func:`monai_ssl.evaluation.classification_report`): binary (P(class 1), threshold
    0.5), multiclass (macro and per-class AUC, accuracy, balanced accuracy, macro F1, quadratic-weighted kappa) or
    multilabel (per-finding AUC and their mean; the label under ``label_key`` is the multi-hot vector).

    Attach it to a MONAI ``SupervisedEvaluator`` / ``EnsembleEvaluator`` whose postprocessing leaves, per decollated
    sample, the class probabilities ``(C,)`` under ``pred_key``, the one-hot or index label under ``label_key``
    and, for an ensemble, each member's probabilities under ``member_keys``. Patient ids are read from
    ``engine.state.batch[group_key]`` (the sample index when absent), so the loader must not shuffle.

    Args:
        output_dir: folder for the three files (created).
        name: suffix of the files (the evaluated split).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        member_keys: keys of the ensemble members' probabilities (``[]``/None: a single model).
        checkpoints: the evaluated checkpoint files (recorded).
        labels_used: ``{"train": n, "val": m}`` labels the model was trained and selected with (recorded with
            ``n_labels_used`` and ``selected_on: "val"``).
        pred_key, label_key, group_key: output / batch keys.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` (the bundle's ``task``).
        class_names: names of the ``C`` outputs (per-class metric and column names; default the indices).

    After the run, ``result`` holds ``{"report", "member_metrics", "checkpoints", "ensemble", ...}``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        name: str = "test",
        n_boot: int = 1000,
        seed: int = 0,
        member_keys: Sequence[str] | None = None,
        checkpoints: Sequence[str | os.PathLike] = (),
        labels_used: Mapping[str, int] | None = None,
        pred_key: str = CommonKeys.PRED,
        label_key: str = CommonKeys.LABEL,
        group_key: str = "patient_id",
        task: str = "binary",
        class_names: Sequence[str] | None = None,
    ) -> None:
        from ..metrics.classification import TASKS

        if task not in TASKS:
            raise ValueError(f"config key 'task' must be one of {TASKS}, got {task!r}")
        self.task, self.class_names = task, ([str(c) for c in class_names] if class_names is not None else None)
        self.output_dir, self.name, self.n_boot, self.seed = Path(output_dir), name, int(n_boot), int(seed)
        self.member_keys = list(member_keys or [])
        self.checkpoints = [str(c) for c in checkpoints]
        self.labels_used = dict(labels_used) if labels_used is not None else None
        self.pred_key, self.label_key, self.group_key = pred_key, label_key, group_key
        self.result: dict[str, Any] | None = None
        self._rows: dict[str, list[torch.Tensor]] = {}
        self._groups: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _reset(self, engine: Engine) -> None:
        self._rows = {k: [] for k in [self.pred_key, self.label_key, *self.member_keys]}
        self._groups = []

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output
        groups = batch_values(engine.state.batch, self.group_key, len(outputs))
        for item, group in zip(outputs, groups):
            for k in self._rows:
                self._rows[k].append(torch.as_tensor(item[k]).detach().float().cpu().reshape(-1))
            self._groups.append(str(group) if group is not None else str(len(self._groups)))

    def _report(self, engine: Engine) -> None:
        from ..metrics import classification_metrics, classification_report

        if not self._groups:
            raise ValueError(f"evaluate ({self.name}): the evaluated split is empty")
        probs = torch.stack(self._rows[self.pred_key])
        labels = torch.stack(self._rows[self.label_key])
        names = self.class_names or [str(c) for c in range(probs.shape[1])]
        if len(names) != probs.shape[1]:
            raise ValueError(f"config key 'class_names': {len(names)} names for {probs.shape[1]} model outputs")
        if self.task == "multilabel":
            labels = labels.round().long()
            scores = probs
        else:
            labels = (labels.argmax(1) if labels.shape[1] > 1 else labels[:, 0]).long()
            scores = probs[:, 1] if self.task == "binary" else probs
        kw = {"class_names": names} if self.task != "binary" else {}
        report = classification_report(scores, labels, task=self.task, n_boot=self.n_boot, seed=self.seed,
                                       groups=self._groups, **kw)
        members = self.member_keys or [self.pred_key]
        member_probs = [torch.stack(self._rows[k]) for k in members]
        member_metrics = [classification_metrics(m[:, 1] if self.task == "binary" else m, labels, self.task)
                          for m in member_probs]
        result = {"report": report, "member_metrics": member_metrics, "checkpoints": self.checkpoints,
                  "ensemble": len(members) > 1, "n_boot": self.n_boot, "split": self.name, "task": self.task,
                  "class_names": names}
        if self.labels_used is not None:
            result.update(selected_on="val", labels_used=self.labels_used,
                          n_labels_used=sum(self.labels_used.values()))
        self._write(result, labels, scores, names)
        self.result = result
        logger.info("evaluate (%s): AUC %.4f [%.4f, %.4f]", self.name, report["auc"]["value"],
                    report["auc"]["low"], report["auc"]["high"])

    def _write(self, result: dict[str, Any], labels: torch.Tensor, scores: torch.Tensor, names: list[str]) -> None:
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / f"metrics_{self.name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
        with open(out / f"metrics_{self.name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["metric", "value", "ci_low", "ci_high"])
            for k, v in result["report"].items():
                w.writerow([k, v["value"], v.get("low", ""), v.get("high", "")])
        with open(out / f"predictions_{self.name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            if self.task == "binary":
                w.writerow(["index", "patient_id", "label", "prob_positive"])
                for i, (g, y, p) in enumerate(zip(self._groups, labels.tolist(), scores.tolist())):
                    w.writerow([i, g, y, f"{p:.6f}"])
                return
            w.writerow(["index", "patient_id", "label", *[f"prob_{n}" for n in names]])
            for i, (g, y, p) in enumerate(zip(self._groups, labels.tolist(), scores.tolist())):
                if self.task == "multilabel":
                    y = ";".join(n for n, v in zip(names, y) if v)
                w.writerow([i, g, y, *[f"{v:.6f}" for v in p]])
