"""Modality intensity transforms: input checks, CT windows, DICOM VOI windows, CLAHE, grey conversion, N4.

Percentile clipping, z-score and min-max scaling are MONAI's own (``ScaleIntensityRangePercentiles``,
``NormalizeIntensity``, ``ScaleIntensity``); the presets compose them with the transforms here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import optional_import

from .dicom import _float_or_nan, decode_frame_windows

__all__ = [
    "CheckImage", "CheckImaged", "HUWindow", "HUWindowd", "DicomWindow", "DicomWindowd", "CLAHE", "CLAHEd",
    "RGBToGray", "RGBToGrayd", "N4BiasFieldCorrection", "N4BiasFieldCorrectiond", "CT_WINDOWS",
    "MIN_IMAGE_SIZE",
    "CheckImageD", "CheckImageDict", "HUWindowD", "HUWindowDict", "DicomWindowD", "DicomWindowDict", "CLAHED",
    "CLAHEDict", "RGBToGrayD", "RGBToGrayDict", "N4BiasFieldCorrectionD", "N4BiasFieldCorrectionDict",
]

#: Common CT windows as (level, width) in Hounsfield units.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "soft_tissue": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
}


#: Smallest in-plane side (px) the presets accept: a 1 x 1 (or 4 x 7) "image" is a broken file, not a picture.
MIN_IMAGE_SIZE = 8


def _source(img: Any) -> str:
    meta = getattr(img, "meta", None) or {}
    name = meta.get("filename_or_obj")
    return f" ({name})" if name else ""


def _wrap_key_errors(transform: Transform, key: Hashable, value: Any) -> Any:
    try:
        return transform(value)
    except ValueError as e:
        raise ValueError(f"key '{key}': {e}") from e


def _refusal(message: str, fix: str | None) -> ValueError:
    """A ValueError ``"<message>: <fix>"`` with the fix also kept as ``err.fix`` (the presets' summaries read it)."""
    err = ValueError(f"{message}: {fix}" if fix else message)
    err.fix = fix  # type: ignore[attr-defined]
    return err


_LEAVE_OUT = "leave this file out of the data list"


class CheckImage(Transform):
    """Validate an image before it enters a pipeline; returns it unchanged.

    Checks: it is an array/tensor, it has ``spatial_dims`` spatial dimensions after the channel (if given), no
    spatial size is 0, the two in-plane sides (the first two spatial dims; a volume may hold a single slice) are
    at least ``min_size``, and (``allow_nonfinite=False``) every value is finite. A constant image is refused
    when ``allow_constant=False`` (a blank frame normalises to NaN or to all zeros). With ``modalities``, an
    image whose metadata names a DICOM ``Modality`` outside that set is refused (an MR slice in a CT chain would
    otherwise be "windowed" in Hounsfield units without complaint); images without that tag (NIfTI, PNG) pass.

    Every refusal names the source file (when known), the reason and, where there is one, the fix.

    Args:
        spatial_dims: expected number of spatial dims (2 or 3), or None for any.
        allow_nonfinite: accept NaN/inf values.
        allow_constant: accept images whose values are all equal.
        min_size: smallest accepted in-plane side in pixels (the presets use :data:`MIN_IMAGE_SIZE`).
        modalities: accepted DICOM Modality codes (e.g. ``("CT",)``), or None for any.
        owner: the chain the check guards, for the messages (e.g. ``"MRPresetd(spatial_dims=3)"``).
        dims_hints: what to do when the image has N spatial dims instead of ``spatial_dims``, by N
            (e.g. ``{2: "pass spatial_dims=2"}``).
        modality_hints: what to do with an image of another Modality, by Modality code (e.g.
            ``{"MR": "use MRPresetd"}``); otherwise: leave the file out.

    Raises:
        ValueError: naming the source file (when known), the problem and the fix.
    """

    def __init__(self, spatial_dims: int | None = None, allow_nonfinite: bool = False, allow_constant: bool = True,
                 modalities: Sequence[str] | None = None, min_size: int = 1, owner: str | None = None,
                 dims_hints: Mapping[int, str] | None = None, modality_hints: Mapping[str, str] | None = None):
        self.spatial_dims = spatial_dims
        self.min_size = int(min_size)
        self.allow_nonfinite = allow_nonfinite
        self.allow_constant = allow_constant
        self.modalities = None if modalities is None else {m.upper() for m in modalities}
        self.owner = owner
        self.dims_hints = dict(dims_hints or {})
        self.modality_hints = {str(k).upper(): v for k, v in (modality_hints or {}).items()}

    def __call__(self, img: Any) -> Any:
        if not isinstance(img, (np.ndarray, torch.Tensor)):
            raise ValueError(f"expected an image array or tensor, got {type(img).__name__}")
        src = _source(img)
        if self.spatial_dims is not None and img.ndim != self.spatial_dims + 1:
            found = img.ndim - 1
            what = {2: "a 2D image (a single slice or frame)", 3: "a 3D image (a volume, or frames on the last axis)"}
            raise _refusal(
                f"{self.owner + ' ' if self.owner else ''}expected a channel-first {self.spatial_dims}D image with "
                f"{self.spatial_dims + 1} dims (C, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}), got shape "
                f"{tuple(img.shape)}: {what.get(found, f'{found} spatial dims')}{src}",
                self.dims_hints.get(found),
            )
        if img.ndim < 2 or any(s == 0 for s in img.shape):
            raise _refusal(f"empty image: shape {tuple(img.shape)}{src}", _LEAVE_OUT if src else None)
        if min(img.shape[1:3]) < self.min_size:
            raise _refusal(f"image of {' x '.join(map(str, img.shape[1:]))} px is smaller than the minimum of "
                           f"{self.min_size} px per side (min_size): not a usable picture, likely a broken or "
                           f"placeholder file{src}", _LEAVE_OUT if src else None)
        modality = str((getattr(img, "meta", None) or {}).get("Modality", "") or "").upper()
        if self.modalities is not None and modality and modality not in self.modalities:
            raise _refusal(f"DICOM Modality '{modality}' where this chain expects {sorted(self.modalities)}{src}",
                           self.modality_hints.get(modality, _LEAVE_OUT))
        t = torch.as_tensor(img)
        if not self.allow_nonfinite:
            bad = (~torch.isfinite(t)).sum().item() if t.is_floating_point() else 0
            if bad:
                raise _refusal(f"image has {bad} non-finite (NaN/inf) values of {t.numel()}{src}",
                               f"repair the file or {_LEAVE_OUT}" if src else None)
        if not self.allow_constant and t.numel() and bool((t == t.reshape(-1)[0]).all()):
            raise _refusal(f"image is constant (every value {t.reshape(-1)[0].item()}): a blank image, it would "
                           f"normalise to all zeros or NaN and teach nothing{src}", _LEAVE_OUT if src else None)
        return img


class HUWindow(Transform):
    """Map CT Hounsfield units through one or several windows to [0, 1], one output channel per window.

    For a window (level L, width W) the output is ``clip((x - (L - W/2)) / W, 0, 1)``. With several windows a
    one-channel input becomes a stack of channels (e.g. lung, mediastinum, bone -> 3 channels).

    Args:
        windows: a (level, width) pair, a name from :data:`CT_WINDOWS`, or a sequence of either.

    Input (1, *spatial) in HU; output (len(windows), *spatial) float32 in [0, 1].
    """

    def __init__(self, windows: str | tuple[float, float] | Sequence[str | tuple[float, float]] = "mediastinum"):
        if isinstance(windows, str) or (
            isinstance(windows, Sequence) and len(windows) == 2 and all(isinstance(v, (int, float)) for v in windows)
        ):
            windows = [windows]  # type: ignore[list-item]
        self.windows: list[tuple[float, float]] = []
        for w in windows:  # type: ignore[union-attr]
            if isinstance(w, str):
                if w not in CT_WINDOWS:
                    raise ValueError(f"unknown CT window '{w}'; known: {sorted(CT_WINDOWS)}")
                w = CT_WINDOWS[w]
            level, width = float(w[0]), float(w[1])
            if width <= 0:
                raise ValueError(f"window width must be > 0, got {width}")
            self.windows.append((level, width))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[0] != 1:
            raise ValueError(
                f"HU windowing expects a single-channel CT image, got {img.shape[0]} channels{_source(img)}")
        x = torch.as_tensor(img, dtype=torch.float32)
        out = [((x - (lvl - wid / 2)) / wid).clamp_(0.0, 1.0) for lvl, wid in self.windows]
        return torch.cat(out, dim=0)


class DicomWindow(Transform):
    """Apply the VOI window stored in a DICOM header (``meta["WindowCenter"]/["WindowWidth"]``) -> [0, 1].

    The window (centre c, width w) maps ``c - w/2 .. c + w/2`` linearly to 0 .. 1, with clipping. A multi-frame
    image (C, H, W, F) whose frames carry different windows (``meta["FrameWindows"]``, enhanced CT/MR/US) gets
    each frame's own window (a frame without one gets the fallback range below). As
    :func:`~monai_ssl.transforms.io.load_dicom` mirrors the window of a MONOCHROME1
    image when it inverts the pixels, the output is the image as the modality meant it to be displayed, with
    bright = dense.

    Images whose header has no window are min-max scaled (or, when ``fallback_percentiles`` is given, clipped to
    those percentiles first), so X-ray/CR/DX/MR images from any source end up in [0, 1].
    """

    def __init__(self, fallback_percentiles: tuple[float, float] | None = (0.5, 99.5)) -> None:
        self.fallback_percentiles = fallback_percentiles

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        meta = getattr(img, "meta", {}) or {}
        x = torch.as_tensor(img, dtype=torch.float32)
        per_frame = decode_frame_windows(meta)
        if per_frame is not None:
            if x.ndim < 2 or x.shape[-1] != len(per_frame):
                raise ValueError(
                    f"the header gives {len(per_frame)} per-frame windows but the image of shape {tuple(x.shape)} "
                    f"does not have as many frames on its last axis{_source(img)}: apply DicomWindow before any "
                    "transform that resamples or reorders the frames"
                )
            lo, width = per_frame[:, 0] - per_frame[:, 1] / 2, per_frame[:, 1]
            usable = np.isfinite(lo) & np.isfinite(width) & (width > 0)
            if not usable.all():  # frames without a window of their own get the fallback range of the image
                f_lo, f_hi = self._fallback_range(x)
                lo, width = np.where(usable, lo, f_lo), np.where(usable, width, f_hi - f_lo if f_hi > f_lo else 1.0)
            lo_t, width_t = (torch.as_tensor(v, dtype=torch.float32, device=x.device) for v in (lo, width))
            return ((x - lo_t) / width_t).clamp_(0.0, 1.0)
        # parsed as load_dicom parses the tags: absent / unreadable -> NaN, multi-valued -> the first window
        center, width = _float_or_nan(meta.get("WindowCenter")), _float_or_nan(meta.get("WindowWidth"))
        if math.isfinite(center) and math.isfinite(width) and width > 0:
            lo, hi = center - width / 2, center + width / 2
        else:
            lo, hi = self._fallback_range(x)
        scale = hi - lo if hi > lo else 1.0
        return ((x - lo) / scale).clamp_(0.0, 1.0)

    def _fallback_range(self, x: torch.Tensor) -> tuple[float, float]:
        """The (low, high) values mapped to 0 and 1 without a header window: the percentiles, or min and max."""
        if self.fallback_percentiles is not None:
            q = torch.tensor(self.fallback_percentiles, dtype=torch.float32, device=x.device) / 100.0
            lo, hi = torch.quantile(x.reshape(-1)[:: max(1, x.numel() // 1_000_000)], q).tolist()
            return lo, hi
        return x.min().item(), x.max().item()


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation (scikit-image) per channel of a 2D image in [0, 1].

    Args:
        clip_limit: normalised clip limit (scikit-image ``clip_limit``).
        kernel_size: tile size in pixels (default: 1/8 of each side).
    """

    def __init__(self, clip_limit: float = 0.01, kernel_size: int | Sequence[int] | None = None) -> None:
        self.clip_limit = clip_limit
        self.kernel_size = kernel_size

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        from skimage.exposure import equalize_adapthist

        x = torch.as_tensor(img, dtype=torch.float32)
        if x.ndim != 3:
            raise ValueError(f"CLAHE expects a (C, H, W) image, got shape {tuple(x.shape)}{_source(img)}")
        arr = x.detach().cpu().numpy().clip(0.0, 1.0)
        out = np.stack([equalize_adapthist(c, kernel_size=self.kernel_size, clip_limit=self.clip_limit) for c in arr])
        res = torch.from_numpy(out.astype(np.float32))
        return MetaTensor(res, meta=dict(img.meta)) if isinstance(img, MetaTensor) else res


class RGBToGray(Transform):
    """Convert (3, *spatial) RGB to (1, *spatial) luminance (ITU-R BT.601 weights); one channel passes through."""

    weights = (0.299, 0.587, 0.114)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[0] == 1:
            return img
        if img.shape[0] != 3:
            raise ValueError(f"RGBToGray expects 1 or 3 channels, got {img.shape[0]}{_source(img)}")
        w = torch.tensor(self.weights, dtype=torch.float32).reshape(3, *([1] * (img.ndim - 1)))
        return (torch.as_tensor(img, dtype=torch.float32) * w).sum(0, keepdim=True)


class N4BiasFieldCorrection(Transform):
    """N4 bias field correction of an MR image through ITK (``itk`` must be installed).

    Args:
        iterations: fitting iterations per level (one level per entry).

    Input/output (1, *spatial) float32; the fit uses the voxels above an Otsu threshold (the tissue).
    """

    def __init__(self, iterations: Sequence[int] = (20, 20, 10)) -> None:
        self.iterations = list(iterations)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        itk, has_itk = optional_import("itk")
        if not has_itk:
            raise RuntimeError("N4BiasFieldCorrection needs ITK: pip install itk")
        if img.shape[0] != 1:
            raise ValueError(f"N4 expects one channel, got {img.shape[0]}{_source(img)}")
        arr = torch.as_tensor(img, dtype=torch.float32)[0].cpu().numpy()
        from skimage.filters import threshold_otsu

        image = itk.image_from_array(np.ascontiguousarray(arr))
        mask = itk.image_from_array((arr > threshold_otsu(arr)).astype(np.uint8))
        mask.CopyInformation(image)
        dim = arr.ndim
        float_image, mask_image = itk.Image[itk.F, dim], itk.Image[itk.UC, dim]
        n4_type = itk.N4BiasFieldCorrectionImageFilter[float_image, mask_image, float_image]
        corrector = n4_type.New(Input=image, MaskImage=mask)
        corrector.SetNumberOfFittingLevels(len(self.iterations))
        corrector.SetMaximumNumberOfIterations(self.iterations)
        corrector.Update()
        out = torch.from_numpy(itk.array_from_image(corrector.GetOutput()).astype(np.float32))[None]
        return MetaTensor(out, meta=dict(img.meta)) if isinstance(img, MetaTensor) else out


class _ArrayToDict(MapTransform):
    """Apply an array transform to every key, re-raising ValueErrors with the key name."""

    array_class: type[Transform]

    def __init__(self, keys: KeysCollection, *args: Any, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = self.array_class(*args, **kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _wrap_key_errors(self.transform, key, d[key])
        return d


class CheckImaged(_ArrayToDict):
    """Dictionary version of :class:`CheckImage`; errors name the key."""

    array_class = CheckImage


class HUWindowd(_ArrayToDict):
    """Dictionary version of :class:`HUWindow`."""

    array_class = HUWindow


class DicomWindowd(_ArrayToDict):
    """Dictionary version of :class:`DicomWindow`."""

    array_class = DicomWindow


class CLAHEd(_ArrayToDict):
    """Dictionary version of :class:`CLAHE`."""

    array_class = CLAHE


class RGBToGrayd(_ArrayToDict):
    """Dictionary version of :class:`RGBToGray`."""

    array_class = RGBToGray


class N4BiasFieldCorrectiond(_ArrayToDict):
    """Dictionary version of :class:`N4BiasFieldCorrection`."""

    array_class = N4BiasFieldCorrection


CheckImageD = CheckImageDict = CheckImaged
HUWindowD = HUWindowDict = HUWindowd
DicomWindowD = DicomWindowDict = DicomWindowd
CLAHED = CLAHEDict = CLAHEd
RGBToGrayD = RGBToGrayDict = RGBToGrayd
N4BiasFieldCorrectionD = N4BiasFieldCorrectionDict = N4BiasFieldCorrectiond
