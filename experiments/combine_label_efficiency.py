"""Merge several label-efficiency runs on one test split into one table and one plot.

Each ``experiments/label_efficiency.py`` run writes ``<dir>/results.csv`` with an ``init`` column (``scratch``,
``simclr``, ``micle``...). Runs that vary a pretraining setting (crop scale, steps) reuse those init names, so this
script renames each run's inits with a tag before merging: ``--run "crops 60-100 %=results/x"`` turns ``micle``
into ``micle (crops 60-100 %)``; an empty tag keeps the names. It refuses runs scored on different test sets
(different ``n_test`` in their summaries' first lines would be a silent apples-to-oranges merge).

Writes ``<out>/summary.md`` (the :func:`~monai_ssl.apps.label_efficiency.summarise_results` table of the
merged rows) and ``<out>/label_efficiency.png``::

    python experiments/combine_label_efficiency.py --run "=results/label_efficiency_covid" \\
        --run "crops 60-100 %=runs/label_efficiency_covid_crop" --out runs/label_efficiency_covid_levers
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="TAG=DIR",
                   help="a label-efficiency output folder and the tag appended to its init names")
    p.add_argument("--metrics", nargs="+", default=["test_auc", "test_balanced_accuracy"])
    p.add_argument("--title", default=None, help="first line of summary.md (default: the first run's)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    runs = []
    for spec in args.run:
        tag, sep, folder = spec.rpartition("=")
        if not sep or not (Path(folder) / "results.csv").is_file():
            p.error(f"--run {spec!r}: expected TAG=DIR with DIR/results.csv")
        runs.append((tag.strip(), Path(folder)))
    args.runs = runs
    return args


def _test_set(folder: Path) -> str:
    """The test-set description of a run: the parenthesis of its summary's title line ('' when absent)."""
    summary = folder / "summary.md"
    title = summary.read_text().splitlines()[0] if summary.is_file() else ""
    return title[title.rfind("("):] if "(" in title else ""


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    from monai_ssl.apps.label_efficiency import plot_results, read_results, summarise_results

    test_sets = {folder: _test_set(folder) for _, folder in args.runs}
    if len(set(test_sets.values())) > 1:
        detail = "; ".join(f"{f}: {t or '?'}" for f, t in test_sets.items())
        raise SystemExit(f"runs were scored on different test sets, not merging: {detail}")
    rows = []
    for tag, folder in args.runs:
        for row in read_results(folder / "results.csv"):
            rows.append({**row, "init": f"{row['init']} ({tag})" if tag else row["init"]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    first = args.runs[0][1] / "summary.md"
    title = args.title or (first.read_text().splitlines()[0] if first.is_file() else "# Label efficiency")
    command = shlex.join(sys.argv[1:] if argv is None else argv)
    sources = [f"- `{folder}`" + (f": inits tagged ({tag})" if tag else "") for tag, folder in args.runs]
    table = summarise_results(rows, args.metrics)
    (out / "summary.md").write_text("\n".join([title, "", f"command: `python experiments/combine_label_efficiency.py "
                                               f"{command}`", "", *sources, "", table, ""]))
    plot_results(rows, out / "label_efficiency.png", title="test AUC, mean ± std over seeds")
    print(table)
    return rows


if __name__ == "__main__":
    main()
