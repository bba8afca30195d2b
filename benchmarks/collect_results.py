"""Assemble ``benchmarks/RESULTS.md`` from the tables each benchmark wrote to ``benchmarks/results/``."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

HEADER = """# Benchmark results

Every table is written by the script named above it, which times ours and the reference implementation in the
same process run (median of >= 5 repeats after a warm-up) and reports the ratio. CPU figures come from the
project's 2-core machines; they are shared, so compare ratios, not absolute times, across tables. Re-run a
script and then `python benchmarks/collect_results.py` to refresh this file.
"""


def main() -> None:
    parts = [HEADER]
    for path in sorted((HERE / "results").glob("*.md")):
        script = path.stem.split("_gpu")[0].split("_cpu")[0]
        parts.append(f"\n## `{path.name}` (from `benchmarks/{script}.py`)\n\n{path.read_text().strip()}\n")
    (HERE / "RESULTS.md").write_text("".join(parts))
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
