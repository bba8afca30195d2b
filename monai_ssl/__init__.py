"""monai-ssl: self-supervised pretraining for medical imaging, built on MONAI.

Importing the package is cheap: subpackages (``data``, ``transforms``, ``networks``, ``losses``, ``optimizers``,
``metrics``, ``engines``, ``handlers``, ``inferers``, ``evaluation``, ``apps``, ``utils``) are imported on first
attribute access, so ``import monai_ssl`` does not pull in MONAI, Ignite, ITK or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "apps", "data", "engines", "evaluation", "handlers", "inferers", "losses", "metrics", "networks", "optimizers",
    "transforms", "utils",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
