"""Every ``tutorials/*.ipynb`` is committed stripped, follows the parameter-cell convention and executes end to end.

The execution test runs each notebook with ``nbclient`` in a fresh ``python3`` kernel, with ``tutorials/`` as the
working directory and ``MONAI_SSL_TUTORIAL_FAST=1`` (small sizes and step counts, < ~60 s of CPU each), so a broken
notebook fails ``make test``. The full-size run (``MONAI_SSL_TUTORIAL_FAST=0``, a few minutes each) is ``slow``.

Set ``MONAI_SSL_TUTORIAL_KEEP=<folder>`` to keep the executed notebooks (with outputs) there for a look, and
``MONAI_SSL_TUTORIAL_TIMEOUT=<seconds>`` to change the per-notebook budget (600 s) on a slow or busy machine.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
# whole notebook, FAST settings (< ~60 s on an idle 2-core box; the margin is for shared, oversubscribed CI
# machines); MONAI_SSL_TUTORIAL_TIMEOUT overrides it
FAST_TIMEOUT_S = float(os.environ.get("MONAI_SSL_TUTORIAL_TIMEOUT", "600"))
FULL_TIMEOUT_S = 1800  # whole notebook, full settings (slow test)
PARAMETER_FLAG = "MONAI_SSL_TUTORIAL_FAST"


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def kernel_env(fast: bool) -> dict[str, str]:
    """The kernel's environment: ours plus the FAST flag and one OpenMP thread; matplotlib left on the kernel's
    inline backend (an inherited ``MPLBACKEND=Agg`` would make ``plt.show()`` draw nothing)."""
    env = dict(os.environ)
    env[PARAMETER_FLAG] = "1" if fast else "0"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("MPLBACKEND", None)
    return env


def execute_notebook(path: Path, fast: bool = True, timeout_s: float = FAST_TIMEOUT_S) -> tuple[nbformat.NotebookNode,
                                                                                                  float]:
    """Run ``path`` top to bottom in a fresh ``python3`` kernel (cwd = its folder) within ``timeout_s`` in all.

    Returns:
        The executed notebook and its wall-clock seconds (kernel start included).

    Raises:
        CellExecutionError: a cell raised (the message names the cell and the traceback).
        CellTimeoutError: the notebook ran past ``timeout_s``.
    """
    nb = _read(path)
    start = time.monotonic()
    deadline = start + timeout_s

    def remaining(_cell) -> int:  # nbclient's timeout is per cell: give each cell what is left of the budget
        return max(1, int(deadline - time.monotonic()))

    client = NotebookClient(nb, kernel_name="python3", timeout_func=remaining, startup_timeout=180,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=kernel_env(fast))
    return nb, time.monotonic() - start


def image_outputs(nb: nbformat.NotebookNode) -> int:
    """How many outputs of executed code cells carry an ``image/png``."""
    return sum("image/png" in out.get("data", {}) for c in _code_cells(nb) for out in c.get("outputs", []))


def test_tutorials_found():
    assert NOTEBOOKS, f"no notebooks under {TUTORIALS}"
    for path in NOTEBOOKS:
        assert path.name[:3].rstrip("_").isdigit(), f"{path.name}: tutorials are numbered, e.g. 01_name.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_stripped(path):
    nb = _read(path)
    nbformat.validate(nb)
    for i, cell in enumerate(_code_cells(nb)):
        assert cell.get("outputs") == [], f"{path.name}: code cell {i} has outputs (strip them before committing)"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has an execution_count"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state in the notebook metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_conventions(path):
    nb = _read(path)
    code = _code_cells(nb)
    assert code, f"{path.name}: no code cells"
    assert PARAMETER_FLAG in code[0].source, f"{path.name}: the first code cell must be the parameter cell reading " \
                                             f"{PARAMETER_FLAG}"
    text = "\n".join(c.source for c in nb.cells)
    assert str(REPO) not in text, f"{path.name}: absolute path {REPO} in the notebook (locate the repo from the cwd)"
    assert any(c.cell_type == "markdown" for c in nb.cells), f"{path.name}: no markdown explanations"


def test_readme_lists_every_notebook():
    readme = (TUTORIALS / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if p.name not in readme]
    assert not missing, f"tutorials/README.md does not list {missing}"


def _run_and_check(path: Path, fast: bool, timeout_s: float, record_property) -> None:
    try:
        nb, wall = execute_notebook(path, fast=fast, timeout_s=timeout_s)
    except CellTimeoutError as err:
        pytest.fail(f"{path.name} ran past {timeout_s:.0f} s ({PARAMETER_FLAG}={int(fast)}): {err}")
    except (CellExecutionError, DeadKernelError) as err:
        pytest.fail(f"{path.name} failed ({PARAMETER_FLAG}={int(fast)}):\n{err}")
    keep = os.environ.get("MONAI_SSL_TUTORIAL_KEEP")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(keep) / path.name)
    record_property("notebook_wall_s", round(wall, 1))
    print(f"\n{path.name}: executed in {wall:.1f} s ({PARAMETER_FLAG}={int(fast)})")
    assert image_outputs(nb) >= 1, f"{path.name}: no figure (image/png output) after execution"
    errors = [out for c in _code_cells(nb) for out in c.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs: {json.dumps(errors)[:2000]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_fast(path, record_property):
    _run_and_check(path, fast=True, timeout_s=FAST_TIMEOUT_S, record_property=record_property)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_full(path, record_property):
    _run_and_check(path, fast=False, timeout_s=FULL_TIMEOUT_S, record_property=record_property)
