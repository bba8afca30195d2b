"""Modality presets: load a file (DICOM, NIfTI, PNG/JPEG) and return a normalised channel-first tensor.

Each preset is a dictionary ``Compose`` that can be used alone or as the deterministic head of a longer chain
(e.g. followed by :class:`~monai_ssl.transforms.RandMultiViewd`). All outputs are float32 MetaTensors in [0, 1]
(CT: one channel per window), resized to ``spatial_size`` when it is given (aspect ratio kept, then padded).
Every preset first refuses, naming the file, a blank (constant) image and a 2D one under
:data:`~monai_ssl.transforms.intensity.MIN_IMAGE_SIZE` px per side. A preset that cannot use an input raises one
:class:`~monai_ssl.transforms.errors.InputError` whose message names the file (and key), the reason and the fix
(e.g. ``a.dcm (key 'image'): MRPresetd(spatial_dims=3) expected a channel-first 3D image with 4 dims (C, H, W, D),
got shape (1, 64, 64): a 2D image (a single slice or frame): pass spatial_dims=2``), chained to the error that
stopped the chain; inside another ``Compose``, MONAI's wrapper names the preset and its main settings.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial
from typing import Any

from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    MedianSmoothd,
    NormalizeIntensityd,
    RepeatChanneld,
    Resized,
    ScaleIntensityd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    SpatialPadd,
)
from monai.utils import ensure_tuple, ensure_tuple_rep

from .errors import input_error, input_sources
from .intensity import MIN_IMAGE_SIZE, CheckImaged, CLAHEd, DicomWindowd, HUWindowd, N4BiasFieldCorrectiond, RGBToGrayd
from .io import LoadMedicalImaged
from .ultrasound import CineFramed, RandCineFramed, USFanCropd

__all__ = ["PRESET_MODALITIES", "CTPresetd", "ColorPresetd", "MRPresetd", "USPresetd", "XRayPresetd"]

# DICOM Modality codes each preset accepts (files without the tag, e.g. NIfTI/PNG, always pass)
PRESET_MODALITIES = {
    "ct": ("CT",),
    "mr": ("MR",),
    "xray": ("CR", "DX", "RG", "DR", "RF", "PX", "OT"),
    "us": ("US", "IVUS", "OT"),
    # external-camera (dermatology), endoscopy, ophthalmic photography, microscopy, colour Doppler ultrasound
    "colour": ("XC", "ES", "OP", "SM", "GM", "US", "OT"),
}


_PRESET_NAMES = {"ct": "CTPresetd", "mr": "MRPresetd", "xray": "XRayPresetd", "us": "USPresetd",
                 "colour": "ColorPresetd"}


def _refuse(spatial_dims: int) -> dict:
    """Every preset refuses blank (constant) images, and 2D ones under MIN_IMAGE_SIZE px per side, naming the file
    (a volume may be thin, or coarse after resampling to a training spacing: its sides are not checked)."""
    return {"allow_constant": False, "min_size": MIN_IMAGE_SIZE if spatial_dims == 2 else 1}


def _check(keys: KeysCollection, preset: str, spatial_dims: int, dims_hints: dict[int, str]) -> CheckImaged:
    """The input check heading preset ``preset`` (a key of PRESET_MODALITIES): its refusals name the preset
    and say what to do (the ``spatial_dims`` to pass, the preset for another modality)."""
    name = _PRESET_NAMES[preset]
    hints: dict[str, str] = {}  # first preset listing a code names it (US: USPresetd, not ColorPresetd)
    for other, codes in PRESET_MODALITIES.items():
        for m in codes:
            if other != preset:
                hints.setdefault(
                    m, f"use {_PRESET_NAMES[other]} for {m} images, or leave this file out of the data list")
    owner = f"{name}(spatial_dims={spatial_dims})" if preset in ("ct", "mr") else name
    return CheckImaged(keys, spatial_dims=spatial_dims, modalities=PRESET_MODALITIES[preset], owner=owner,
                       dims_hints=dims_hints, modality_hints=hints, **_refuse(spatial_dims))


def _dims_hints(spatial_dims: int) -> dict[int, str]:
    other = 5 - spatial_dims  # 2 <-> 3
    return {other: f"pass spatial_dims={other}"}


_FRAME_HINT = {3: "it takes 2D images; select a frame first (CineFramed) and pass load=False"}


class _Preset(Compose):
    """A preset's ``Compose``: a failure on an item becomes one :class:`~monai_ssl.transforms.errors.InputError`
    naming the file, the reason and the fix (not MONAI's ``applying transform <... object at 0x...>``)."""

    def __init__(self, chain: list, keys: KeysCollection, **settings: Any) -> None:
        super().__init__(chain)
        self._preset_keys: tuple[Hashable, ...] = ensure_tuple(keys)
        self._settings = {"keys": keys, **settings}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._settings.items())})"

    def __call__(self, input_: Any, start: int = 0, end: int | None = None, threading: bool = False,
                 lazy: bool | None = None) -> Any:
        sources = input_sources(input_, self._preset_keys)
        try:
            return super().__call__(input_, start=start, end=end, threading=threading, lazy=lazy)
        except Exception as err:
            raise input_error(type(self).__name__, err, sources) from err


def _resize_pad(keys: KeysCollection, spatial_size: int | Sequence[int] | None, spatial_dims: int) -> list:
    if spatial_size is None:
        return []
    size = ensure_tuple_rep(spatial_size, spatial_dims)
    return [
        Resized(keys, spatial_size=max(size), size_mode="longest", mode="area"),
        SpatialPadd(keys, spatial_size=size),
        Resized(keys, spatial_size=size, mode="area"),  # no-op unless the padded size still differs
    ]


class CTPresetd(_Preset):
    """CT: file -> Hounsfield units -> optional body crop -> window(s) -> [0, 1] (one channel per window).

    Args:
        keys: keys holding file paths (or already loaded HU images when ``load=False``).
        windows: (level, width) pair(s) or names from ``CT_WINDOWS`` (e.g. ``["lung", "mediastinum", "bone"]``).
        crop_body: crop to the bounding box of voxels above ``body_threshold`` HU (drops air around the patient).
        spatial_size: output size, or None to keep the native size.
        spatial_dims: 2 for slices, 3 for volumes (NIfTI, and multi-frame DICOM such as Enhanced CT, frames on
            the last axis); an input with the other number of dims is refused with the value to pass.
        load: start with :class:`LoadMedicalImaged` (DICOM rescale slope/intercept, per frame, gives HU).
    """

    def __init__(self, keys: KeysCollection = "image", windows=("mediastinum",), crop_body: bool = True,
                 body_threshold: float = -500.0, spatial_size=None, spatial_dims: int = 2, load: bool = True):
        chain = [LoadMedicalImaged(keys)] if load else []
        chain.append(_check(keys, "ct", spatial_dims, _dims_hints(spatial_dims)))
        if crop_body:
            chain.append(CropForegroundd(keys, source_key=_first(keys),
                                         select_fn=partial(_above, threshold=body_threshold), allow_smaller=True))
        chain += [HUWindowd(keys, windows=windows), *_resize_pad(keys, spatial_size, spatial_dims),
                  EnsureTyped(keys, track_meta=True)]
        super().__init__(chain, keys, windows=windows, spatial_dims=spatial_dims, spatial_size=spatial_size)


class MRPresetd(_Preset):
    """MR: file -> optional N4 bias correction (ITK) -> percentile clip (0.5-99.5) -> [0, 1] or z-score.

    Args:
        keys: keys holding file paths.
        lower, upper: percentiles (of all voxels) mapped to 0 and 1, with clipping.
        zscore: after clipping, z-score the voxels (only the non-zero ones when ``nonzero``) instead of keeping
            [0, 1].
        n4: apply N4 bias field correction first (needs ``itk``).
        spatial_size: output size, or None to keep the native size.
        spatial_dims: 3 (default) for volumes (NIfTI, multi-frame DICOM such as Enhanced MR, frames on the last
            axis), 2 for single slices (a classic MR DICOM); an input with the other number of dims is refused
            with the value to pass.
        load: start with :class:`LoadMedicalImaged`.
    """

    def __init__(self, keys: KeysCollection = "image", lower: float = 0.5, upper: float = 99.5,
                 zscore: bool = False, nonzero: bool = True, n4: bool = False, spatial_size=None,
                 spatial_dims: int = 3, load: bool = True):
        chain = [LoadMedicalImaged(keys)] if load else []
        chain.append(_check(keys, "mr", spatial_dims, _dims_hints(spatial_dims)))
        if n4:
            chain.append(N4BiasFieldCorrectiond(keys))
        chain.append(ScaleIntensityRangePercentilesd(keys, lower=lower, upper=upper, b_min=0.0, b_max=1.0,
                                                     clip=True, relative=False))
        if zscore:
            chain.append(NormalizeIntensityd(keys, nonzero=nonzero))
        chain += [*_resize_pad(keys, spatial_size, spatial_dims), EnsureTyped(keys, track_meta=True)]
        super().__init__(chain, keys, spatial_dims=spatial_dims, spatial_size=spatial_size)


class XRayPresetd(_Preset):
    """X-ray / CR / DX: file -> MONOCHROME1 inverted (at load) -> grey -> VOI window from the header, else
    percentile clip -> optional CLAHE -> aspect-preserving resize and pad.

    Args:
        keys: keys holding file paths.
        percentiles: clip range used when the header has no window (PNG/JPEG, or DICOM without VOI).
        use_header_window: use DICOM WindowCenter/WindowWidth when present.
        clahe: apply CLAHE after windowing.
        num_channels: replicate grey to this many channels (3 for ImageNet-style backbones).
    """

    def __init__(self, keys: KeysCollection = "image", percentiles=(0.5, 99.5), use_header_window: bool = True,
                 clahe: bool = False, spatial_size=224, num_channels: int = 1, load: bool = True):
        chain = [LoadMedicalImaged(keys)] if load else []
        chain += [_check(keys, "xray", 2, _FRAME_HINT), RGBToGrayd(keys)]
        if use_header_window:
            chain.append(DicomWindowd(keys, fallback_percentiles=percentiles))
        else:
            chain.append(ScaleIntensityRangePercentilesd(keys, lower=percentiles[0], upper=percentiles[1],
                                                         b_min=0.0, b_max=1.0, clip=True))
        if clahe:
            chain.append(CLAHEd(keys))
        chain += _resize_pad(keys, spatial_size, 2)
        if num_channels > 1:
            chain.append(RepeatChanneld(keys, repeats=num_channels))
        chain.append(EnsureTyped(keys, track_meta=True))
        super().__init__(chain, keys, spatial_size=spatial_size, num_channels=num_channels)


class USPresetd(_Preset):
    """Ultrasound: file -> one cine frame (middle, or random when ``random_frame``) -> grey -> crop to the scan
    sector (burnt-in text outside it blanked) -> optional light speckle smoothing (median filter of radius
    ``despeckle_radius``) -> min-max to [0, 1] -> resize and pad.

    ``num_channels=3`` keeps colour (colour Doppler): RGB instead of grey (a grey frame is copied to 3 channels),
    and the min-max is taken over all channels together, so the colour ratios are kept.
    """

    def __init__(self, keys: KeysCollection = "image", frame: str | int = "middle", random_frame: bool = False,
                 fan_crop: bool = True, despeckle_radius: int = 0, spatial_size=224, load: bool = True,
                 num_channels: int = 1):
        from .colour import ToRGBd

        if num_channels not in (1, 3):
            raise ValueError(f"USPresetd: num_channels must be 1 (grey) or 3 (colour Doppler), got {num_channels}")
        chain = [LoadMedicalImaged(keys)] if load else []
        chain.append(RandCineFramed(keys) if random_frame else CineFramed(keys, frame=frame))
        chain += [_check(keys, "us", 2, {}), RGBToGrayd(keys) if num_channels == 1 else ToRGBd(keys)]
        if fan_crop:
            chain.append(USFanCropd(keys))
        if despeckle_radius > 0:
            chain.append(MedianSmoothd(keys, radius=despeckle_radius))
        chain += [ScaleIntensityd(keys, minv=0.0, maxv=1.0), *_resize_pad(keys, spatial_size, 2),
                  EnsureTyped(keys, track_meta=True)]
        super().__init__(chain, keys, frame=frame, spatial_size=spatial_size, num_channels=num_channels)


class ColorPresetd(_Preset):
    """Colour photographs (dermatology, fundus, endoscopy, pathology, colour Doppler): file -> RGB (grey repeated,
    alpha dropped) -> [0, 1] -> aspect-preserving resize and pad. Colour is kept: no per-image window, no grey.

    Args:
        keys: keys holding file paths (or, with ``load=False``, (C, H, W) images already in [0, 1]).
        spatial_size: output size, or None to keep the native size.
        max_value: the code of full intensity of loaded files (255 for 8-bit RGB), mapped to 1.
        load: start with :class:`LoadMedicalImaged`.
    """

    def __init__(self, keys: KeysCollection = "image", spatial_size=224, max_value: float = 255.0, load: bool = True):
        from .colour import ToRGBd

        chain = [LoadMedicalImaged(keys)] if load else []
        chain += [_check(keys, "colour", 2, {}), ToRGBd(keys)]
        if load:
            chain.append(ScaleIntensityRanged(keys, a_min=0.0, a_max=max_value, b_min=0.0, b_max=1.0, clip=True))
        chain += [*_resize_pad(keys, spatial_size, 2), EnsureTyped(keys, track_meta=True)]
        super().__init__(chain, keys, spatial_size=spatial_size, max_value=max_value)


def _above(x, threshold: float):
    return x > threshold


def _first(keys: KeysCollection) -> str:
    return keys if isinstance(keys, str) else list(keys)[0]
