"""Name the input file when a preprocessing chain fails on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from monai.transforms import MapTransform, Randomizable

from ..utils.errors import describe_error, first_informative_error

__all__ = ["InputError", "ReportFileErrorsD", "ReportFileErrorsDict", "ReportFileErrorsd", "input_error"]


class ReportFileErrorsd(MapTransform):
    """Run ``transform`` on the item; if it fails, raise ``RuntimeError("<stage>: cannot <action> <file>:
    <Type>: <reason>")`` naming the file (``data[key]`` before the transform ran) and the first informative
    cause, instead of MONAI's ``applying transform <... object at 0x...>`` wrapper.

    Args:
        transform: a dictionary transform (or ``Compose``) that loads and preprocesses ``key``.
        key: the key holding the file path.
        action: what failed, for the message (``"read or preprocess"``).
        stage: the message prefix (``"inference"``).
    """

    def __init__(self, transform: Callable[[Mapping], Any], key: Hashable = "image",
                 action: str = "read or preprocess", stage: str = "inference") -> None:
        super().__init__(keys=key)
        self.transform, self.key, self.action, self.stage = transform, key, action, stage

    def set_random_state(self, seed: int | None = None, state: Any = None) -> ReportFileErrorsd:
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping) -> Any:
        source = data.get(self.key)
        try:
            return self.transform(data)
        except Exception as err:
            raise RuntimeError(f"{self.stage}: cannot {self.action} {source}: {describe_error(err)}") from err


ReportFileErrorsD = ReportFileErrorsDict = ReportFileErrorsd


class InputError(RuntimeError, ValueError):
    """A chain of transforms (a preset) could not use an input. The message is one line: the file (or the key),
    the reason and the fix; ``__cause__`` is the error that stopped the chain.

    Both a ``ValueError`` (the input is at fault) and a ``RuntimeError`` (what MONAI's ``Compose`` raises), so
    that callers catching either keep working. :func:`~monai_ssl.utils.errors.first_informative_error` looks
    through it to the cause, as it looks through MONAI's wrappers (``wraps_cause``).
    """

    wraps_cause = True


def _source_of(value: Any) -> str | None:
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    name = (getattr(value, "meta", None) or {}).get("filename_or_obj")
    return str(name) if name else None


def input_sources(data: Any, keys: Sequence[Hashable]) -> dict[Hashable, str | None]:
    """The file behind each of ``keys`` in ``data`` (a path, or a loaded image's ``filename_or_obj``), taken
    before a chain runs so that its error can name it."""
    if not isinstance(data, Mapping):
        return {}
    return {k: _source_of(data.get(k)) for k in keys}


def input_error(owner: str, err: BaseException, sources: Mapping[Hashable, str | None]) -> InputError:
    """An :class:`InputError` for ``err``, raised while the transform named ``owner`` (e.g. ``"CTPresetd"``) ran
    on an item whose files were ``sources`` (by key, from :func:`input_sources`).

    The message is ``"[<owner> cannot use ]<file> (key '<key>'): <reason>: <fix>"``: the reason is that of
    :func:`~monai_ssl.utils.errors.first_informative_error`, without the key and file its inner messages repeat;
    the fix is the one the check that refused the input gave (``.fix`` on an error of the chain, e.g.
    :class:`~monai_ssl.transforms.CheckImage`'s), else, for a missing or unreadable file, to correct the path or
    leave the file out. ``owner`` is named when the reason does not name it already."""
    cause = first_informative_error(err)
    reason = str(cause)
    key = next((k for k in sources if reason.startswith(f"key '{k}': ")), next(iter(sources), None))
    source = sources.get(key) if key is not None else None
    reason = reason.removeprefix(f"key '{key}': ")
    if source:
        reason = reason.removeprefix(f"{source}: ").replace(f" ({source})", "")
    fix, link = None, cause
    while link is not None and fix is None:
        fix, link = getattr(link, "fix", None), link.__cause__
    if fix is None:
        if isinstance(cause, FileNotFoundError):
            fix = "correct the path in the data list"
        elif isinstance(cause, ValueError) and source and source in str(cause):  # the loader's refusal
            fix = "leave the file out of the data list (or repair or re-export it)"
        if fix is not None:
            reason = f"{reason}: {fix}"
        if not isinstance(cause, (ValueError, FileNotFoundError)):
            reason = f"{type(cause).__name__}: {reason}"
    where = f"{source} (key '{key}')" if source else f"key '{key}'" if key is not None else "input"
    return InputError(f"{where}: {reason}" if owner in reason else f"{owner} cannot use {where}: {reason}")
