"""Run a bundle from Python: ``monai.bundle.ConfigWorkflow`` over ``<bundle>/configs/<name>.yaml`` with overrides,
the same configs ``python -m monai.bundle run`` reads. Experiments and scripts pretrain through this instead of
wiring their own trainer."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["bundle_workflow", "run_bundle"]


def bundle_workflow(bundle_root: str | os.PathLike, configs: Sequence[str] = ("train",), **overrides: Any):
    """A ``ConfigWorkflow`` of the bundle at ``bundle_root``, initialised (config parsed, ``initialize`` run), not run.

    Args:
        bundle_root: the bundle folder (holds ``configs/``), e.g. ``bundles/micle_pretrain``.
        configs: config names merged in order (``("train", "curriculum")``).
        overrides: ``id=value`` pairs replacing config entries (``max_epochs=1``, ``**{"train#dataset": ds}``);
            a value may be a Python object, used as it is.

    Raises:
        FileNotFoundError: a config file does not exist (named).
    """
    from monai.bundle import ConfigWorkflow

    root = Path(bundle_root)
    files = [root / "configs" / f"{name}.yaml" for name in configs]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"bundle config(s) not found: {missing}; configs live in <bundle_root>/configs/")
    wf = ConfigWorkflow(config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
                        workflow_type="train", logging_file=False, bundle_root=str(root), **overrides)
    wf.initialize()
    return wf


def run_bundle(bundle_root: str | os.PathLike, configs: Sequence[str] = ("train",),
               before_run: Callable[[Any], None] | None = None, **overrides: Any):
    """:func:`bundle_workflow`, then ``run`` and ``finalize``; returns the workflow (read results from its parser).

    The cuDNN flags a bundle's ``set_determinism`` sets (deterministic on, benchmark off) hold for its run only:
    the caller's are restored afterwards, so code after a pretraining run computes as it did before.

    Args:
        before_run: ``fn(workflow)`` called between ``initialize`` and ``run``, e.g. to attach a progress handler
            to ``workflow.parser.get_parsed_content("train#trainer")``.
    """
    import torch

    cudnn = torch.backends.cudnn
    flags = cudnn.deterministic, cudnn.benchmark
    try:
        wf = bundle_workflow(bundle_root, configs, **overrides)
        if before_run is not None:
            before_run(wf)
        wf.run()
        wf.finalize()
    finally:
        cudnn.deterministic, cudnn.benchmark = flags
    return wf
