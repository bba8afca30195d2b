"""Shared helpers: key names, error messages, distributed utilities."""

from __future__ import annotations

from .enums import SSLKeys, view_key
from .errors import describe_error, first_informative_error

__all__ = ["SSLKeys", "view_key", "describe_error", "first_informative_error", "gather_with_grad", "get_rank",
           "get_world_size"]


def __getattr__(name: str):
    if name in ("gather_with_grad", "get_rank", "get_world_size"):
        from . import dist

        return getattr(dist, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
