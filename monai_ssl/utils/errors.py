"""Error-message helpers: name the real reason behind MONAI's transform wrappers."""

from __future__ import annotations

__all__ = ["first_informative_error", "describe_error"]


def first_informative_error(exc: BaseException) -> BaseException:
    """The first exception in ``exc``'s cause chain that is not MONAI's bare ``"applying transform <object>"``
    wrapper (``monai.transforms.apply_transform`` re-raises every failure under that message) nor another wrapper
    that says so (``wraps_cause = True``, e.g. a preset's one-line summary); ``exc`` itself when the whole chain is
    wrappers."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if not str(exc).startswith("applying transform") and not getattr(exc, "wraps_cause", False):
            return exc
        exc = exc.__cause__ or exc.__context__
    return seen[0]


def describe_error(exc: BaseException) -> str:
    """``"<Type>: <message>"`` of :func:`first_informative_error` (e.g. ``"ValueError: a.dcm: DICOM has no pixel
    data (Modality CT)"``), for messages that wrap a failure with the file or key it concerns."""
    cause = first_informative_error(exc)
    return f"{type(cause).__name__}: {cause}"
