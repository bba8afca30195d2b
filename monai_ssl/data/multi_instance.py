"""Multi-instance contrastive sampling (MICLe, Azizi et al. 2021): one item per patient case per epoch, whose two
positive views come from two *different* images of the case when it has several."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable, apply_transform
from monai.utils import MAX_SEED

from ..utils.enums import SSLKeys, view_key
from .splits import group_by_patient

__all__ = ["MultiInstanceDataset"]


class MultiInstanceDataset(Randomizable, torch.utils.data.Dataset):
    """Bags of images grouped by patient (or study) yielding MICLe positive pairs.

    Each ``__getitem__(i)`` serves bag ``i``: if it holds ``M >= 2`` images, two different ones are drawn
    uniformly without replacement (a fresh draw every visit) and each gets its own draw of ``view_transform``;
    if ``M == 1`` the single image is augmented twice (plain SimCLR, the paper's fallback). With
    ``pair_mode="simclr"`` every bag uses one randomly chosen image for both views (the SimCLR ablation).

    The deterministic part of the pipeline (loading, modality preset, resizing) is ``cache_transform``; it runs once
    per image at construction (as MONAI's ``CacheDataset`` with ``cache_rate=1``) unless ``cache=False``, in which
    case it runs on every access.

    Items: ``{"image_view_0": (C, *spatial), "image_view_1": ..., "patient_id": str, "source_index": LongTensor(2)
    (datalist indices of the two source images), "bag_size": int}`` plus ``"label"`` when ``label_key`` is set
    (the bag's first item's label).

    Args:
        datalist: item dictionaries carrying ``image_key`` and ``patient_key``.
        view_transform: array-level random chain applied to each view (e.g. ``cxr_augmentations``).
        cache_transform: dictionary transform applied once per item before caching (or None).
        patient_key: key grouping items into bags (``patient_id``, or e.g. ``study_id``).
        image_key: key of the image.
        pair_mode: ``"micle"`` (default) or ``"simclr"``.
        cache: pre-compute ``cache_transform`` for every item at construction.
        label_key: optional key copied from the bag into the item (for monitors; never used by the loss).
        seed: seed of the pair draws and of ``view_transform``.

    Raises:
        ValueError: empty datalist, unknown ``pair_mode``, or items missing ``image_key``.
    """

    def __init__(
        self,
        datalist: Sequence[dict],
        view_transform: Callable,
        cache_transform: Callable | None = None,
        patient_key: str = SSLKeys.PATIENT_ID.value,
        image_key: str = SSLKeys.IMAGE.value,
        pair_mode: str = "micle",
        cache: bool = True,
        label_key: str | None = None,
        seed: int = 0,
    ) -> None:
        if len(datalist) == 0:
            raise ValueError("MultiInstanceDataset: the datalist is empty")
        if pair_mode not in ("micle", "simclr"):
            raise ValueError(f"pair_mode must be 'micle' or 'simclr', got '{pair_mode}'")
        missing = [i for i, item in enumerate(datalist) if image_key not in item]
        if missing:
            raise ValueError(f"MultiInstanceDataset: items {missing[:5]} have no '{image_key}' key")
        self.datalist = list(datalist)
        self.view_transform = view_transform
        self.cache_transform = cache_transform
        self.image_key, self.patient_key, self.label_key = image_key, patient_key, label_key
        self.pair_mode = pair_mode
        groups = group_by_patient(self.datalist, patient_key)
        self.patient_ids = list(groups)
        self.bags = [groups[p] for p in self.patient_ids]
        self._cache = [self._prepare(i) for i in range(len(self.datalist))] if cache else None
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        if hasattr(self.view_transform, "set_random_state"):
            self.view_transform.set_random_state(seed=int(self.R.randint(MAX_SEED)))
        return self

    def _prepare(self, index: int) -> Any:
        item = self.datalist[index]
        if self.cache_transform is not None:
            try:
                item = apply_transform(self.cache_transform, dict(item))
            except Exception as e:
                raise RuntimeError(
                    f"MultiInstanceDataset: preparing item {index} (patient {item.get(self.patient_key)!r}) failed: {e}"
                ) from e
        image = item[self.image_key]
        return image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))

    def _image(self, index: int) -> torch.Tensor:
        return self._cache[index] if self._cache is not None else self._prepare(index)

    def randomize(self, bag: Sequence[int]) -> tuple[int, int]:
        """Choose the two source indices for one visit of ``bag``."""
        if len(bag) >= 2 and self.pair_mode == "micle":
            a, b = self.R.choice(len(bag), size=2, replace=False)
            return bag[int(a)], bag[int(b)]
        pick = bag[int(self.R.randint(len(bag)))]
        return pick, pick

    def __len__(self) -> int:
        return len(self.bags)

    def __getitem__(self, index: int) -> dict[str, Any]:
        bag = self.bags[index]
        first, second = self.randomize(bag)
        out: dict[str, Any] = {}
        for v, src in enumerate((first, second)):
            out[view_key(self.image_key, v)] = apply_transform(self.view_transform, self._image(src).clone())
        out[self.patient_key] = self.patient_ids[index]
        out["source_index"] = torch.tensor([first, second], dtype=torch.long)
        out["bag_size"] = len(bag)
        if self.label_key is not None:
            out[self.label_key] = self.datalist[bag[0]].get(self.label_key)
        return out
