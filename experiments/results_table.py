"""README tables from committed label-efficiency runs: test AUC mean ± std per init and label fraction.

Reads ``<dir>/results.csv`` files written by ``experiments/label_efficiency.py`` (every row chosen on validation:
``selected_on``, ``n_labels_used``, ``status``) and prints one Markdown table: a row per init, a column per label
fraction holding ``mean ± std`` of the test AUC over the successful seeds, the labels used (train + val) and, where
runs failed, how many. Refuses rows that were not selected on validation.

    python experiments/results_table.py results/label_efficiency results/label_efficiency_vit
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai_ssl.apps.label_efficiency import read_results  # noqa: E402

PRETTY = {"scratch": "scratch", "simclr": "SimCLR", "micle": "MICLe", "mae": "MAE"}


def cell(rows: list[dict], metric: str = "test_auc") -> str:
    ok = [float(r[metric]) for r in rows if str(r.get("status", "ok")) == "ok"]
    failed = len(rows) - len(ok)
    if not ok:
        return f"failed ({failed} of {len(rows)} runs)"
    sd = f" ± {statistics.stdev(ok):.3f}" if len(ok) > 1 else ""
    return f"{statistics.mean(ok):.3f}{sd}" + (f" ({failed} of {len(rows)} failed)" if failed else "")


def table(folders: list[Path], metric: str = "test_auc", label: str | None = None) -> str:
    """One Markdown table over the runs in ``folders`` (inits tagged with the folder when names repeat)."""
    runs: list[tuple[str, dict]] = []
    for folder in folders:
        rows = read_results(folder / "results.csv")
        if not rows:
            raise SystemExit(f"{folder}/results.csv: no rows")
        bad = [r for r in rows if r.get("selected_on") != "val"]
        if bad:
            raise SystemExit(f"{folder}/results.csv: {len(bad)} rows not selected on validation (selected_on != val)")
        runs += [(folder.name, r) for r in rows]
    fractions = sorted({float(r["fraction"]) for _, r in runs})
    names = list(dict.fromkeys((f, r["init"]) for f, r in runs))
    repeated = Counter(init for _, init in names)
    used = {fr: sorted({int(r["n_labels_used"]) for _, r in runs if float(r["fraction"]) == fr}) for fr in fractions}
    head = [label or "init"] + [f"{fr:.0%} labels ({'/'.join(map(str, used[fr]))} used)" for fr in fractions]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for folder, init in names:
        name = PRETTY.get(init, init) + (f" ({folder})" if repeated[init] > 1 else "")
        cells = [cell([r for f, r in runs if f == folder and r["init"] == init and float(r["fraction"]) == fr], metric)
                 for fr in fractions]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    recipes = Counter((PRETTY.get(r["init"], r["init"]), f"{float(r['fraction']):.0%}", r["recipe"]) for _, r in runs)
    chosen = "; ".join(f"{i} {fr}: " + ", ".join(f"{rc} x{n}" for (i2, f2, rc), n in recipes.items()
                                                     if (i2, f2) == (i, fr))
                       for i, fr in dict.fromkeys((i, fr) for i, fr, _ in recipes))
    return "\n".join(lines) + f"\n\nRecipes chosen on validation: {chosen}."


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--metric", default="test_auc")
    args = p.parse_args(argv)
    out = table(args.folders, args.metric)
    print(out)
    return out


if __name__ == "__main__":
    main()
