"""Multi-view augmentation: N independent random draws of one transform chain per sample."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, apply_transform
from monai.utils import MAX_SEED

from ..utils.enums import view_key

__all__ = ["RandMultiViewd", "RandMultiViewD", "RandMultiViewDict"]


class RandMultiViewd(Randomizable, MapTransform):
    """Write ``num_views`` independently augmented copies of each key as ``"<key>_view_<i>"``.

    MONAI dictionary transforms share one random draw across keys, which would make contrastive views identical
    in their random parameters; here the (array-level) ``transform`` chain is called once per view, so every view
    gets its own draw of every random step. Views are computed from the same source image, which is left in place
    unless ``delete_original`` is set.

    ``set_random_state`` re-seeds this transform and, through it, the wrapped chain (MONAI's ``DataLoader``
    worker initialisation calls it, so each worker gets its own stream and runs are reproducible).

    Args:
        keys: keys of the images to view (arrays/tensors (C, *spatial)).
        transform: array-level random chain (e.g. :func:`~monai_ssl.transforms.simclr_augmentations`).
        num_views: number of views per key (>= 1).
        delete_original: drop the source key after making the views.
        allow_missing_keys: skip keys absent from the data.

    Raises:
        ValueError: ``num_views < 1``; a view failing inside the chain is re-raised naming the key and view.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Callable,
        num_views: int = 2,
        delete_original: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.transform = transform
        self.num_views = num_views
        self.delete_original = delete_original

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        if hasattr(self.transform, "set_random_state"):
            self.transform.set_random_state(seed=int(self.R.randint(MAX_SEED)))
        return self

    def randomize(self, data: Any = None) -> None:  # draws happen inside the wrapped chain, once per view
        return None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            src = d[key]
            for i in range(self.num_views):
                view = src.clone() if isinstance(src, torch.Tensor) else np.array(src, copy=True)
                try:
                    d[view_key(str(key), i)] = apply_transform(self.transform, view)
                except Exception as e:
                    raise RuntimeError(f"RandMultiViewd: view {i} of key '{key}' failed: {e}") from e
            if self.delete_original:
                del d[key]
        return d


RandMultiViewD = RandMultiViewDict = RandMultiViewd
