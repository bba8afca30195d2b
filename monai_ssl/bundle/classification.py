"""Helpers of the ``classification`` bundle (``bundles/classification``) for what a config cannot say cleanly:
the labelled patient-level datalists, the pretrained / linear-probe network set-up, checkpoint (ensemble)
evaluation with bootstrap CIs, and per-file inference to a CSV."""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.errors import describe_error

__all__ = [
    "IMAGE_SUFFIXES",
    "classification_datalists",
    "evaluate_checkpoints",
    "list_image_files",
    "load_weights",
    "predict_files",
    "prepare_network",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".dcm", ".dicom", ".nii", ".nii.gz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_KEEP = ("image", "label", "patient_id")


def _labelled(items: Iterable[Mapping]) -> list[dict[str, Any]]:
    """Items with a usable label (``-1`` = unlabelled "todo" finding and missing labels dropped)."""
    out = []
    for d in items:
        label = d.get("label")
        if label is None or int(label) < 0:
            continue
        out.append({k: d[k] for k in _KEEP if k in d} | {"label": int(label)})
    return out


def _stratified_head(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first ``n`` items taking the classes in turn (a smoke run's tiny split keeps both classes)."""
    by_class: dict[int, list] = {}
    for d in items:
        by_class.setdefault(d["label"], []).append(d)
    queues = [by_class[k] for k in sorted(by_class)]
    out: list[dict[str, Any]] = []
    while len(out) < min(n, len(items)):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def classification_datalists(
    dataset_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    label_fraction: float = 1.0,
    seed: int = 0,
    limit: int | None = None,
    val_fraction: float | None = None,
    num_classes: int = 2,
) -> dict[str, list[dict[str, Any]]]:
    """Patient-level ``train`` / ``val`` / ``test`` lists of labelled items.

    A run with ``label_fraction`` f chooses its checkpoint on validation labels, which count as labels used: by
    default the validation list is the same fraction f of the validation split (``val_fraction``; whole patients,
    stratified, nested), so a "10 % labels" run uses about 10 % of the train + validation labels.

    Without ``datalist``: every image of ``<dataset_dir>/covid_cxr_256.npz`` is split 70/15/15 by patient with
    :func:`monai_ssl.data.patient_split` (``seed``), the same split the ``micle_pretrain`` bundle draws its
    ``train`` patients from, so test patients are never pretrained on. ``train`` is the split's ``labelled``
    subset (``label_fraction`` of the training images, whole patients, nested across fractions). Label 1 = the
    finding contains COVID-19, 0 = other finding; unlabelled items (-1) are dropped after splitting. With
    ``datalist`` (CSV/JSON with ``image`` paths, ``label`` and ``patient_id``; an optional ``split`` column with
    train/val/test, in any case, fixes the split): the same, on its rows, with ``image`` left as a path. A ``split``
    column must be filled on every row or on none (:func:`monai_ssl.data.fixed_split`), each patient in one split,
    and no image listed twice (:func:`monai_ssl.data.require_unique`).

    Args:
        dataset_dir: folder holding ``covid_cxr_256.npz``.
        datalist: optional table replacing the npz.
        label_fraction: share of the training labels used, in (0, 1].
        seed: split seed.
        limit: keep only the first N items of each split (smoke runs).
        val_fraction: share of the validation labels used (None: ``label_fraction``).
        num_classes: the config's ``num_classes``: every ``label`` of ``datalist`` must be an integer in
            0..num_classes-1 (or -1, unlabelled), checked when the table is read.

    Returns:
        ``{"train", "val", "test"}`` item lists (``image``, ``label``, ``patient_id``).

    Raises:
        FileNotFoundError: naming the config key (``dataset_dir`` / ``datalist``) and the missing path.
        ValueError: a bad ``label_fraction`` or ``data_limit``, an empty split, a ``datalist`` label that is not a
            class index (naming the file, row, column, value and the allowed values), a ``split`` column that is
            partly empty or holds an unknown value, a patient in two splits, or an image in two rows (all named).
    """
    from ..data import fixed_split, label_fraction_subset, load_covid_cxr, load_datalist, patient_split, require_unique
    from .paths import require_path

    if not 0 < float(label_fraction) <= 1:
        raise ValueError(f"config key 'label_fraction' must be in (0, 1], got {label_fraction}")
    val_fraction = label_fraction if val_fraction is None else val_fraction
    if not 0 < float(val_fraction) <= 1:
        raise ValueError(f"config key 'val_label_fraction' must be in (0, 1], got {val_fraction}")
    if limit is not None and int(limit) <= 0:
        raise ValueError(f"config key 'data_limit' must be a positive integer or null, got {limit}")
    if datalist is not None:
        require_path(datalist, "datalist", "file")
        items = load_datalist(datalist, required_keys=("image", "label"), num_classes=num_classes)
        src = f"datalist {datalist}"
        require_unique(items, "image", src)
        by_split = fixed_split(items, src)
    else:
        require_path(dataset_dir, "dataset_dir", "dir", files=("covid_cxr_256.npz",))
        items = load_covid_cxr(Path(dataset_dir) / "covid_cxr_256.npz")
        src = f"dataset_dir {dataset_dir}"
        by_split = None
    if by_split is not None:
        splits = patient_split(by_split["train"], fractions=(1.0, 0.0, 0.0), label_fraction=label_fraction,
                               seed=seed)
        splits = {"train": splits["labelled"], "val": by_split["val"], "test": by_split["test"]}
    else:
        splits = patient_split(items, fractions=(0.7, 0.15, 0.15), label_fraction=label_fraction, seed=seed)
        splits = {"train": splits["labelled"], "val": splits["val"], "test": splits["test"]}
    out = {}
    for name, part in splits.items():
        part = _labelled(part)
        if name == "val" and float(val_fraction) < 1:
            part = label_fraction_subset(part, float(val_fraction), seed=seed)
        if limit is not None:
            part = _stratified_head(part, int(limit))
        if not part:
            raise ValueError(f"the '{name}' split of {src} holds no labelled item (label_fraction={label_fraction})")
        out[name] = part
    return out


def load_weights(network: nn.Module, path: str | os.PathLike, key: str = "ckpt_path") -> nn.Module:
    """Load a classifier checkpoint (plain state dict, or a training checkpoint's ``network`` entry) strictly.

    Raises:
        FileNotFoundError: naming the config ``key`` and the path.
    """
    from ..networks.weights import load_checkpoint_weights
    from .paths import require_path

    require_path(path, key, "file")
    state = load_checkpoint_weights(path)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"config key '{key}': {path} does not fit the classification network: {err}") from err
    return network


def _keep_frozen_in_eval(frozen: Sequence[nn.Module]) -> Callable:
    def hook(module: nn.Module, args: Any) -> None:
        if module.training:  # SupervisedTrainer calls network.train() every iteration
            for m in frozen:
                m.eval()

    return hook


def _check_stem_stride(network: nn.Module, pretrained_ckpt: str | os.PathLike) -> None:
    """Warn when the encoder export's sidecar (``<ckpt>.json``, see ``export_encoder``) records a
    ``conv1_t_stride`` other than the stride of ``network.conv1``: the weights fit, but the filters see another scale."""
    sidecar = Path(f"{pretrained_ckpt}.json")
    conv1 = getattr(network, "conv1", None)
    if not sidecar.is_file() or not isinstance(getattr(conv1, "stride", None), tuple):
        return
    try:
        target = str(json.loads(sidecar.read_text()).get("target", ""))
    except (OSError, ValueError, AttributeError):
        return
    found = re.search(r"conv1_t_stride\s*=\s*(\d+)", target)
    if found and int(found.group(1)) != conv1.stride[0]:
        warnings.warn(f"pretrained_ckpt {pretrained_ckpt}: the encoder was pretrained with conv1_t_stride="
                      f"{found.group(1)} ({sidecar.name}: {target}), the classifier's conv1 has stride "
                      f"{conv1.stride[0]} (config key 'stem_stride'): the weights load, but every filter sees the "
                      f"image at another scale; set --stem_stride {found.group(1)}", stacklevel=3)


def prepare_network(
    network: nn.Module,
    pretrained_ckpt: str | os.PathLike | None = None,
    pretrained_kind: str = "contrastive_resnet",
    mode: str = "finetune",
    head_name: str = "fc",
    min_loaded_fraction: float = 0.9,
) -> nn.Module:
    """Initialise ``network`` from a pretrained checkpoint and set it up for ``mode`` (in place).

    Args:
        network: the classifier (MONAI ``resnet18(num_classes=K)``; its head is the child ``head_name``).
        pretrained_ckpt: checkpoint for :func:`monai_ssl.networks.load_pretrained`; ``""``/None = from scratch.
        pretrained_kind: its key map (``contrastive_resnet`` for the ``micle_pretrain`` export, ``state_dict``...).
        mode: ``finetune`` (every weight trains) or ``linear_probe`` (only the head trains; the encoder's
            weights are frozen and its BatchNorm statistics kept, by a forward pre-hook that puts the frozen
            children back in eval mode).
        head_name: name of the head child module.
        min_loaded_fraction: passed to ``load_pretrained``.

    A ``conv1_t_stride`` in the ``target`` of the checkpoint's sidecar (``<pretrained_ckpt>.json``, written by the
    pretraining bundles' encoder export) that differs from the stride of ``network.conv1`` is warned about.

    Raises:
        ValueError: unknown ``mode`` or head, or a checkpoint that does not fit (see ``load_pretrained``).
        FileNotFoundError: ``pretrained_ckpt`` does not exist (naming the config key).
    """
    from ..networks.transfer import load_pretrained
    from .paths import choose, require_path

    choose({"finetune": 1, "linear_probe": 1}, mode, "mode")
    if pretrained_ckpt:
        require_path(pretrained_ckpt, "pretrained_ckpt", "file")
        report = load_pretrained(network, pretrained_ckpt, kind=pretrained_kind,
                                 min_loaded_fraction=min_loaded_fraction, verbose=False)
        logger.info("pretrained_ckpt %s: loaded %d tensors (%.0f%%), missing %s", pretrained_ckpt,
                    len(report.loaded), 100 * report.loaded_fraction, sorted(report.missing))
        _check_stem_stride(network, pretrained_ckpt)
    elif mode == "linear_probe":
        logger.warning("mode=linear_probe without pretrained_ckpt: probing a randomly initialised encoder")
    if mode == "linear_probe":
        children = dict(network.named_children())
        if head_name not in children:
            raise ValueError(f"config key 'mode': linear_probe needs a head child '{head_name}' in "
                             f"{type(network).__name__} (children: {sorted(children)})")
        frozen = [m for n, m in children.items() if n != head_name]
        for m in frozen:
            m.requires_grad_(False)
        network.register_forward_pre_hook(_keep_frozen_in_eval(frozen))
    return network


def evaluate_checkpoints(
    network: nn.Module,
    ckpt_paths: str | os.PathLike | Sequence[str | os.PathLike],
    loader: Iterable,
    items: Sequence[Mapping],
    output_dir: str | os.PathLike,
    device: torch.device | str = "cpu",
    n_boot: int = 1000,
    seed: int = 0,
    name: str = "test",
    labels_used: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Test metrics with patient-clustered bootstrap 95 % CIs of one checkpoint, or of the probability-averaging
    ensemble of several (:func:`monai_ssl.evaluation.ensemble_evaluate`, MONAI ``EnsembleEvaluator``).

    Writes ``<output_dir>/metrics_<name>.json`` (report, member metrics, checkpoints), ``metrics_<name>.csv``
    (metric, value, low, high) and ``predictions_<name>.csv`` (index, patient_id, label, prob_positive).

    Args:
        network: the classifier (``(B, 1, H, W) -> (B, 2)`` logits); each checkpoint loads into a copy.
        ckpt_paths: one checkpoint, or several for an ensemble (equal weights).
        loader: batches ``{"image", "label"}`` in the order of ``items`` (no shuffling).
        items: the evaluated items (``patient_id`` used for the cluster bootstrap and the predictions file).
        output_dir: output folder (created).
        device: where to run.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        name: suffix of the output files.
        labels_used: ``{"train": n, "val": m}`` labels the model was trained and selected with (recorded with
            ``n_labels_used`` and ``selected_on: "val"``: the training run keeps the best validation checkpoint).

    Returns:
        ``{"report": {metric: {value, low, high}}, "member_metrics": [...], "checkpoints": [...]}``.
    """
    from ..evaluation import classification_report, ensemble_evaluate

    paths = [ckpt_paths] if isinstance(ckpt_paths, (str, os.PathLike)) else list(ckpt_paths)
    if not paths:
        raise ValueError("config key 'ensemble_ckpts': no checkpoint to evaluate (ensemble=true needs a list)")
    models = [load_weights(copy.deepcopy(network), p, "ensemble_ckpts" if len(paths) > 1 else "ckpt_path").eval()
              for p in paths]
    res = ensemble_evaluate(models, loader, device=device, task="binary")
    probs, labels = res["ensemble"][:, 1].float(), res["labels"].long()
    member_metrics = res["member_metrics"]
    if len(probs) != len(items):
        raise ValueError(f"evaluate: {len(probs)} predictions for {len(items)} items (the loader must not shuffle "
                         "or drop items)")
    groups = [str(d.get("patient_id", i)) for i, d in enumerate(items)]
    report = classification_report(probs, labels, task="binary", n_boot=n_boot, seed=seed, groups=groups)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"report": report, "member_metrics": member_metrics, "checkpoints": [str(p) for p in paths],
              "ensemble": len(paths) > 1, "n_boot": n_boot, "split": name}
    if labels_used is not None:
        result.update(selected_on="val", labels_used=dict(labels_used), n_labels_used=sum(labels_used.values()))
    (out / f"metrics_{name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    with open(out / f"metrics_{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "value", "ci_low", "ci_high"])
        for k, v in report.items():
            w.writerow([k, v["value"], v.get("low", ""), v.get("high", "")])
    with open(out / f"predictions_{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "patient_id", "label", "prob_positive"])
        for i, (g, y, p) in enumerate(zip(groups, labels.tolist(), probs.tolist())):
            w.writerow([i, g, y, f"{p:.6f}"])
    return result


def list_image_files(input_path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Image files to predict: a folder (searched recursively for :data:`IMAGE_SUFFIXES`), one file, a list of
    files, or a ``.txt`` file listing one path per line.

    Raises:
        FileNotFoundError: naming the config key ``input_path`` and the missing path(s).
        ValueError: a folder without image files.
    """
    from .paths import require_path

    if isinstance(input_path, (str, os.PathLike)):
        p = Path(require_path(input_path, "input_path"))
        if p.is_dir():
            files = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES))
            if not files:
                raise ValueError(f"config key 'input_path': no image files ({', '.join(IMAGE_SUFFIXES)}) in {p}")
            return files
        if p.suffix.lower() == ".txt":
            return list_image_files([ln.strip() for ln in p.read_text().splitlines() if ln.strip()])
        return [str(p)]
    files = [str(f) for f in input_path]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"config key 'input_path': file(s) not found: {missing}")
    if not files:
        raise ValueError("config key 'input_path' is an empty list")
    return files


@torch.no_grad()
def predict_files(
    network: nn.Module,
    files: Sequence[str],
    transform: Callable[[dict], dict],
    output_csv: str | os.PathLike,
    class_names: Sequence[str] = ("other", "covid"),
    device: torch.device | str = "cpu",
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Class probabilities per image file, written to ``output_csv`` (columns ``file``, ``prob_<class>``...,
    ``pred``).

    Args:
        network: the trained classifier.
        files: image paths (DICOM, NIfTI, PNG, ...).
        transform: ``{"image": path} -> {"image": (1, H, W)}`` (the bundle's X-ray preset).
        output_csv: CSV path (parent created).
        class_names: names of the K logits.
        device: where to run.
        batch_size: images per forward pass.

    Raises:
        RuntimeError: naming the file that could not be read or transformed.
    """
    network = network.to(device).eval()
    rows: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images = []
        for f in chunk:
            try:
                images.append(torch.as_tensor(transform({"image": f})["image"]).float())
            except Exception as err:
                raise RuntimeError(f"inference: cannot read or preprocess {f}: {describe_error(err)}") from err
        logits = network(torch.stack(images).to(device))
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        if logits.shape[1] != len(class_names):
            raise ValueError(f"config key 'class_names': {len(class_names)} names for {logits.shape[1]} outputs")
        probs = torch.softmax(logits.float(), 1).cpu()
        for f, p in zip(chunk, probs):
            row: dict[str, Any] = {"file": f}
            row |= {f"prob_{c}": round(float(v), 6) for c, v in zip(class_names, p)}
            row["pred"] = class_names[int(p.argmax())]
            rows.append(row)
    out = Path(output_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    logger.info("inference: wrote %d predictions to %s", len(rows), out)
    return rows
