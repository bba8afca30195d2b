"""Loading DICOM, NIfTI and PNG/JPEG images as channel-first MetaTensors with the metadata presets need."""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform, Transform

from .dicom import (
    _float_or_nan,  # noqa: F401 - re-exported for the intensity transforms
    encode_frame_windows,
    frame_rescales,
    frame_spacing,
    frame_windows,
    pixel_spacing,
)

__all__ = ["LoadMedicalImage", "LoadMedicalImaged", "LoadMedicalImageD", "LoadMedicalImageDict", "load_dicom"]

_SUPPORTED_PI = {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_RCT",
                 "YBR_ICT", "YBR_PARTIAL_420"}
_DICOM_SUFFIXES = {".dcm", ".dicom"}
_RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def load_dicom(path: str | os.PathLike, invert_monochrome1: bool = True, apply_rescale: bool = True) -> MetaTensor:
    """Read one DICOM file into a channel-first float32 MetaTensor.

    * grey images -> (1, H, W); colour (RGB, YBR_*, PALETTE COLOR) -> (3, H, W), YBR converted to RGB;
    * multi-frame images (enhanced CT/MR volumes, US cine loops) -> (C, H, W, F), the frames on the last spatial
      axis as MONAI's (C, H, W, D) expects, with ``meta["is_cine"] = True`` and ``meta["num_frames"] = F``;
    * the modality LUT is applied (CT -> Hounsfield units): RescaleSlope/RescaleIntercept per frame, from the
      frame's functional group, else the shared functional group, else the top level (or a Modality LUT table);
    * MONOCHROME1 (bright = low value, common in CR/DX) is inverted so that bright means dense, as MONOCHROME2,
      and ``meta["PhotometricInterpretation"]`` then reads ``MONOCHROME2``; the original is kept in
      ``meta["original_photometric_interpretation"]``. The VOI window is mirrored with the pixels (centre
      ``c -> max + min - c``), so that windowing the inverted image gives the display of the original.

    Metadata also carries ``Modality``, ``WindowCenter``/``WindowWidth`` (the first frame's VOI window, from the
    Frame VOI LUT functional groups or the top level; first value of a multi-valued one; NaN when absent),
    ``FrameWindows`` (the per-frame windows when frames differ, else ``""``: see
    :func:`~monai_ssl.transforms.dicom.decode_frame_windows`), ``spacing`` ((row, column[, frame]) in mm) and
    ``filename_or_obj``; the affine encodes the spacing.

    Raises:
        FileNotFoundError: missing file.
        ValueError: not a regular file (a FIFO, a device...), not DICOM, no pixel data, undecodable pixels, or an
            unsupported photometric interpretation (the message names the file and the reason).
    """
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    path = Path(path)
    if not stat.S_ISREG(_file_mode(path)):
        raise ValueError(f"{path}: not a regular file but {_kind(path)}; refusing to read it as DICOM")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception as e:  # pydicom raises many types on corrupt files
        raise ValueError(f"{path}: not a readable DICOM file ({type(e).__name__}: {str(e)[:200]})") from e
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ValueError(f"{path}: DICOM has no pixel data (Modality {ds.get('Modality', '?')})")
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if pi not in _SUPPORTED_PI:
        raise ValueError(f"{path}: unsupported photometric interpretation '{pi}' (supported: {sorted(_SUPPORTED_PI)})")
    try:
        arr = ds.pixel_array
    except Exception as e:
        raise ValueError(f"{path}: pixel data cannot be decoded ({type(e).__name__}: {str(e)[:200]})") from e
    if pi == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        pi_out = "RGB"
    elif pi.startswith("YBR") and pi != "YBR_RCT" and pi != "YBR_ICT":
        pi_out = "RGB"  # pydicom decodes YBR_FULL(_422) to RGB by default
    else:
        pi_out = "RGB" if pi.startswith("YBR") else pi
    colour = pi_out == "RGB"
    arr = np.asarray(arr)
    if arr.ndim == (3 if colour else 2):
        arr = arr[None]  # (F, H, W[, 3]), F = 1
    frames = arr.shape[0]
    windows = frame_windows(ds, frames)  # (F, 2)
    if not colour and apply_rescale:
        rescales = None if ds.get("ModalityLUTSequence") else frame_rescales(ds, frames)
        if rescales is not None:
            slopes, intercepts = rescales
            arr = arr.astype(np.float64) * slopes[:, None, None] + intercepts[:, None, None]
        else:
            arr = apply_modality_lut(arr, ds)  # a Modality LUT table, or nothing to apply
    arr = arr.astype(np.float32, copy=False)
    if pi == "MONOCHROME1" and invert_monochrome1:
        lo, hi = float(arr.min()), float(arr.max())
        arr = hi + lo - arr
        windows[:, 0] = hi + lo - windows[:, 0]  # the window moves with the values it selects
        pi_out = "MONOCHROME2"
    # (F, H, W[, 3]) -> (C, H, W[, F])
    arr = np.moveaxis(arr, -1, 0) if colour else arr[None]
    arr = np.moveaxis(arr, 1, -1) if frames > 1 else arr[:, 0]
    spacing = pixel_spacing(ds)
    if frames > 1:
        spacing.append(frame_spacing(ds, frames))
    affine = torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64))
    meta = {
        "filename_or_obj": str(path),
        "Modality": str(ds.get("Modality", "") or ""),
        "PhotometricInterpretation": pi_out,
        "original_photometric_interpretation": pi,
        # NaN, not None, when absent: a batch of files with and without a VOI window still collates
        "WindowCenter": float(windows[0, 0]),
        "WindowWidth": float(windows[0, 1]),
        "FrameWindows": encode_frame_windows(windows),
        "spacing": spacing,
        "is_cine": frames > 1,
        "num_frames": frames,
        "PatientID": str(ds.get("PatientID", "") or ""),
    }
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr)), affine=affine, meta=meta)


class LoadMedicalImage(Transform):
    """Load a DICOM, NIfTI, PNG/JPEG (or any MONAI-readable) file as a channel-first float32 MetaTensor.

    DICOM files go through :func:`load_dicom` (modality LUT per frame, MONOCHROME1 inversion, colour conversion,
    multi-frame as (C, H, W, F)); everything else through ``monai.transforms.LoadImage(ensure_channel_first=True)``,
    with PNG/JPEG read in (H, W) row order so 2D images from every source share one orientation.

    A file is DICOM by its content, whatever its name: the ``DICM`` magic at byte 128 (Siemens ``.IMA``, files
    without an extension, ...); ``.dcm``/``.dicom`` files always go to the DICOM reader. PNG/JPEG/BMP/TIFF images
    load as the picture they show, never as raw codes: palette images (``P``/``PA``) as their palette colours
    (one grey channel when every palette colour used is grey, else RGB), CMYK converted to RGB, and the alpha
    channel of RGBA/LA (and palette transparency) dropped, not composited: the colour values are kept as stored.
    Only regular files (or folders, for a DICOM series) are opened: a FIFO, socket or device is refused, naming the
    path, instead of blocking the loader.

    Args:
        invert_monochrome1: invert MONOCHROME1 DICOMs (default True).
        apply_rescale: apply DICOM RescaleSlope/RescaleIntercept (default True).
    """

    def __init__(self, invert_monochrome1: bool = True, apply_rescale: bool = True) -> None:
        self.invert_monochrome1 = invert_monochrome1
        self.apply_rescale = apply_rescale
        self._monai = LoadImage(image_only=True, ensure_channel_first=True, dtype=np.float32)
        self._monai_2d = None

    def __call__(self, filename: str | os.PathLike) -> MetaTensor:
        path = Path(filename)
        mode = _file_mode(path)
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder can be a DICOM series
            raise ValueError(f"{path}: not a regular file but {_kind(path)}; refusing to read it (it could block "
                             "forever)")
        if stat.S_ISREG(mode) and _is_dicom(path):
            return load_dicom(path, self.invert_monochrome1, self.apply_rescale)
        if path.suffix.lower() in _RASTER_SUFFIXES:
            if path.stat().st_size == 0:
                raise ValueError(f"{path}: empty file (0 bytes)")
            _verify_2d(path)
            if self._monai_2d is None:
                from monai.data import PILReader

                self._monai_2d = LoadImage(
                    reader=PILReader(converter=_pil_picture, reverse_indexing=False), image_only=True,
                    ensure_channel_first=True, dtype=np.float32,
                )
            loader = self._monai_2d
        else:
            loader = self._monai
        try:
            img = loader(str(path))
        except Exception as e:  # readers raise many types on corrupt files
            if "cannot find a suitable reader" in str(e):  # MONAI tried every reader: not "install a library"
                raise ValueError(
                    f"{path}: cannot read image (no reader could open it: the file is corrupt, cut short or not an "
                    f"image of the format its suffix '{''.join(path.suffixes)}' says)"
                ) from e
            raise ValueError(f"{path}: cannot read image ({type(e).__name__}: {str(e)[:200]})") from e
        if img.ndim == 4 and path.suffix.lower() in (".png", ".jpg", ".jpeg") and img.shape[0] == 1:
            img = img[0].movedim(-1, 0)
        return img


def _verify_2d(path: Path) -> None:
    """Fail fast, with Pillow's reason, on a PNG/JPEG/... that is not an image or is cut short.

    Without this MONAI's ``LoadImage`` falls through every registered reader (ITK, nibabel, ...) for a file Pillow
    cannot identify, takes seconds, and ends with "install the reader libraries", which misleads.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()  # PNG: chunk CRCs and the end of the stream; other formats: the header
    except UnidentifiedImageError as e:
        raise ValueError(f"{path}: cannot read image (not a {path.suffix.lstrip('.').upper()} file Pillow can "
                         "identify: wrong format or corrupt header)") from e
    except Exception as e:  # truncated or corrupt streams raise OSError/SyntaxError/struct.error ...
        raise ValueError(f"{path}: cannot read image (corrupt or truncated: {type(e).__name__}: {str(e)[:200]})") from e


def _file_mode(path: Path) -> int:
    """``os.stat(path).st_mode`` (links followed); FileNotFoundError naming the path when there is nothing."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None


def _kind(path: Path) -> str:
    from ..utils.files import file_kind

    return file_kind(_file_mode(path))


def _is_dicom(path: Path) -> bool:
    """DICOM by content: the ``DICM`` magic at byte 128, whatever the name (``.IMA``, no extension); ``.dcm`` /
    ``.dicom`` files count as DICOM too, so that a damaged one gets the DICOM reader's reason. Regular files only."""
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return True
    if not stat.S_ISREG(_file_mode(path)):
        return False
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _pil_picture(im: Any) -> Any:
    """A Pillow image in a mode whose array is the picture (the ``converter`` of MONAI's ``PILReader``).

    Palette (``P``/``PA``) -> its colours: ``L`` when every colour is grey, else ``RGB`` (the indices alone are
    arbitrary codes: a reversed palette gives correlation -1 with the picture). CMYK -> RGB. RGBA/LA (and palette
    transparency) -> RGB/L with the alpha channel dropped, the stored colours kept (not composited on a background).
    """
    from PIL import ImageChops

    src = im
    if im.mode in ("P", "PA"):
        im = im.convert("RGB")
        r, g, b = im.split()
        if ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None:
            im = r
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    elif im.mode in ("RGBA", "RGBa", "RGBX"):
        im = im.convert("RGB")
    elif im.mode in ("LA", "La"):
        im = im.convert("LA").getchannel("L")  # La (premultiplied) -> LA first
    if im is not src:
        im.format = src.format  # MONAI's metadata keeps the file's format
    return im


class LoadMedicalImaged(MapTransform):
    """Dictionary version of :class:`LoadMedicalImage`: replaces each path under ``keys`` by the image."""

    def __init__(
        self,
        keys: KeysCollection,
        invert_monochrome1: bool = True,
        apply_rescale: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadMedicalImage(invert_monochrome1, apply_rescale)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = self.loader(d[key])
            except (ValueError, FileNotFoundError) as e:
                raise type(e)(f"key '{key}': {e}") from e
        return d


LoadMedicalImageD = LoadMedicalImageDict = LoadMedicalImaged
