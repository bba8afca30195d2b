"""Label-free pretext-task transforms: rotation, jigsaw and relative patch location (Gidaris et al. 2018;
Noroozi & Favaro 2016; Doersch et al. 2015), the task pool of curricular SSL (Sirotkin et al. 2021).

Each task exists as an array transform and a dictionary transform (``Xd`` with ``XD``/``XDict`` aliases),
following MONAI. The array transforms take one channel-first 2D image ``(C, H, W)`` and return a pair
``(pretext_input, pretext_label)``; the dictionary transforms write the input back under the image key and the
integer label under ``label_key`` (default ``"pretext_label"``, :data:`PRETEXT_LABEL`), so a batch collates to

============================  ===================================  ==================
task                          ``batch[image]`` shape               ``batch[label]``
============================  ===================================  ==================
rotation                      ``(B, C, H, W)``                     k in {0, 1, 2, 3}
jigsaw                        ``(B, n*n, C, t, t)`` tiles          permutation index
relative patch location       ``(B, 2, C, p, p)`` (centre, other)  neighbour in 0..7
============================  ===================================  ==================

All randomness comes from each transform's own ``self.R`` (``set_random_state``), never from global state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Rotate90, Transform
from monai.utils import convert_to_tensor

__all__ = [
    "PRETEXT_LABEL",
    "hamming_permutations",
    "RandRotationPretext",
    "RandJigsaw",
    "RandRelativePatch",
    "RandRotationPretextd",
    "RandRotationPretextD",
    "RandRotationPretextDict",
    "RandJigsawd",
    "RandJigsawD",
    "RandJigsawDict",
    "RandRelativePatchd",
    "RandRelativePatchD",
    "RandRelativePatchDict",
]

PRETEXT_LABEL = "pretext_label"
#: neighbour offsets (row, column) of the relative-location task, label = index; row-major, centre skipped
NEIGHBOUR_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)


def _check_2d(img: Any, name: str) -> torch.Tensor:
    if not isinstance(img, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(img).__name__}.")
    if img.ndim != 3:
        raise ValueError(f"{name}: expected a channel-first 2D image (C, H, W), got shape {tuple(img.shape)}.")
    return img if isinstance(img, torch.Tensor) else torch.as_tensor(img)


@lru_cache(maxsize=8)
def _hamming_permutations(num_permutations: int, num_tiles: int, seed: int, pool_size: int) -> np.ndarray:
    if num_tiles <= 9:
        count = math.factorial(num_tiles)
        flat = itertools.chain.from_iterable(itertools.permutations(range(num_tiles)))
        pool = np.fromiter(flat, dtype=np.int8, count=count * num_tiles).reshape(count, num_tiles)
    else:  # 10! and beyond cannot be enumerated: a seeded random pool of candidates instead
        rng = np.random.default_rng(seed)
        pool = np.unique(np.stack([rng.permutation(num_tiles) for _ in range(pool_size)]).astype(np.int8), axis=0)
    if num_permutations > len(pool):
        raise ValueError(f"num_permutations={num_permutations} exceeds the {len(pool)} available permutations.")
    chosen = [0]  # the identity (first in lexicographic order) starts the greedy set
    # min_dist[i] = Hamming distance of candidate i to its nearest already chosen permutation
    min_dist = (pool != pool[0]).sum(axis=1)
    for _ in range(num_permutations - 1):
        nxt = int(np.argmax(min_dist))  # farthest candidate; ties -> lowest index (deterministic)
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, (pool != pool[nxt]).sum(axis=1))
    out = pool[chosen].astype(np.int64)
    out.setflags(write=False)
    return out


def hamming_permutations(
    num_permutations: int = 100, num_tiles: int = 9, seed: int = 0, pool_size: int = 100_000
) -> np.ndarray:
    """Fixed set of tile permutations with large mutual Hamming distance, chosen greedily.

    Starting from the identity, repeatedly add the candidate permutation whose distance to its nearest chosen
    permutation is largest (max-min greedy; ties go to the lexicographically first). For ``num_tiles <= 9`` the
    candidates are all ``num_tiles!`` permutations, so the result is fully deterministic and ``seed`` is unused;
    beyond that a seeded pool of ``pool_size`` random permutations is searched.

    Args:
        num_permutations: P, the number of classes of the jigsaw task.
        num_tiles: tiles per puzzle (9 for a 3x3 grid).
        seed: seed of the candidate pool when ``num_tiles > 9``.
        pool_size: size of that pool.

    Returns:
        read-only int64 array ``(P, num_tiles)``; row ``p`` maps output slot ``j`` to source tile ``row[j]``.
    """
    if num_permutations < 1 or num_tiles < 2:
        raise ValueError(f"need num_permutations >= 1 and num_tiles >= 2, got {num_permutations}, {num_tiles}.")
    return _hamming_permutations(int(num_permutations), int(num_tiles), int(seed), int(pool_size))


class RandRotationPretext(Randomizable, Transform):
    """Rotate a 2D image by ``k * 90`` degrees with ``k`` uniform in {0, 1, 2, 3}; the pretext label is ``k``.

    Uses :class:`monai.transforms.Rotate90`, so a ``MetaTensor`` keeps its metadata and updated affine.
    Non-square images change shape for odd ``k``; resize to a square first when batching.

    Args:
        spatial_axes: the two spatial axes of the rotation plane.
    """

    num_classes = 4

    def __init__(self, spatial_axes: tuple[int, int] = (0, 1)) -> None:
        self.spatial_axes = spatial_axes
        self._k = 0

    def randomize(self, data: Any = None) -> None:
        self._k = int(self.R.randint(self.num_classes))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> tuple[torch.Tensor, int]:
        """Args: img ``(C, H, W)``. Returns: (rotated image ``(C, H', W')``, k)."""
        img = _check_2d(img, type(self).__name__)
        if randomize:
            self.randomize()
        return Rotate90(k=self._k, spatial_axes=self.spatial_axes)(img), self._k


class RandJigsaw(Randomizable, Transform):
    """Jigsaw puzzle: cut a ``grid x grid`` array of tiles and shuffle them with one of P fixed permutations.

    The central ``grid * cell`` square region (``cell = min(H, W) // grid``) is divided into cells; from each
    cell a ``tile_size`` square is cropped at a random position (so tile borders do not line up, a shortcut the
    network could otherwise use), the tiles are reordered by permutation ``p`` drawn uniformly from
    :func:`hamming_permutations`, and ``p`` is the label. Output slot ``j`` holds the tile of cell ``perm[j]``
    (cells numbered row-major).

    Args:
        grid_size: tiles per side (3 -> 9 tiles).
        tile_size: side of each tile; default ``round(cell * 64 / 75)`` (64 px tiles in 75 px cells, as in
            Noroozi & Favaro 2016 for a 225 px image).
        num_permutations: P; ignored when ``permutations`` is given.
        permutations: explicit ``(P, grid_size**2)`` permutation table.
        normalize_tiles: standardise each tile to zero mean, unit variance (removes brightness cues shared by
            neighbouring tiles).
        permutation_seed: seed for :func:`hamming_permutations` (only used when ``grid_size**2 > 9``).
    """

    def __init__(
        self,
        grid_size: int = 3,
        tile_size: int | None = None,
        num_permutations: int = 100,
        permutations: np.ndarray | Sequence[Sequence[int]] | None = None,
        normalize_tiles: bool = True,
        permutation_seed: int = 0,
    ) -> None:
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}.")
        self.grid_size = grid_size
        self.tile_size = tile_size
        n = grid_size * grid_size
        if permutations is None:
            permutations = hamming_permutations(num_permutations, n, seed=permutation_seed)
        perms = np.asarray(permutations, dtype=np.int64)
        if perms.ndim != 2 or perms.shape[1] != n or not (np.sort(perms, axis=1) == np.arange(n)).all():
            raise ValueError(f"permutations must be a (P, {n}) table of permutations of 0..{n - 1}.")
        self.permutations = perms
        self.normalize_tiles = normalize_tiles
        self._perm_index = 0
        self._offsets = np.zeros((n, 2), dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.permutations)

    def _geometry(self, spatial_shape: Sequence[int]) -> tuple[int, int, int, int]:
        cell = min(spatial_shape) // self.grid_size
        tile = self.tile_size if self.tile_size is not None else max(1, round(cell * 64 / 75))
        if tile > cell or tile < 1:
            raise ValueError(
                f"{type(self).__name__}: tile_size={tile} does not fit cells of {cell} px "
                f"(image {tuple(spatial_shape)}, grid {self.grid_size})."
            )
        y0 = (spatial_shape[0] - cell * self.grid_size) // 2
        x0 = (spatial_shape[1] - cell * self.grid_size) // 2
        return cell, tile, y0, x0

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        cell, tile, _, _ = self._geometry(spatial_shape)
        self._perm_index = int(self.R.randint(len(self.permutations)))
        self._offsets = self.R.randint(0, cell - tile + 1, size=(self.grid_size**2, 2))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> tuple[torch.Tensor, int]:
        """Args: img ``(C, H, W)``. Returns: (tiles ``(grid**2, C, t, t)`` float tensor, permutation index).

        The tiles are a plain tensor: a stack of shuffled patches has no single affine, so metadata is dropped.
        """
        img = _check_2d(img, type(self).__name__)
        img = convert_to_tensor(img, track_meta=False)
        if randomize:
            self.randomize(img.shape[1:])
        cell, tile, y0, x0 = self._geometry(img.shape[1:])
        tiles = []
        for c in range(self.grid_size**2):
            r, q = divmod(c, self.grid_size)
            ty = y0 + r * cell + int(self._offsets[c, 0])
            tx = x0 + q * cell + int(self._offsets[c, 1])
            tiles.append(img[:, ty : ty + tile, tx : tx + tile])
        out = torch.stack([tiles[int(j)] for j in self.permutations[self._perm_index]]).float()
        if self.normalize_tiles:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            std = out.std(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) / (std + 1e-6)
        return out, self._perm_index


class RandRelativePatch(Randomizable, Transform):
    """Relative patch location: a centre patch and one of its 8 neighbours; the label is the neighbour's index.

    Neighbours sit on a 3x3 lattice of ``patch_size`` squares separated by ``gap`` pixels; the neighbour is
    shifted by a uniform jitter in ``[-jitter, jitter]`` per axis so edges do not line up. The centre patch is
    placed uniformly where the whole lattice fits. Labels index :data:`NEIGHBOUR_OFFSETS` (row-major:
    0 = top-left, 1 = top, 2 = top-right, 3 = left, 4 = right, 5 = bottom-left, 6 = bottom, 7 = bottom-right).

    Args:
        patch_size: side of both patches.
        gap: pixels between lattice cells; default ``patch_size // 4``.
        jitter: maximum shift of the neighbour per axis; default ``patch_size // 8``.
        normalize_patches: standardise each patch to zero mean, unit variance.
    """

    num_classes = 8

    def __init__(
        self, patch_size: int, gap: int | None = None, jitter: int | None = None, normalize_patches: bool = True
    ) -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}.")
        self.patch_size = patch_size
        self.gap = patch_size // 4 if gap is None else gap
        self.jitter = patch_size // 8 if jitter is None else jitter
        if self.gap < 0 or self.jitter < 0:
            raise ValueError(f"gap and jitter must be >= 0, got {self.gap}, {self.jitter}.")
        self.normalize_patches = normalize_patches
        self._direction = 0
        self._centre = (0, 0)
        self._shift = (0, 0)

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        p, step, j = self.patch_size, self.patch_size + self.gap, self.jitter
        lo = step + j
        hi = [s - p - step - j for s in spatial_shape]  # inclusive upper bound of the centre's top-left corner
        if min(hi) < lo:
            raise ValueError(
                f"{type(self).__name__}: image {tuple(spatial_shape)} is smaller than the 3x3 lattice "
                f"(needs >= {3 * p + 2 * self.gap + 2 * j} px per side for patch {p}, gap {self.gap}, jitter {j})."
            )
        self._direction = int(self.R.randint(8))
        self._centre = (int(self.R.randint(lo, hi[0] + 1)), int(self.R.randint(lo, hi[1] + 1)))
        self._shift = (int(self.R.randint(-j, j + 1)), int(self.R.randint(-j, j + 1)))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> tuple[torch.Tensor, int]:
        """Args: img ``(C, H, W)``. Returns: (patches ``(2, C, p, p)`` = (centre, neighbour), neighbour index)."""
        img = _check_2d(img, type(self).__name__)
        img = convert_to_tensor(img, track_meta=False)
        if randomize:
            self.randomize(img.shape[1:])
        p, step = self.patch_size, self.patch_size + self.gap
        cy, cx = self._centre
        dy, dx = NEIGHBOUR_OFFSETS[self._direction]
        ny, nx = cy + dy * step + self._shift[0], cx + dx * step + self._shift[1]
        out = torch.stack([img[:, cy : cy + p, cx : cx + p], img[:, ny : ny + p, nx : nx + p]]).float()
        if self.normalize_patches:
            out = (out - out.mean(dim=(1, 2, 3), keepdim=True)) / (out.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
        return out, self._direction


class _PretextDict(Randomizable, MapTransform):
    """Shared dictionary wrapper: one draw per call, applied to every key; the label goes to ``label_key``."""

    def __init__(self, transform: Any, keys: KeysCollection, label_key: str, allow_missing_keys: bool) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = transform
        self.label_key = label_key

    @property
    def num_classes(self) -> int:
        return self.transform.num_classes

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _PretextDict:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        if isinstance(self.transform, RandRotationPretext):
            self.transform.randomize()
        else:
            self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = True
        label = None
        for key in self.key_iterator(d):
            img = _check_2d(d[key], f"{type(self).__name__} key '{key}'")
            if first:
                self.randomize(img.shape[1:])
                first = False
            d[key], label = self.transform(img, randomize=False)
        if label is None and not self.allow_missing_keys:
            raise KeyError(f"{type(self).__name__}: none of the keys {self.keys} is in the data.")
        if label is not None:
            d[self.label_key] = label
        return d


class RandRotationPretextd(_PretextDict):
    """Dictionary version of :class:`RandRotationPretext`; every key gets the same ``k``, written to ``label_key``.

    Args:
        keys: image keys (``(C, H, W)`` each).
        label_key: where the integer label goes.
        spatial_axes: rotation plane.
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = PRETEXT_LABEL,
        spatial_axes: tuple[int, int] = (0, 1),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(RandRotationPretext(spatial_axes), keys, label_key, allow_missing_keys)


class RandJigsawd(_PretextDict):
    """Dictionary version of :class:`RandJigsaw`: ``d[key]`` becomes the tiles ``(n*n, C, t, t)``.

    Args:
        keys: image keys; all keys get the same permutation and crop offsets.
        label_key: where the permutation index goes.
        kwargs: :class:`RandJigsaw` arguments.
    """

    def __init__(
        self, keys: KeysCollection, label_key: str = PRETEXT_LABEL, allow_missing_keys: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(RandJigsaw(**kwargs), keys, label_key, allow_missing_keys)


class RandRelativePatchd(_PretextDict):
    """Dictionary version of :class:`RandRelativePatch`: ``d[key]`` becomes ``(2, C, p, p)`` (centre, neighbour).

    Args:
        keys: image keys; all keys get the same patch positions.
        patch_size: side of both patches.
        label_key: where the neighbour index goes.
        kwargs: other :class:`RandRelativePatch` arguments.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int,
        label_key: str = PRETEXT_LABEL,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(RandRelativePatch(patch_size, **kwargs), keys, label_key, allow_missing_keys)


RandRotationPretextD = RandRotationPretextDict = RandRotationPretextd
RandJigsawD = RandJigsawDict = RandJigsawd
RandRelativePatchD = RandRelativePatchDict = RandRelativePatchd
