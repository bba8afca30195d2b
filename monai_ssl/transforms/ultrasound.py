"""Ultrasound transforms: cine frame selection and cropping to the scan sector (fan)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Transform

from .dicom import decode_frame_windows
from .intensity import _ArrayToDict, _source, _wrap_key_errors

__all__ = [
    "CineFrame", "CineFramed", "RandCineFrame", "RandCineFramed", "USFanCrop", "USFanCropd",
    "CineFrameD", "CineFrameDict", "RandCineFrameD", "RandCineFrameDict", "USFanCropD", "USFanCropDict",
]


def _take_frame(img: torch.Tensor, index: int) -> torch.Tensor:
    """(C, H, W, F) -> (C, H, W) at frame ``index``; a (C, H, W) image passes through. The frame's own VOI window
    (``meta["FrameWindows"]``) becomes the image's ``WindowCenter``/``WindowWidth``."""
    meta = getattr(img, "meta", {}) or {}
    if not meta.get("is_cine", img.ndim == 4):
        return img
    if img.ndim != 4:
        raise ValueError(f"cine image should be (C, H, W, F), got shape {tuple(img.shape)}{_source(img)}")
    n = img.shape[-1]
    if not -n <= index < n:
        raise ValueError(f"frame {index} out of range for a cine of {n} frames{_source(img)}")
    out = img[..., index]
    if isinstance(out, MetaTensor):
        new_meta = {**meta, "is_cine": False, "frame_index": index % n, "FrameWindows": ""}
        windows = decode_frame_windows(meta)
        if windows is not None and len(windows) == n:
            new_meta["WindowCenter"], new_meta["WindowWidth"] = (float(v) for v in windows[index])
        out.meta = new_meta
        affine = torch.as_tensor(getattr(img, "affine", torch.eye(4)), dtype=torch.float64)
        keep = [0, 1, 3] if affine.shape == (4, 4) else [0, 1, 2]
        out.affine = affine[keep][:, keep]  # the in-plane spacing stays
    return out
class CineFrame(Transform):
    """Select one frame of an ultrasound cine loop: ``"middle"``, ``"first"``, ``"last"`` or an index.

    Input (C, H, W, F) (as loaded by :class:`~monai_ssl.transforms.LoadMedicalImage` with ``meta["is_cine"]``,
    the frames on the last axis); output (C, H, W). Single-frame images pass through unchanged.
    """

    def __init__(self, frame: str | int = "middle") -> None:
        if isinstance(frame, str) and frame not in ("middle", "first", "last"):
            raise ValueError(f"frame must be 'middle', 'first', 'last' or an int, got '{frame}'")
        self.frame = frame

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4:
            return img
        n = img.shape[-1]
        index = {"middle": n // 2, "first": 0, "last": n - 1}.get(self.frame, self.frame)  # type: ignore[arg-type]
        return _take_frame(img, int(index))


class RandCineFrame(Randomizable, Transform):
    """Pick a uniformly random frame of a cine loop each call (a natural augmentation for US pretraining)."""

    def __init__(self) -> None:
        self._index = 0

    def randomize(self, num_frames: int) -> None:
        self._index = int(self.R.randint(num_frames))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if img.ndim != 4:
            return img
        if randomize:
            self.randomize(img.shape[-1])
        return _take_frame(img, self._index)


class USFanCrop(Transform):
    """Crop an ultrasound image to its scan sector and blank burnt-in text and overlays outside it.

    The sector is the largest 8-connected region of pixels brighter than ``threshold`` (of the image maximum)
    in any channel/frame, after a morphological opening that detaches thin text and calipers. Pixels outside the
    region are set to 0 and the image is cropped to the region's bounding box (plus ``margin`` pixels).

    Input (C, H, W) or a cine (C, H, W, F); output the same layout, cropped in H and W.
    """

    def __init__(self, threshold: float = 0.02, opening_radius: int = 3, margin: int = 0) -> None:
        self.threshold = threshold
        self.opening_radius = opening_radius
        self.margin = margin

    def sector_mask(self, img: torch.Tensor) -> np.ndarray:
        """Boolean (H, W) mask of the scan sector (of a cine: of every frame together)."""
        from scipy.ndimage import binary_opening
        from skimage.measure import label
        from skimage.morphology import disk

        x = torch.as_tensor(img, dtype=torch.float32)
        if x.ndim == 4:  # (C, H, W, F): the brightest of every channel and frame
            x = x.movedim(-1, 1)
        flat = x.reshape(-1, *x.shape[-2:]).amax(0).cpu().numpy()
        peak = float(flat.max())
        if peak <= 0:
            raise ValueError(f"ultrasound image is blank (max {peak}){_source(img)}")
        fg = flat > self.threshold * peak
        if self.opening_radius > 0:
            fg = binary_opening(fg, structure=disk(self.opening_radius))
        labels = label(fg, connectivity=2)
        if labels.max() == 0:
            raise ValueError(f"no scan sector found above threshold {self.threshold}{_source(img)}")
        largest = np.argmax(np.bincount(labels.reshape(-1))[1:]) + 1
        return labels == largest

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        mask = self.sector_mask(img)
        rows, cols = np.nonzero(mask)
        h, w = mask.shape
        r0, r1 = max(rows.min() - self.margin, 0), min(rows.max() + 1 + self.margin, h)
        c0, c1 = max(cols.min() - self.margin, 0), min(cols.max() + 1 + self.margin, w)
        keep = torch.from_numpy(mask[r0:r1, c0:c1]).to(img.device)
        if img.ndim == 4:  # (C, H, W, F)
            return img[:, r0:r1, c0:c1] * keep[..., None]
        return img[..., r0:r1, c0:c1] * keep


class CineFramed(_ArrayToDict):
    """Dictionary version of :class:`CineFrame`."""

    array_class = CineFrame


class USFanCropd(_ArrayToDict):
    """Dictionary version of :class:`USFanCrop`."""

    array_class = USFanCrop


class RandCineFramed(Randomizable, MapTransform):
    """Dictionary version of :class:`RandCineFrame`; every key gets the same frame index (they share a loop)."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.picker = RandCineFrame()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.picker.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.picker.randomize(int(data))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = next(iter(self.key_iterator(d)), None)
        if first is None or d[first].ndim != 4:
            return d
        self.randomize(d[first].shape[-1])
        for key in self.key_iterator(d):
            d[key] = _wrap_key_errors(lambda x: self.picker(x, randomize=False), key, d[key])
        return d


CineFrameD = CineFrameDict = CineFramed
RandCineFrameD = RandCineFrameDict = RandCineFramed
USFanCropD = USFanCropDict = USFanCropd
