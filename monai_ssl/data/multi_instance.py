"""Multi-instance contrastive sampling (MICLe, Azizi et al. 2021): one item per patient case per epoch, whose two
positive views come from two *different* images of the case when it has several."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable, apply_transform
from monai.utils import MAX_SEED

from ..utils.enums import SSLKeys, view_key
from ..utils.errors import describe_error
from .datalist import SkippedFile
from .splits import group_by_patient

__all__ = ["MultiInstanceDataset"]

logger = logging.getLogger(__name__)


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
        on_error: what a failing ``cache_transform`` (unreadable or corrupt file) does at construction:
            ``"raise"`` (default) stops with an error naming the item, its patient and the file; ``"skip"`` (needs
            ``cache=True``) leaves the image out of its bag, drops patients left with no readable image, warns, and
            records every failure in :attr:`skipped` (``SkippedFile(path, reason)``) and the dropped patients in
            :attr:`dropped_patients`.

    Raises:
        ValueError: empty datalist, unknown ``pair_mode``/``on_error``, ``on_error="skip"`` without ``cache``,
            items missing ``image_key``, or (``"skip"``) no readable image at all.
        RuntimeError: (``on_error="raise"``) an item cannot be prepared; the message names the item, patient and
            the cause.
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
        on_error: str = "raise",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got '{on_error}'")
        if on_error == "skip" and not cache:
            raise ValueError("on_error='skip' needs cache=True (unreadable files are found while caching)")
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
        self.skipped: list[SkippedFile] = []
        self.dropped_patients: list[str] = []
        groups = group_by_patient(self.datalist, patient_key)
        self._cache = [self._try_prepare(i, on_error) for i in range(len(self.datalist))] if cache else None
        if self.skipped:
            groups = self._drop_unreadable(groups)
        self.patient_ids = list(groups)
        self.bags = [groups[p] for p in self.patient_ids]
        self.set_random_state(seed)

    def _try_prepare(self, index: int, on_error: str) -> Any:
        if on_error == "raise":
            return self._prepare(index)
        try:
            return self._prepare(index)
        except Exception as e:
            source = self.datalist[index].get(self.image_key)
            path = source if isinstance(source, str) else f"item {index}"
            patient = self.datalist[index].get(self.patient_key)
            self.skipped.append(SkippedFile(str(path), f"item {index} (patient {patient!r}): {str(e)[:400]}"))
            return None

    def _drop_unreadable(self, groups: dict[str, list[int]]) -> dict[str, list[int]]:
        """Remove failed items from their bags and bags left empty; warn with the counts and the first files."""
        kept = {p: [i for i in idx if self._cache[i] is not None] for p, idx in groups.items()}
        self.dropped_patients = [p for p, idx in kept.items() if not idx]
        kept = {p: idx for p, idx in kept.items() if idx}
        shown = "; ".join(map(str, self.skipped[:3])) + (" ..." if len(self.skipped) > 3 else "")
        message = (f"MultiInstanceDataset: skipped {len(self.skipped)} unreadable image(s) of {len(self.datalist)}; "
                   f"{len(self.dropped_patients)} patient(s) left without a readable image and dropped "
                   f"{self.dropped_patients[:10]}: {shown}")
        if not kept:
            raise ValueError(message.replace("skipped", "no readable image: all", 1))
        warnings.warn(message, stacklevel=3)
        for s in self.skipped:
            logger.warning("skipped %s", s)
        return kept

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
                    f"MultiInstanceDataset: preparing item {index} (patient {item.get(self.patient_key)!r}) failed: "
                    f"{describe_error(e)}"
                ) from e
        image = item[self.image_key]
        if isinstance(image, (str, bytes)) or type(image).__name__.endswith("Path"):
            raise RuntimeError(
                f"MultiInstanceDataset: item {index} (patient {item.get(self.patient_key)!r}): '{self.image_key}' is "
                f"still a file path ({image!s}); pass a cache_transform that loads it (e.g. LoadMedicalImaged)"
            )
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
