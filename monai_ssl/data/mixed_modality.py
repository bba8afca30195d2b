"""Mixed-modality pretraining data (VIS-MAE pools CT, MR, PET, X-ray and ultrasound images).

:class:`MixedModalityDataset` concatenates several source datasets, applies each source's own preprocessing
(its modality preset, e.g. :class:`~monai_ssl.transforms.XRayPresetd`) and then an optional shared transform,
and tags every item with its modality. :class:`MixedModalitySampler` draws indices so that modality ``m`` is
seen with probability ``p_m``: ``"proportional"`` (natural sizes, VIS-MAE's pooled folder), ``"balanced"``
(equal shares), a float ``alpha`` (``p_m ∝ n_m ** alpha``, between the two) or explicit per-modality weights.
Within a modality, items are drawn uniformly. Both are deterministic given a seed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import apply_transform
from torch.utils.data import Dataset, WeightedRandomSampler

__all__ = ["MixedModalityDataset", "MixedModalitySampler", "modality_probabilities"]

Weighting = str | float | Mapping[str, float]
_BAD_WEIGHTING = "weighting must be 'proportional', 'balanced', a float alpha or a mapping, got {!r}."


def modality_probabilities(sizes: Mapping[str, int], weighting: Weighting = "proportional") -> dict[str, float]:
    """Sampling probability ``p_m`` of each modality.

    Args:
        sizes: ``{modality: number of items n_m}`` (all > 0).
        weighting: ``"proportional"`` (``p_m ∝ n_m``), ``"balanced"`` (``p_m = 1/M``), a number ``alpha``
            (``p_m ∝ n_m ** alpha``: 1 = proportional, 0 = balanced, 0.5 = square-root smoothing), or a mapping
            ``{modality: weight >= 0}`` with one entry per modality (normalised to sum to one).

    Returns:
        ``{modality: p_m}`` in the order of ``sizes``, summing to one.

    Raises:
        ValueError: unknown weighting, empty or non-positive sizes, missing/unknown/negative explicit weights.
    """
    if not sizes:
        raise ValueError("sizes is empty: at least one modality is needed.")
    for name, n in sizes.items():
        if int(n) <= 0:
            raise ValueError(f"modality {name!r} has {n} items; every source must be non-empty.")
    if isinstance(weighting, Mapping):
        missing, unknown = set(sizes) - set(weighting), set(weighting) - set(sizes)
        if missing or unknown:
            raise ValueError(
                f"explicit weights must name every modality once: missing {sorted(missing)}, unknown {sorted(unknown)}."
            )
        raw = {m: float(weighting[m]) for m in sizes}
    elif isinstance(weighting, str):
        if weighting == "proportional":
            raw = {m: float(n) for m, n in sizes.items()}
        elif weighting == "balanced":
            raw = {m: 1.0 for m in sizes}
        else:
            raise ValueError(_BAD_WEIGHTING.format(weighting))
    elif isinstance(weighting, (int, float)) and not isinstance(weighting, bool):
        raw = {m: float(n) ** float(weighting) for m, n in sizes.items()}
    else:
        raise ValueError(_BAD_WEIGHTING.format(weighting))
    if any(w < 0 or w != w for w in raw.values()):
        raise ValueError(f"modality weights must be >= 0, got {raw}.")
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"modality weights sum to {total}; at least one must be positive.")
    return {m: w / total for m, w in raw.items()}


class MixedModalityDataset(Dataset):
    """ConcatDataset-like pool of per-modality sources, each with its own preprocessing.

    Args:
        sources: ``{modality: dataset or sequence}``; items are dicts (copied shallowly, never mutated) or
            arrays/tensors (wrapped as ``{image_key: item}``).
        transforms: ``{modality: transform}`` applied first (the modality preset); modalities without an
            entry are passed through.
        transform: optional transform applied to every item after its modality transform (e.g. the MAE
            augmentation chain); outputs must have a common shape to be batched.
        image_key: key for non-dict items.
        modality_key: key that receives the modality name (a string, batched by the default collate as a list).

    Example::

        ds = MixedModalityDataset(
            {"xray": MedMNISTDataset(root, "pneumoniamnist", "train"),
             "us": MedMNISTDataset(root, "breastmnist", "train")},
            transforms={"xray": XRayPresetd(load=False, spatial_size=64), "us": USPresetd(load=False, spatial_size=64)},
        )
        loader = DataLoader(ds, batch_size=32, sampler=MixedModalitySampler(ds, "balanced", seed=0))
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence | Dataset],
        transforms: Mapping[str, Callable] | None = None,
        transform: Callable | None = None,
        image_key: str = "image",
        modality_key: str = "modality",
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ValueError("sources must be a non-empty mapping {modality: dataset}.")
        transforms = dict(transforms or {})
        unknown = set(transforms) - set(sources)
        if unknown:
            raise ValueError(f"transforms given for unknown modalities {sorted(unknown)}; sources: {list(sources)}.")
        self.modalities: list[str] = [str(m) for m in sources]
        self.sources = dict(sources)
        self.sizes: dict[str, int] = {}
        for name, src in self.sources.items():
            try:
                n = len(src)
            except TypeError as err:
                raise TypeError(f"source {name!r} ({type(src).__name__}) has no length.") from err
            if n == 0:
                raise ValueError(f"source {name!r} is empty.")
            self.sizes[name] = n
        self.transforms = transforms
        self.transform = transform
        self.image_key, self.modality_key = image_key, modality_key
        self.cumulative_sizes: list[int] = []
        total = 0
        for name in self.modalities:
            total += self.sizes[name]
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def locate(self, index: int) -> tuple[str, int]:
        """Global index -> ``(modality, index inside that source)``; negative indices count from the end."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a MixedModalityDataset of {n} items.")
        index = index % n
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.modalities[k], index - start

    def modality_range(self, modality: str) -> range:
        """Global indices of ``modality``'s items."""
        if modality not in self.sizes:
            raise KeyError(f"unknown modality {modality!r}; known: {self.modalities}.")
        k = self.modalities.index(modality)
        start = self.cumulative_sizes[k - 1] if k else 0
        return range(start, self.cumulative_sizes[k])

    def __getitem__(self, index: int) -> Any:
        modality, local = self.locate(int(index))
        item = self.sources[modality][local]
        item = dict(item) if isinstance(item, Mapping) else {self.image_key: item}
        item[self.modality_key] = modality
        if modality in self.transforms:
            item = apply_transform(self.transforms[modality], item)
        if self.transform is not None:
            item = apply_transform(self.transform, item)
        return item

    def set_random_state(self, seed: int) -> MixedModalityDataset:
        """Seed every randomisable transform (``set_random_state``) deterministically: source ``i`` gets
        ``seed + i``, the shared transform ``seed + M``."""
        chains = [self.transforms.get(m) for m in self.modalities] + [self.transform]
        for i, t in enumerate(chains):
            if t is not None and hasattr(t, "set_random_state"):
                t.set_random_state(seed=int(seed) + i)
        return self


class MixedModalitySampler(WeightedRandomSampler):
    """Weighted sampler giving modality ``m`` probability ``p_m`` (see :func:`modality_probabilities`).

    Each item of modality ``m`` gets weight ``p_m / n_m``, and indices are drawn with
    ``torch.multinomial`` from a private ``torch.Generator`` (no global RNG). Call :meth:`set_epoch` at the
    start of each epoch for a draw that depends only on ``(seed, epoch)`` (exact resumption); without it,
    successive epochs continue the generator's stream. Without replacement, shares only approximate ``p_m``.

    Args:
        data: a :class:`MixedModalityDataset` or a ``{modality: size}`` mapping in the dataset's order.
        weighting: ``"proportional"``, ``"balanced"``, a float ``alpha`` or ``{modality: weight}``.
        num_samples: indices per epoch (default: the dataset length).
        replacement: draw with replacement (the default; needed when one modality is over-sampled).
        seed: generator seed.
    """

    def __init__(
        self,
        data: MixedModalityDataset | Mapping[str, int],
        weighting: Weighting = "proportional",
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(data, MixedModalityDataset):
            sizes = dict(data.sizes)
        else:
            sizes = {str(k): int(v) for k, v in data.items()}
        self.probabilities = modality_probabilities(sizes, weighting)
        self.sizes, self.weighting, self.seed, self.epoch = sizes, weighting, int(seed), 0
        weights = torch.cat(
            [torch.full((n,), self.probabilities[m] / n, dtype=torch.float64) for m, n in sizes.items()]
        )
        total = int(weights.numel())
        num_samples = total if num_samples is None else int(num_samples)
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}.")
        if not replacement and num_samples > int((weights > 0).sum()):
            raise ValueError(
                f"cannot draw {num_samples} distinct indices from {int((weights > 0).sum())} items with non-zero "
                "weight; use replacement=True or fewer samples."
            )
        generator = torch.Generator().manual_seed(self.seed)
        super().__init__(weights, num_samples, replacement=replacement, generator=generator)

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch``: the next iteration depends only on ``(seed, epoch)``."""
        self.epoch = int(epoch)
        self.generator.manual_seed(self.seed + 1_000_003 * self.epoch)

    def modality_counts(self, indices: Sequence[int]) -> dict[str, int]:
        """How many of ``indices`` fall in each modality (for logging the realised mix)."""
        bounds, total = [], 0
        for n in self.sizes.values():
            total += n
            bounds.append(total)
        counts = dict.fromkeys(self.sizes, 0)
        names = list(self.sizes)
        for i in indices:
            counts[names[bisect.bisect_right(bounds, int(i))]] += 1
        return counts
