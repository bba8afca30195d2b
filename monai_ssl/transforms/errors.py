"""Name the input file when a preprocessing chain fails on it, or mark the item failed and go on."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from monai.transforms import MapTransform, Randomizable

from ..utils.errors import describe_error, first_informative_error
from .domain import OutOfDomainError

__all__ = ["InputError", "ReportFileErrorsD", "ReportFileErrorsDict", "ReportFileErrorsd", "file_status", "input_error"]


def file_status(err: BaseException, source: Any = None) -> str:
    """The one-line ``status`` of an input that failed: ``"out_of_domain: <what>"`` for an
    :class:`~monai_ssl.transforms.domain.OutOfDomainError` anywhere in the cause chain (``"BodyPartExamined LEG,
    model trained on CHEST"``), else ``"error: <Type>: <reason>"`` (a corrupt, unreadable or unsupported file).
    The file's path ``source`` (kept as its name where a reader's message repeats it) and the ``key '<k>': ``
    prefix of the loaders are left out (a report has the file in its own column)."""
    seen: list[BaseException] = []
    exc: BaseException | None = err
    status = None
    while exc is not None and exc not in seen:
        if isinstance(exc, OutOfDomainError):
            status = f"out_of_domain: {exc}"
            break
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    status = status or f"error: {describe_error(err)}"
    if source is not None:  # the path is in its own column; a reader's message that repeats it keeps the name
        status = status.replace(f"{source}: ", "").replace(str(source), os.path.basename(str(source)))
    return " ".join(re.sub(r"key '[^']*': ", "", status).split())


class ReportFileErrorsd(MapTransform):
    """Run ``transform`` on the item; if it fails, either raise an error naming the file, or (``on_error="mark"``)
    return the item marked as failed so that a run over many files goes on.

    ``on_error="raise"``: ``RuntimeError("<stage>: cannot <action> <file>: <Type>: <reason>")`` naming the file
    (``data[key]`` before the transform ran) and the first informative cause, instead of MONAI's
    ``applying transform <... object at 0x...>`` wrapper.

    ``on_error="mark"``: every item gets ``data[status_key]`` (``"ok"``, or the reason from :func:`file_status`:
    ``"out_of_domain: ..."`` / ``"error: ..."``) and ``data[ok_key]`` (bool). A failed item is the input dict
    updated with copies of ``fill``, which must hold a value for every key a successful item carries (at least
    ``key``: a placeholder of the preprocessed shape, e.g. ``torch.zeros(1, 128, 128)``), so that a batch mixing
    good and failed items still collates. The placeholder is never a prediction: pass ``ok_key`` to the inferer
    (:class:`~monai_ssl.inferers.SkipFailedInferer`), which skips failed rows.

    Args:
        transform: a dictionary transform (or ``Compose``) that loads and preprocesses ``key``.
        key: the key holding the file path.
        action: what failed, for the message (``"read or preprocess"``).
        stage: the message prefix (``"inference"``).
        on_error: ``"raise"`` or ``"mark"``.
        fill: values of a failed item (``"mark"`` only).
        status_key: key of the status string (``"mark"`` only).
        ok_key: key of the success flag (``"mark"`` only).

    Raises:
        ValueError: ``on_error`` is not ``"raise"``/``"mark"``, or ``"mark"`` without a ``fill`` value for ``key``.
    """

    def __init__(self, transform: Callable[[Mapping], Any], key: Hashable = "image",
                 action: str = "read or preprocess", stage: str = "inference", on_error: str = "raise",
                 fill: Mapping[Hashable, Any] | None = None, status_key: str = "status", ok_key: str = "ok") -> None:
        super().__init__(keys=key)
        if on_error not in ("raise", "mark"):
            raise ValueError(f"on_error: '{on_error}' is not 'raise' (stop at the first bad file) or 'mark'")
        if on_error == "mark" and key not in (fill or {}):
            raise ValueError(f"on_error='mark' needs fill['{key}'], a placeholder of the preprocessed shape")
        self.transform, self.key, self.action, self.stage = transform, key, action, stage
        self.on_error, self.fill, self.status_key, self.ok_key = on_error, dict(fill or {}), status_key, ok_key

    def set_random_state(self, seed: int | None = None, state: Any = None) -> ReportFileErrorsd:
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping) -> Any:
        source = data.get(self.key)
        try:
            out = self.transform(data)
        except Exception as err:
            if self.on_error == "raise":
                raise RuntimeError(f"{self.stage}: cannot {self.action} {source}: {describe_error(err)}") from err
            failed = dict(data)
            failed.update(copy.deepcopy(self.fill))
            failed.update({self.status_key: file_status(err, source), self.ok_key: False})
            return failed
        if self.on_error == "mark":
            out = dict(out)
            out.update({self.status_key: "ok", self.ok_key: True})
        return out


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
