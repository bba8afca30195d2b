"""Colour images (dermatology, fundus, endoscopy, pathology, colour Doppler): a 3-channel RGB form and SimCLR's
colour distortion (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
appendix A: colour jitter of brightness, contrast and saturation 0.8 s and hue 0.2 s in random order with
probability 0.8, then greyscale with probability 0.2)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils.type_conversion import convert_to_dst_type

__all__ = ["ToRGB", "ToRGBd", "ToRGBD", "ToRGBDict", "RandColorJitter", "RandGrayscale", "rgb_to_hsv", "hsv_to_rgb"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _luma(img: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).reshape(3, *([1] * (img.ndim - 1)))
    return (img * w).sum(0, keepdim=True)


class ToRGB(Transform):
    """(C, *spatial) to (3, *spatial): grey (1 channel) repeated, RGBA's alpha dropped, RGB passed through.

    Raises:
        ValueError: another number of channels (naming it).
    """

    def __call__(self, img: Any) -> Any:
        c = img.shape[0]
        if c == 3:
            return img
        if c == 1:
            return img.repeat(3, *([1] * (img.ndim - 1))) if isinstance(img, torch.Tensor) else img.repeat(3, 0)
        if c == 4:
            return img[:3]
        raise ValueError(f"ToRGB expects 1 (grey), 3 (RGB) or 4 (RGBA) channels first, got shape {tuple(img.shape)}; "
                         f"is the image channel-last?")


class ToRGBd(MapTransform):
    """Dictionary version of :class:`ToRGB`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ToRGB()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


ToRGBD = ToRGBDict = ToRGBd


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """(3, *spatial) RGB in [0, 1] to HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = img[0], img[1], img[2]
    vmax, vmin = img.max(0).values, img.min(0).values
    delta = vmax - vmin
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(vmax == r, ((g - b) / safe) % 6, torch.where(vmax == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    sat = torch.where(vmax > 0, delta / torch.where(vmax > 0, vmax, torch.ones_like(vmax)), torch.zeros_like(vmax))
    return torch.stack([hue, sat, vmax])


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = img[0] % 1.0, img[1], img[2]
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6])  # one phase per R, G, B
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


class RandColorJitter(Randomizable, Transform):
    """SimCLR's colour jitter of an RGB image in [0, 1], applied with probability ``prob``: brightness (x U[1-b,
    1+b]), contrast (blend with the mean luminance, factor U[1-c, 1+c]), saturation (blend with the luminance image,
    U[1-s, 1+s]) and hue (rotation by U[-h, h] of the circle), in a random order, each clipped to [0, 1].

    Args:
        brightness, contrast, saturation, hue: jitter strengths (SimCLR: 0.8 s, 0.8 s, 0.8 s, 0.2 s; ``hue`` <= 0.5).
        prob: probability of jittering.

    Input/output (3, *spatial) (tensor or array, type kept). Raises ValueError on another channel count.
    """

    def __init__(self, brightness: float = 0.8, contrast: float = 0.8, saturation: float = 0.8, hue: float = 0.2,
                 prob: float = 0.8) -> None:
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.strengths = (float(brightness), float(contrast), float(saturation), float(hue))
        self.prob = float(prob)
        self._do, self._order, self._factors = False, [0, 1, 2, 3], [1.0, 1.0, 1.0, 0.0]

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob
        if not self._do:
            return
        self._order = list(self.R.permutation(4))
        b, c, s, h = self.strengths
        self._factors = [self.R.uniform(max(0.0, 1 - b), 1 + b), self.R.uniform(max(0.0, 1 - c), 1 + c),
                         self.R.uniform(max(0.0, 1 - s), 1 + s), self.R.uniform(-h, h)]

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if img.shape[0] != 3:
            raise ValueError(f"RandColorJitter expects an RGB image (3, *spatial), got shape {tuple(img.shape)}")
        if randomize:
            self.randomize()
        if not self._do:
            return img
        x = torch.as_tensor(img, dtype=torch.float32)
        for op in self._order:
            f = self._factors[op]
            if op == 0:
                x = x * f
            elif op == 1:
                x = f * x + (1 - f) * _luma(x).mean()
            elif op == 2:
                x = f * x + (1 - f) * _luma(x)
            elif f != 0.0:
                hsv = rgb_to_hsv(x.clamp(0, 1))
                hsv[0] = hsv[0] + f
                x = hsv_to_rgb(hsv)
            x = x.clamp(0.0, 1.0)
        return convert_to_dst_type(x, img, dtype=torch.float32)[0]


class RandGrayscale(Randomizable, Transform):
    """With probability ``prob``, replace an RGB image by its luminance repeated on the 3 channels (SimCLR: 0.2).

    Input/output (3, *spatial), type kept."""

    def __init__(self, prob: float = 0.2) -> None:
        self.prob = float(prob)
        self._do = False

    def randomize(self, data: Any = None) -> None:
        self._do = self.R.rand() < self.prob

    def __call__(self, img: Any, randomize: bool = True) -> Any:
        if img.shape[0] != 3:
            raise ValueError(f"RandGrayscale expects an RGB image (3, *spatial), got shape {tuple(img.shape)}")
        if randomize:
            self.randomize()
        if not self._do:
            return img
        x = torch.as_tensor(img, dtype=torch.float32)
        return convert_to_dst_type(_luma(x).repeat(3, *([1] * (x.ndim - 1))), img, dtype=torch.float32)[0]
