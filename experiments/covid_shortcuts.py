"""What do frozen encoders encode on the COVID CXR: the finding, or the acquisition (view)?

In the shipped COVID CXR the label is confounded with the projection: "other finding" images are mostly PA
(upright, outpatient), COVID-19 images half AP / AP supine (bedside, ICU). A classifier can score above chance by
recognising the view alone. This script measures, on the patient-level split of ``experiments/label_efficiency.py
--dataset covid`` (training patients vs the held-out val + test patients):

* ``view-only``: the AUC for COVID-19 of the rule "score 1 if AP / AP supine, else 0" (no image used);
* per encoder (``random`` = the seeded ResNet-18 init, plus every ``--encoder NAME=PATH``), L2-logistic probes on
  frozen pooled features trained with all training labels (L2 chosen on 20 % of the training patients) for
  **finding** (COVID-19 vs other) and for **view** (AP / AP supine vs PA), scored by held-out AUC, and the finding
  probe's AUC within PA images only (the view cue removed);
* per label fraction and seed (the nested subsets the runner fine-tunes on): the finding probe's held-out AUC, and
  the AUC its scores reach for *view* (how much of what the few labels taught is the view).

Writes ``<out>/shortcuts.md`` and ``<out>/shortcuts.csv``::

    python experiments/covid_shortcuts.py --encoder simclr=results/label_efficiency_covid/simclr_encoder.pt \\
        --encoder micle=results/label_efficiency_covid/micle_encoder.pt --out results/covid_shortcuts
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import load_encoder, load_splits, make_classifier  # noqa: E402
from probe_encoders import features, write_csv  # noqa: E402

AP_VIEWS = ("AP", "AP Supine")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", action="append", default=[], metavar="NAME=PATH", help="cached ResNet-18 encoder")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="results/covid_shortcuts")
    args = p.parse_args(argv)
    args.encoders = {}
    for spec in args.encoder:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file():
            p.error(f"--encoder {spec!r}: expected NAME=PATH to an existing file")
        args.encoders[name] = Path(path)
    # what load_splits reads: the runner's COVID defaults, scored on the held-out val + test patients
    args.dataset, args.data_root, args.size, args.test_split = "covid", None, 64, "val+test"
    return args


def _is_ap(items: list[dict]) -> torch.Tensor:
    return torch.tensor([d["view"] in AP_VIEWS for d in items], dtype=torch.long)


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from monai_ssl.data import label_fraction_subset, patient_split
    from monai_ssl.evaluation import fit_linear_probe
    from monai_ssl.metrics.classification import auc_score

    splits = load_splits(args)
    train, test = splits["train"], splits["test"]
    for i, d in enumerate(train):
        d["index"] = i
    inner = patient_split(train, fractions=(0.8, 0.2), seed=args.split_seed, split_names=("fit", "tune"))
    fit_idx = torch.tensor([d["index"] for d in inner["fit"]])
    tune_idx = torch.tensor([d["index"] for d in inner["tune"]])
    y = {"train": torch.tensor([d["label"] for d in train]), "test": torch.tensor([d["label"] for d in test])}
    view = {"train": _is_ap(train), "test": _is_ap(test)}
    pa = view["test"] == 0
    view_only = auc_score(view["test"].double(), y["test"])
    print(f"view-only rule, held-out AUC for COVID-19: {view_only:.3f}", flush=True)

    def probe(feats, target, idx_fit, idx_tune):
        return fit_linear_probe(feats["train"][idx_fit], target["train"][idx_fit], feats["train"][idx_tune],
                                target["train"][idx_tune], task="binary")

    rows = []
    for name in ["random", *args.encoders]:
        model = make_classifier(0)
        if name != "random":
            load_encoder(model, args.encoders[name])
        feats = {"train": features(model, train), "test": features(model, test)}
        finding = probe(feats, y, fit_idx, tune_idx).predict_proba(feats["test"])
        row = {"encoder": name, "fraction": 1.0, "seed": "", "n_labelled": len(train), "n_labels_used": len(train),
               "selected_on": "val (L2 on a held-out part of the labelled training patients)",
               "finding_auc": auc_score(finding, y["test"]),
               "view_auc": auc_score(probe(feats, view, fit_idx, tune_idx).predict_proba(feats["test"]), view["test"]),
               "finding_auc_pa_only": auc_score(finding[pa], y["test"][pa]),
               "finding_scores_view_auc": auc_score(finding, view["test"])}
        rows.append(row)
        print(row, flush=True)
        for fraction in args.fractions:
            for seed in args.seeds:
                subset = label_fraction_subset(train, fraction, seed=seed)
                idx = torch.tensor([d["index"] for d in subset])
                # too few labels to hold any out: the fixed default L2 (fit_linear_probe without validation data)
                scores = fit_linear_probe(feats["train"][idx], y["train"][idx], task="binary").predict_proba(
                    feats["test"])
                row = {"encoder": name, "fraction": fraction, "seed": seed, "n_labelled": len(idx),
                       "n_labels_used": len(idx), "selected_on": "none (fixed default L2)",
                       "finding_auc": auc_score(scores, y["test"]), "view_auc": float("nan"),
                       "finding_auc_pa_only": auc_score(scores[pa], y["test"][pa]),
                       "finding_scores_view_auc": auc_score(scores, view["test"])}
                rows.append(row)
                print(row, flush=True)
    out = Path(args.out)
    write_csv(rows, out / "shortcuts.csv")
    n_other = int((y["test"] == 0).sum())
    lines = [
        "# COVID CXR: frozen features, finding vs view (held-out val + test patients)", "",
        f"command: `python experiments/covid_shortcuts.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
        f"Held-out: {len(test)} images, {n_other} other finding; AP / AP supine among COVID-19 "
        f"{float(view['test'][y['test'] == 1].float().mean()):.0%}, among other "
        f"{float(view['test'][y['test'] == 0].float().mean()):.0%}. "
        f"**View-only rule (no image): AUC {view_only:.3f} for COVID-19.**", "",
        "| encoder | labels | finding AUC | view AUC | finding AUC, PA images only | finding scores' AUC for view |",
        "|---|---|---|---|---|---|",
    ]
    for name in ["random", *args.encoders]:
        for fraction in [1.0, *args.fractions]:
            sel = [r for r in rows if r["encoder"] == name and r["fraction"] == fraction]
            cells = ["" if fraction != 1.0 and k == "view_auc" else
                     _mean_std([r[k] for r in sel]) if fraction != 1.0 else f"{sel[0][k]:.3f}"
                     for k in ("finding_auc", "view_auc", "finding_auc_pa_only", "finding_scores_view_auc")]
            lines.append(f"| {name} | {fraction:.0%} | " + " | ".join(cells) + " |")
    (out / "shortcuts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
