"""Frozen-feature diagnosis for the label-efficiency runs: linear probe and kNN on the encoders' pooled features.

Fine-tuning mixes two things: how good the pretrained features are, and how far the labelled subset can move the
whole network. This script holds the encoder fixed and asks only the first question, on the same label fractions
and seeds as ``experiments/label_efficiency.py`` (nested, label-stratified subsets of the training split, whole
patients, :func:`~monai_ssl.data.label_fraction_subset`) and its test split (``--dataset pneumoniamnist`` or
``covid``):

* ``random``: the MONAI ResNet-18 (or, with ``--arch vit``, the small ViT) at its seeded random initialisation
  (the fine-tuning "scratch" start);
* every ``<name>_encoder.pt`` given with ``--encoder NAME=PATH`` (e.g. the SimCLR encoders the label-efficiency
  runs cached; with ``--arch vit`` the MAE encoders).

Features: the ResNet's 512-d pooled output before ``fc``; for the ViT the mean of the patch tokens after the final
norm (the MAE has no class token, so the classifier's class token is untrained in every encoder here).

Per fraction and seed: an L2-regularised logistic-regression probe (:func:`~monai_ssl.evaluation.fit_linear_probe`,
L2 chosen on the same label fraction of the validation split, class-balanced) and cosine kNN
(:func:`~monai_ssl.metrics.knn_predict`, k = 20), scored by
test AUC. Writes ``<out>/probe.csv`` and ``<out>/probe.md``.

Run (a couple of CPU-minutes)::

    python experiments/probe_encoders.py --encoder simclr=results/label_efficiency/simclr_encoder.pt \\
        --out results/label_efficiency
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import features, load_encoder, load_splits, make_classifier  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="pneumoniamnist", choices=("pneumoniamnist", "covid"),
                   help="as experiments/label_efficiency.py (COVID: 64 px, patient-level split --split-seed)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--arch", default="resnet18", choices=("resnet18", "vit"), help="as experiments/label_efficiency.py")
    p.add_argument("--encoder", action="append", default=[], metavar="NAME=PATH", help="cached encoder state dict")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--k", type=int, default=20, help="kNN neighbours")
    p.add_argument("--stem-stride", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="results/label_efficiency")
    args = p.parse_args(argv)
    encoders = {}
    for spec in args.encoder:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file():
            p.error(f"--encoder {spec!r}: expected NAME=PATH to an existing file")
        encoders[name] = Path(path)
    args.encoders = encoders
    # load_splits reads these (the runner's defaults: shipped data, native size, scored on the test split)
    args.data_root, args.size, args.test_split = None, 28 if args.dataset == "pneumoniamnist" else 64, "test"
    return args


def write_csv(rows: list[dict], path: Path) -> None:
    """Write ``rows`` (dicts with the keys of the first) to ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from monai_ssl.data import label_fraction_subset
    from monai_ssl.evaluation import fit_linear_probe
    from monai_ssl.metrics.classification import auc_score
    from monai_ssl.metrics.knn import knn_predict

    splits = load_splits(args)
    for split in ("train", "val", "test"):
        for i, d in enumerate(splits[split]):
            d["index"] = i
    labels = {k: torch.tensor([d["label"] for d in splits[k]]) for k in ("train", "val", "test")}
    rows = []
    names = ["random", *args.encoders]
    for name in names:
        model = make_classifier(0, args.stem_stride, args.arch, args.size)
        if name != "random":
            load_encoder(model, args.encoders[name], args.arch)
        feats = {k: features(model, splits[k]) for k in ("train", "val", "test")}
        for fraction in args.fractions:
            for seed in args.seeds:
                subset = label_fraction_subset(splits["train"], fraction, seed=seed)  # whole patients (COVID)
                idx = torch.tensor([d["index"] for d in subset])
                # the L2 is chosen on the same fraction of the validation labels (counted in n_labels_used)
                vidx = torch.tensor([d["index"] for d in label_fraction_subset(splits["val"], fraction, seed=seed)])
                xtr, ytr = feats["train"][idx], labels["train"][idx]
                probe = fit_linear_probe(xtr, ytr, feats["val"][vidx], labels["val"][vidx], task="binary",
                                         class_balanced=True)
                lin = auc_score(probe.predict_proba(feats["test"]), labels["test"])
                knn = knn_predict(torch.nn.functional.normalize(xtr, dim=1), ytr,
                                  torch.nn.functional.normalize(feats["test"], dim=1), 2, k=args.k)
                row = {"encoder": name, "fraction": fraction, "seed": seed, "n_labelled": len(idx),
                       "n_val_labelled": len(vidx), "n_labels_used": len(idx) + len(vidx), "selected_on": "val",
                       "l2": probe.l2, "linear_probe_auc": lin, "knn_auc": auc_score(knn[:, 1], labels["test"])}
                rows.append(row)
                print(row, flush=True)
    out = Path(args.out)
    write_csv(rows, out / "probe.csv")
    what = ("PneumoniaMNIST" if args.dataset == "pneumoniamnist"
            else f"COVID CXR {args.size} px (split seed {args.split_seed})")
    net = "ResNet-18" if args.arch == "resnet18" else "ViT"
    lines = [f"# Frozen {net} features on {what} (test AUC, mean ± std over seeds)", "",
             f"command: `python experiments/probe_encoders.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             "| encoder | label fraction | n labelled | linear probe | kNN (k=%d) |" % args.k, "|---|---|---|---|---|"]
    for name in names:
        for fraction in args.fractions:
            sel = [r for r in rows if r["encoder"] == name and r["fraction"] == fraction]
            cells = []
            for key in ("linear_probe_auc", "knn_auc"):
                v = [r[key] for r in sel]
                cells.append(f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}")
            lines.append(f"| {name} | {fraction:g} | {sel[0]['n_labelled']} | {cells[0]} | {cells[1]} |")
    (out / "probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
