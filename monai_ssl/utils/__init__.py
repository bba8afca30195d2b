"""Shared helpers: key names, distributed utilities."""

from __future__ import annotations

from .enums import SSLKeys, view_key

__all__ = ["SSLKeys", "view_key"]
