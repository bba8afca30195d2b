"""Augmentation chains for self-supervised views: SimCLR (Chen et al. 2020), its chest X-ray variant used with
MICLe (Azizi et al. 2021), and the masked-autoencoder chain. All are array-level MONAI ``Compose`` chains for
grey-scale or multi-channel images in [0, 1], 2D (C, H, W) or 3D (C, H, W, D); wrap them in
:class:`~monai_ssl.transforms.RandMultiViewd` to make independent views.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    Identity,
    MapTransform,
    OneOf,
    RandFlip,
    RandGaussianNoise,
    RandGaussianSmooth,
    Randomizable,
    RandomOrder,
    RandRotate,
    RandScaleIntensity,
    RandScaleIntensityFixedMean,
    Resize,
    ScaleIntensityRange,
    SpatialCrop,
    Transform,
)
from monai.utils import ensure_tuple_rep

__all__ = [
    "RandResizedCrop", "RandResizedCropd", "RandResizedCropD", "RandResizedCropDict",
    "simclr_augmentations", "cxr_augmentations", "mae_augmentations",
]


class RandResizedCrop(Randomizable, Transform):
    """Crop a random region of random area fraction and aspect ratio, then resize it to ``spatial_size``.

    The SimCLR/Inception crop generalised to 3D: the region covers ``U(scale)`` of the image area (volume in 3D);
    its log aspect ratio between the first spatial axis and each other axis is uniform in ``log(ratio)``. After 10
    failed draws it falls back to the largest centred crop within the ratio range.

    Args:
        spatial_size: output spatial size (int for all dims or a sequence).
        scale: range of the crop's area (volume) fraction.
        ratio: range of the crop's aspect ratio (other axis / first axis).
        mode: interpolation (``"bilinear"`` 2D, ``"trilinear"`` 3D, ``"area"``...); None picks by dims.

    Input (C, *spatial); output (C, *spatial_size), MetaTensor metadata and affine updated by MONAI's
    ``SpatialCrop`` and ``Resize``.
    """

    def __init__(
        self,
        spatial_size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        mode: str | None = None,
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.spatial_size = spatial_size
        self.scale = scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.mode = mode
        self._box: tuple[list[int], list[int]] | None = None

    def randomize(self, shape: Sequence[int]) -> None:
        dims = len(shape)
        volume = float(np.prod(shape))
        for _ in range(10):
            target = volume * self.R.uniform(*self.scale)
            aspects = [1.0] + [math.exp(self.R.uniform(*self.log_ratio)) for _ in range(dims - 1)]
            base = (target / np.prod(aspects)) ** (1.0 / dims)
            size = [int(round(base * a)) for a in aspects]
            if all(0 < s <= n for s, n in zip(size, shape)):
                start = [int(self.R.randint(0, n - s + 1)) for s, n in zip(size, shape)]
                self._box = (start, size)
                return
        side = min(shape)
        size = [side] * dims
        self._box = ([(n - side) // 2 for n in shape], size)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        spatial = img.shape[1:]
        if randomize:
            self.randomize(spatial)
        if self._box is None:
            raise RuntimeError("RandResizedCrop called with randomize=False before any randomize()")
        start, size = self._box
        crop = SpatialCrop(roi_start=start, roi_end=[s + z for s, z in zip(start, size)])(img)
        mode = self.mode or ("bilinear" if len(spatial) == 2 else "trilinear")
        out_size = ensure_tuple_rep(self.spatial_size, len(spatial))
        linear = mode in ("linear", "bilinear", "bicubic", "trilinear")
        return Resize(out_size, mode=mode, align_corners=False if linear else None)(crop)


class RandResizedCropd(Randomizable, MapTransform):
    """Dictionary version of :class:`RandResizedCrop`: one draw per call, shared by all ``keys`` (image + mask)."""

    def __init__(self, keys: KeysCollection, spatial_size: int | Sequence[int], scale=(0.08, 1.0),
                 ratio=(3 / 4, 4 / 3), mode: str | Sequence[str | None] | None = None,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        modes = ensure_tuple_rep(mode, len(self.keys))
        self.croppers = [RandResizedCrop(spatial_size, scale, ratio, m) for m in modes]

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.croppers[0].R = self.R
        self.croppers[0].randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        self.randomize(d[keys[0]].shape[1:])
        for key, cropper in zip(self.keys, self.croppers):
            if key in d:
                cropper._box = self.croppers[0]._box
                d[key] = cropper(d[key], randomize=False)
        return d


RandResizedCropD = RandResizedCropDict = RandResizedCropd


def _clip01() -> Transform:
    return ScaleIntensityRange(a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True)


def _intensity_jitter(strength: float, prob: float) -> Transform:
    """SimCLR colour distortion for grey-scale: brightness and contrast in random order, applied with ``prob``."""
    f = 0.8 * strength
    jitter = RandomOrder([
        Compose([RandScaleIntensity(factors=(-f, f), prob=1.0), _clip01()]),
        Compose([RandScaleIntensityFixedMean(factors=(-f, f), prob=1.0, fixed_mean=True), _clip01()]),
    ])
    return OneOf([jitter, Identity()], weights=[prob, 1.0 - prob])


def simclr_augmentations(
    spatial_size: int | Sequence[int] = 224,
    spatial_dims: int = 2,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    color_strength: float = 1.0,
    color_prob: float = 0.8,
    blur: bool = True,
    blur_prob: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    rotate_degrees: float = 0.0,
    flip_prob: float = 0.5,
    noise_std: float = 0.0,
    channels: int = 1,
) -> Compose:
    """SimCLR view augmentation (Chen et al. 2020) for images in [0, 1].

    Order: random resized crop (area ``crop_scale``, aspect 3/4-4/3) -> horizontal flip (last spatial axis in 2D;
    every axis in 3D) -> optional rotation -> brightness/contrast jitter of strength ``color_strength`` with
    probability ``color_prob`` (random order, clipped to [0, 1]) -> Gaussian blur (sigma in pixels, scaled to
    ``spatial_size / 224``) with ``blur_prob`` -> optional Gaussian noise. Grey-scale images skip SimCLR's
    saturation, hue and grayscale steps, which do not apply to them; with ``channels=3`` (RGB: dermatology, fundus,
    endoscopy, pathology) the jitter is SimCLR's full colour distortion instead
    (:class:`~monai_ssl.transforms.colour.RandColorJitter`: brightness, contrast and saturation ``0.8 *
    color_strength``, hue ``0.2 * color_strength``, with ``color_prob``), followed by greyscale with probability 0.2
    (:class:`~monai_ssl.transforms.colour.RandGrayscale`).

    Returns:
        an array-level ``Compose`` mapping (C, *spatial) to (C, *spatial_size).
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    size = ensure_tuple_rep(spatial_size, spatial_dims)
    chain: list[Transform] = [RandResizedCrop(size, scale=crop_scale)]
    if flip_prob > 0:
        axes = [1] if spatial_dims == 2 else [0, 1, 2]
        chain += [RandFlip(prob=flip_prob, spatial_axis=a) for a in axes]
    if rotate_degrees > 0:
        r = math.radians(rotate_degrees)
        kw = {"range_x": r} if spatial_dims == 2 else {"range_x": r, "range_y": r, "range_z": r}
        chain.append(RandRotate(prob=0.5 if spatial_dims == 3 else 1.0, padding_mode="zeros", **kw))
    if channels == 3:
        from .colour import RandColorJitter, RandGrayscale

        s = color_strength
        if s > 0 and color_prob > 0:
            chain.append(RandColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5), prob=color_prob))
        chain.append(RandGrayscale(prob=0.2))
    elif color_strength > 0 and color_prob > 0:
        chain.append(_intensity_jitter(color_strength, color_prob))
    if blur:
        s = (blur_sigma[0] * size[0] / 224, blur_sigma[1] * size[0] / 224)
        kw = {"sigma_x": s, "sigma_y": s} if spatial_dims == 2 else {"sigma_x": s, "sigma_y": s, "sigma_z": s}
        chain.append(RandGaussianSmooth(prob=blur_prob, **kw))
    if noise_std > 0:
        chain += [RandGaussianNoise(prob=0.5, std=noise_std), _clip01()]
    return Compose(chain)


def cxr_augmentations(spatial_size: int | Sequence[int] = 224,
                      crop_scale: tuple[float, float] = (0.08, 1.0)) -> Compose:
    """Chest X-ray view augmentation of Azizi et al. (2021, arXiv:2101.05224), used for SimCLR and MICLe on CXR.

    Random resized crop, horizontal flip, rotation up to 45 degrees, brightness/contrast jitter of strength 0.5,
    and no Gaussian blur (blur erases the fine texture that carries the finding).
    """
    return simclr_augmentations(
        spatial_size, spatial_dims=2, crop_scale=crop_scale, color_strength=0.5, blur=False, rotate_degrees=45.0
    )


def mae_augmentations(
    spatial_size: int | Sequence[int] = 224,
    spatial_dims: int = 2,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    flip_prob: float = 0.5,
) -> Compose:
    """Masked-autoencoder augmentation (MAE, He et al. 2022): random resized crop (0.2-1.0) and a flip."""
    size = ensure_tuple_rep(spatial_size, spatial_dims)
    chain: list[Transform] = [RandResizedCrop(size, scale=crop_scale)]
    if flip_prob > 0:
        chain.append(RandFlip(prob=flip_prob, spatial_axis=spatial_dims - 1))
    return Compose(chain)
