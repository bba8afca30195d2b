"""DICOM attributes per frame, wherever the file keeps them: rescale, VOI window, pixel and frame spacing.

A classic image keeps ``RescaleSlope``/``RescaleIntercept``, ``WindowCenter``/``WindowWidth`` and ``PixelSpacing``
at the top level of the dataset. Enhanced multi-frame objects (Enhanced CT/MR/US Volume, ...) keep them in
functional groups (DICOM PS3.3 C.7.6.16): an item of ``PerFrameFunctionalGroupsSequence`` per frame, which overrides
the single item of ``SharedFunctionalGroupsSequence`` that applies to every frame. The macros read here are the
Pixel Value Transformation (rescale), Frame VOI LUT (window), Pixel Measures (spacing) and Plane Position /
Orientation (frame spacing) ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["decode_frame_windows", "encode_frame_windows", "frame_item", "frame_rescales", "frame_spacing",
           "frame_windows", "pixel_spacing"]


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) == 0:
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _float_or_nan(value: Any) -> float:
    """A DICOM numeric tag value as a float (the first of a multi-valued one); NaN when absent or unreadable."""
    v = _float_or_none(value)
    return float("nan") if v is None else v


def frame_item(ds: Any, index: int, sequence: str, attrs: Sequence[str]) -> Any | None:
    """The dataset that holds ``attrs`` for frame ``index``: the first item of ``sequence`` in that frame's
    per-frame functional group, else in the shared functional group, else ``ds`` itself (a classic image); None
    when none has them all."""
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(sequence)
        if items and all(a in items[0] for a in attrs):
            return items[0]
    return ds if all(a in ds for a in attrs) else None


def frame_rescales(ds: Any, frames: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-frame ``(slopes, intercepts)``, each of shape (frames,), or None when no frame has a rescale.

    A frame without one keeps slope 1, intercept 0.
    """
    slopes, intercepts, found = np.ones(frames), np.zeros(frames), False
    for i in range(frames):
        item = frame_item(ds, i, "PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept"))
        if item is None:
            continue
        slope, intercept = _float_or_none(item.RescaleSlope), _float_or_none(item.RescaleIntercept)
        if slope is None or intercept is None:
            continue
        slopes[i], intercepts[i], found = slope, intercept, True
    return (slopes, intercepts) if found else None


def frame_windows(ds: Any, frames: int) -> np.ndarray:
    """Per-frame VOI windows as a (frames, 2) array of (centre, width); NaN where a frame has none. Of a
    multi-valued window (several alternative views) the first is taken, as pydicom's ``apply_voi_lut`` does."""
    out = np.full((frames, 2), np.nan)
    for i in range(frames):
        item = frame_item(ds, i, "FrameVOILUTSequence", ("WindowCenter", "WindowWidth"))
        if item is not None:
            out[i] = _float_or_nan(item.WindowCenter), _float_or_nan(item.WindowWidth)
    return out


def pixel_spacing(ds: Any) -> list[float]:
    """(row spacing, column spacing) in mm: Pixel Measures (functional groups or top level), else
    ``ImagerPixelSpacing`` (projection radiography), else (1, 1)."""
    item = frame_item(ds, 0, "PixelMeasuresSequence", ("PixelSpacing",))
    for value in (item.PixelSpacing if item is not None else None, ds.get("ImagerPixelSpacing")):
        values = list(value) if value is not None and not isinstance(value, (str, bytes)) else []
        spacing = [_float_or_none(v) for v in values[:2]]
        if len(spacing) == 2 and all(s is not None and s > 0 for s in spacing):
            return spacing  # type: ignore[return-value]
    return [1.0, 1.0]


def frame_spacing(ds: Any, frames: int) -> float:
    """Distance between consecutive frames in mm: the median step of the frames' ``ImagePositionPatient``
    along the slice normal (``ImageOrientationPatient``), else ``SpacingBetweenSlices``, else ``SliceThickness``,
    else 1 (a cine loop: frames are time points, not positions)."""
    positions = []
    for i in range(frames):
        item = frame_item(ds, i, "PlanePositionSequence", ("ImagePositionPatient",))
        if item is None or item is ds:  # a top-level position is one slice's, not each frame's
            break
        pos = [_float_or_none(v) for v in item.ImagePositionPatient]
        if len(pos) != 3 or None in pos:
            break
        positions.append(pos)
    if frames > 1 and len(positions) == frames:
        steps = np.diff(np.asarray(positions, dtype=np.float64), axis=0)
        item = frame_item(ds, 0, "PlaneOrientationSequence", ("ImageOrientationPatient",))
        cosines = [_float_or_none(v) for v in item.ImageOrientationPatient] if item is not None else []
        if len(cosines) == 6 and None not in cosines:
            normal = np.cross(np.asarray(cosines[:3]), np.asarray(cosines[3:]))
            step = float(np.median(np.abs(steps @ normal)))
        else:
            step = float(np.median(np.linalg.norm(steps, axis=1)))
        if step > 0:
            return step
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        item = frame_item(ds, 0, "PixelMeasuresSequence", (name,))
        value = _float_or_none(item.get(name)) if item is not None else None
        if value is not None and value > 0:
            return value
    return 1.0


def encode_frame_windows(windows: np.ndarray) -> str:
    """Per-frame windows as metadata: ``"c0/w0\\\\c1/w1\\\\..."`` (a string, so that images with different frame
    counts still collate into a batch); ``""`` when every frame has the same window (or none)."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    if len(windows) < 2 or np.array_equal(windows, np.broadcast_to(windows[:1], windows.shape), equal_nan=True):
        return ""
    return "\\".join(f"{c!r}/{w!r}" for c, w in windows.tolist())


def decode_frame_windows(meta: Mapping | None) -> np.ndarray | None:
    """The (frames, 2) per-frame windows stored by :func:`encode_frame_windows` in ``meta["FrameWindows"]``, or
    None when the image has one window for all frames."""
    text = (meta or {}).get("FrameWindows") or ""
    if not isinstance(text, str) or not text:
        return None
    return np.asarray([[float(v) for v in pair.split("/")] for pair in text.split("\\")], dtype=np.float64)
