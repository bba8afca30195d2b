"""One inferer for a 2D or 3D segmentation network on 2D images and 3D volumes alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer, SliceInferer, SlidingWindowInferer

__all__ = ["SliceOrWindowInferer"]


class SliceOrWindowInferer(Inferer):
    """MONAI ``SlidingWindowInferer`` with ``roi_size``, except for a 2D network (``spatial_dims=2``) given a 3D
    volume ``(B, C, H, W, D)``: MONAI ``SliceInferer`` then runs the 2D sliding window on every axial slice
    (``spatial_dim=2``, the last axis after RAS reorientation).

    Args:
        roi_size: the network's window, an int or one size per network dimension.
        spatial_dims: the network's dimensionality, 2 or 3.
        sw_batch_size, overlap: as ``SlidingWindowInferer``.
    """

    def __init__(self, roi_size: int | Sequence[int], spatial_dims: int = 3, sw_batch_size: int = 4,
                 overlap: float = 0.25) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        roi = (int(roi_size),) * self.spatial_dims if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
        self.window = SlidingWindowInferer(roi_size=roi, sw_batch_size=sw_batch_size, overlap=overlap)
        self.slices = SliceInferer(roi_size=roi, sw_batch_size=sw_batch_size, spatial_dim=2, overlap=overlap)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        inferer = self.slices if self.spatial_dims == 2 and inputs.ndim == 5 else self.window
        return inferer(inputs, network, *args, **kwargs)
