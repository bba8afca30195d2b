"""Label-efficiency sweep: initialisations x label fractions x seeds, resumable, with a CSV, a summary and a plot.

For each seed the data are split once (patient level, :func:`monai_ssl.data.patient_split`) or the official
splits are used as given; for each label fraction the labelled training subset is
:func:`monai_ssl.data.label_fraction_subset` of the training split (whole patients, stratified by label, nested:
for one seed the 1 % subset lies inside the 10 % one); every initialisation is then trained on the same subset
and evaluated on the same test split. ``results.csv`` is rewritten (atomically) after every run, so a crash loses
at most the run in progress, and a rerun skips the ``(init, fraction, seed)`` rows already present.

The selection protocol: every choice (recipe, hyperparameters, checkpoint) is made on validation labels only, and
at a label fraction ``f`` only the same fraction ``f`` of the validation split is labelled (stratified, nested, at
least one image per class), so a "1 % labels" row really used about 1 % of the labels of train + val: the rows'
``n_labels_used`` counts both. Each candidate recipe of ``recipes`` (the same grid for every initialisation: the
baseline gets the SSL arm's tuning budget) is trained and scored on that validation subset; the best one (by
``select_metric``, ties broken by the validation log-loss; a candidate that predicts one class for every validation
image is never chosen while another is not) is scored on the test split once. A row whose chosen model predicts one
class for every test image is marked ``status = failed: ...``, left out of the summary's means and counted there: a
failed run is not a baseline.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "failed_reason",
    "plot_results",
    "read_results",
    "run_label_efficiency",
    "seed_splits",
    "select_recipe",
    "summarise_results",
]

KEY_FIELDS = ("init", "fraction", "seed")
OK = "ok"


def seed_splits(
    data: Sequence[dict] | Mapping[str, Sequence[dict]], seed: int,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15), patient_key: str = "patient_id", label_key: str = "label",
) -> dict[str, list[dict]]:
    """``{"train", "val", "test"}`` for one seed.

    Args:
        data: a datalist (split at patient level per seed with ``split_fractions``) or a mapping with official
            ``"train"`` and ``"test"`` (optionally ``"val"``) lists, used unchanged for every seed.
        seed: split seed (ignored for official splits).
        split_fractions: train/val/test shares of patients for a datalist.
        patient_key: patient id key (items without it are their own patient).
        label_key: label key used for stratification.
    """
    from ..data.splits import patient_split

    if isinstance(data, Mapping):
        missing = [k for k in ("train", "test") if k not in data]
        if missing:
            raise ValueError(f"official splits need the keys 'train' and 'test'; missing {missing} in {sorted(data)}")
        return {"train": list(data["train"]), "val": list(data.get("val", [])), "test": list(data["test"])}
    out = patient_split(data, fractions=split_fractions, seed=seed, patient_key=patient_key, label_key=label_key)
    return {k: out[k] for k in ("train", "val", "test")}


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` with numeric fields parsed back (empty list if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: _parse(v) if k != "init" else v for k, v in row.items()})
    return rows


def failed_reason(metrics: Mapping[str, float]) -> str | None:
    """Why a scored model is a failed run, or None: it predicts one class for every image (``predicted_classes``
    of the metrics, when the scorer reports it, is 1)."""
    for key in ("predicted_classes", "test_predicted_classes", "val_predicted_classes"):
        if key in metrics and int(metrics[key]) <= 1:
            return "failed: predicts one class for every image"
    return None


def select_recipe(scores: Mapping[str, Mapping[str, float]], metric: str = "auc", tie_break: str = "log_loss") -> str:
    """The recipe with the best (highest) validation ``metric`` among those that are not failed runs (all, when every
    one is). Ties, common when a few validation images allow only a few AUC values, go to the lower ``tie_break``
    (the validation log-loss, when the scorer reports it), then to the earlier recipe (the grid's order). NaN counts
    as worst."""
    if not scores:
        raise ValueError("select_recipe: no candidate scores")
    eligible = [n for n, m in scores.items() if failed_reason(m) is None] or list(scores)

    def value(name: str, key: str, sign: float) -> float:
        v = float(scores[name].get(key, math.nan))
        return -math.inf if math.isnan(v) else sign * v

    return max(eligible, key=lambda n: (value(n, metric, 1.0), value(n, tie_break, -1.0), -list(scores).index(n)))


def _parse(value: str) -> Any:
    if value.startswith(("{", "[")):
        return value  # JSON (recipes, candidate scores) stays text
    for cast in (int, float):
        try:
            return cast(value)
        except (TypeError, ValueError):
            pass
    return value


def _key(row: Mapping[str, Any]) -> tuple[str, float, int]:
    return str(row["init"]), round(float(row["fraction"]), 9), int(row["seed"])


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)  # atomic: a crash mid-write keeps the previous file


def summarise_results(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """Markdown table: mean ± std over seeds of each metric per (init, fraction), the labels used and how many runs
    failed (a failed run, see :func:`failed_reason`, is left out of the means)."""
    if not rows:
        return "(no results)"
    metrics = list(metrics or [k for k, v in rows[0].items() if k.startswith("test_") and isinstance(v, (int, float))
                               and not k.endswith(("predicted_classes", "_low", "_high"))]
                   + [k for k in ("val_auc",) if k in rows[0]])
    inits = list(dict.fromkeys(r["init"] for r in rows))
    fractions = sorted({float(r["fraction"]) for r in rows})
    head = "| init | label fraction | labels used (train + val) | runs ok / failed | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for init in inits:
        for frac in fractions:
            sel = [r for r in rows if r["init"] == init and math.isclose(float(r["fraction"]), frac)]
            if not sel:
                continue
            ok = [r for r in sel if str(r.get("status", OK)) == OK]
            used = sorted({int(r.get("n_labels_used", r["n_labelled"])) for r in sel})
            cells = [_mean_std([float(r[m]) for r in ok if m in r and r[m] != ""]) for m in metrics]
            lines.append(f"| {init} | {frac:g} | {'/'.join(map(str, used))} | {len(ok)} / {len(sel) - len(ok)} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def plot_results(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, metric: str = "test_auc",
                 title: str | None = None) -> Path | None:
    """Metric vs label fraction (log x axis), mean with std error bars over seeds, one line per init.

    Returns the PNG path, or None when matplotlib is not installed.
    """
    from monai.utils import optional_import

    # a bare Figure (no pyplot): nothing global changes, so a notebook's inline backend keeps working
    Figure, has_mpl = optional_import("matplotlib.figure", name="Figure")
    if not has_mpl:
        return None
    inits = list(dict.fromkeys(r["init"] for r in rows))
    many = len(inits) > 4  # the legend goes beside the axes, where it cannot hide the curves
    fig = Figure(figsize=(7.5 if many else 5, 3.6), dpi=120)
    ax = fig.subplots()
    for init in inits:
        fracs = sorted({float(r["fraction"]) for r in rows if r["init"] == init})
        means, stds = [], []
        for f in fracs:
            v = [float(r[metric]) for r in rows if r["init"] == init and math.isclose(float(r["fraction"]), f)
                 and not math.isnan(float(r[metric])) and str(r.get("status", OK)) == OK]
            means.append(statistics.mean(v) if v else math.nan)
            stds.append(statistics.stdev(v) if len(v) > 1 else 0.0)
        ax.errorbar([100 * f for f in fracs], means, yerr=stds, marker="o", capsize=3, label=init)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (%)")
    if metric.endswith("auc"):
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    used: dict[float, set[int]] = {}
    for r in rows:
        count = r.get("n_labels_used", r.get("n_labelled"))
        used.setdefault(100 * float(r["fraction"]), set()).update([int(count)] if count not in (None, "") else [])
    ticks = sorted(used)
    ax.set_xticks(ticks, [f"{t:g} %" + (f"\n{'/'.join(map(str, sorted(used[t])))} labels" if used[t] else "")
                          for t in ticks], fontsize=7)
    ax.minorticks_off()
    ax.set_ylabel(metric)
    ax.set_title(title or f"label efficiency ({metric}, mean ± std over seeds)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def run_label_efficiency(
    data: Sequence[dict] | Mapping[str, Sequence[dict]],
    init_fns: Mapping[str, Callable[[int], Any]],
    train_fn: Callable[..., Any],
    eval_fn: Callable[[Any, list[dict]], Mapping[str, float]],
    out_dir: str | os.PathLike,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    patient_key: str = "patient_id",
    label_key: str = "label",
    plot_metric: str = "test_auc",
    resume: bool = True,
    log: Callable[[str], None] | None = print,
    recipes: Mapping[str, Mapping[str, Any]] | None = None,
    select_metric: str = "auc",
    val_fraction: str | float = "same",
) -> list[dict[str, Any]]:
    """Train and evaluate every initialisation on every label fraction for every seed, choosing on validation only.

    Args:
        data: datalist (patient-level split per seed) or official splits ``{"train", "test"[, "val"]}``.
        init_fns: ``{name: fn(seed) -> model}``, e.g. ``{"scratch": ..., "simclr": ...}``.
        train_fn: ``train_fn(model, labelled, val, seed=seed, fraction=fraction, **recipe) -> model or None``
            (None: trained in place). ``labelled`` is the label-fraction subset of the training split, ``val`` the
            labelled validation subset (see ``val_fraction``): the only validation labels it may use (e.g. for
            checkpoint selection or a probe's L2).
        eval_fn: ``eval_fn(model, items) -> {metric: value}`` (may report ``predicted_classes``, the number of
            classes the model predicts over ``items``: 1 marks a failed run; and ``log_loss``, which breaks ties of
            ``select_metric`` between recipes). Scores the validation subset of every
            candidate and the test split of the chosen one; test names are prefixed ``test_``.
        out_dir: folder for ``results.csv``, ``summary.md`` and ``label_efficiency.png``.
        fractions: label fractions in (0, 1].
        seeds: seeds (split, subset, initialisation and training).
        split_fractions: patient train/val/test shares for a datalist.
        patient_key: patient id key.
        label_key: label key (stratification and ``n_positive``).
        plot_metric: metric drawn in the PNG.
        resume: keep rows of an existing ``results.csv`` and skip their ``(init, fraction, seed)``.
        log: progress printer (None: silent).
        recipes: ``{name: train_fn keyword arguments}``, the candidate grid tried for every init (None: one recipe
            ``{}``, named ``default``).
        select_metric: validation metric choosing the recipe (higher is better).
        val_fraction: ``"same"`` (default): the validation labels used at fraction ``f`` are
            ``label_fraction_subset(val, f)``; a float: that fraction of the validation split at every ``f``.

    Returns:
        all rows (previous ones first): ``init, fraction, seed, recipe, recipe_params, selected_on, n_labelled,
        n_val_labelled, n_labels_used, n_positive, n_test, status, val_scores, train_s`` + ``val_<metric>`` of the
        chosen recipe + test metrics.
    """
    import json

    from ..data.splits import label_fraction_subset

    if not init_fns:
        raise ValueError("init_fns is empty: give at least one {name: fn(seed) -> model}")
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"label fractions must be in (0, 1], got {bad}")
    if val_fraction != "same" and not (isinstance(val_fraction, (int, float)) and 0 < float(val_fraction) <= 1):
        raise ValueError(f"val_fraction must be 'same' or a fraction in (0, 1], got {val_fraction!r}")
    recipes = dict(recipes) if recipes else {"default": {}}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    rows = read_results(csv_path) if resume else []
    done = {_key(r) for r in rows}
    say = log or (lambda _: None)
    for seed in seeds:
        todo = [(f, n) for f in fractions for n in init_fns if (n, round(float(f), 9), int(seed)) not in done]
        if not todo:
            continue
        splits = seed_splits(data, seed, split_fractions, patient_key, label_key)
        if not splits["train"] or not splits["test"]:
            raise ValueError(f"seed {seed}: empty train or test split ({ {k: len(v) for k, v in splits.items()} })")
        for fraction, name in todo:
            labelled = label_fraction_subset(splits["train"], fraction, seed=seed, patient_key=patient_key,
                                             label_key=label_key)
            vf = fraction if val_fraction == "same" else float(val_fraction)
            val = label_fraction_subset(splits["val"], vf, seed=seed, patient_key=patient_key, label_key=label_key)
            if len(recipes) > 1 and not val:
                raise ValueError(f"seed {seed}: {len(recipes)} recipes to choose from but no validation data; "
                                 "give a 'val' split (the test split is never used for selection)")
            start = time.perf_counter()
            scores: dict[str, dict[str, float]] = {}
            best_name, best_model = None, None
            for recipe_name, recipe in recipes.items():
                model = init_fns[name](seed)
                trained = train_fn(model, labelled, val, seed=seed, fraction=fraction, **recipe)
                model = model if trained is None else trained
                if len(recipes) == 1:
                    best_name, best_model = recipe_name, model
                    break
                scores[recipe_name] = {k: float(v) for k, v in eval_fn(model, val).items()}
                if select_recipe(scores, select_metric) == recipe_name:
                    best_name, best_model = recipe_name, model
                say(f"  {name} fraction={fraction:g} seed={seed} candidate {recipe_name}: val "
                    f"{select_metric}={scores[recipe_name].get(select_metric, math.nan):.4f} "
                    f"({time.perf_counter() - start:.0f}s)")
            train_s = time.perf_counter() - start
            test_metrics = {k: float(v) for k, v in eval_fn(best_model, splits["test"]).items()}
            metrics = {(k if k.startswith(("test_", "val_")) else f"test_{k}"): v for k, v in test_metrics.items()}
            chosen_val = {f"val_{k}": v for k, v in scores.get(best_name, {}).items()}
            row = {"init": name, "fraction": float(fraction), "seed": int(seed), "recipe": best_name,
                   "recipe_params": json.dumps(recipes[best_name], sort_keys=True),
                   "selected_on": "val" if scores else "none (one fixed recipe)",
                   "n_labelled": len(labelled), "n_val_labelled": len(val),
                   "n_labels_used": len(labelled) + (len(val) if scores or val else 0),
                   "n_positive": sum(_is_positive(d.get(label_key)) for d in labelled),
                   "n_test": len(splits["test"]), "status": failed_reason(test_metrics) or OK,
                   "val_scores": json.dumps({r: round(m.get(select_metric, math.nan), 4) for r, m in scores.items()}),
                   "train_s": round(train_s, 1), **chosen_val, **metrics}
            rows.append(row)
            done.add(_key(row))
            _write_rows(csv_path, rows)
            say(f"[label-efficiency] {name} fraction={fraction:g} seed={seed} n={len(labelled)}+{len(val)} val "
                f"recipe={best_name} " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                + f" ({train_s:.0f}s){'' if row['status'] == OK else ' ' + row['status'].upper()}")
    (out / "summary.md").write_text(summarise_results(rows) + "\n")
    if rows and plot_metric in rows[0]:
        plot_results(rows, out / "label_efficiency.png", plot_metric)
    return rows


def _is_positive(label: Any) -> int:
    try:
        import numpy as np

        arr = np.asarray(label)
        return int(arr.size == 1 and float(arr.reshape(-1)[0]) > 0)
    except (TypeError, ValueError):
        return 0
