"""Mask generators shared by every masked-autoencoder variant (ViT-MAE, Swin-MAE, ConvNeXt-MAE).

The networks take a mask generator object, :class:`RandomMasking` (uniform, as MAE: He et al., "Masked
Autoencoders Are Scalable Vision Learners", CVPR 2022; FCMAE: Woo et al., "ConvNeXt V2", CVPR 2023;
VIS-MAE: Liu et al., MLMI 2024, arXiv:2402.01034) or :class:`EntropyGuidedMasking` (Florindo & Moura,
"Entropy-Guided Self-Supervised Learning for Medical Image Classification", arXiv:2605.21970, 2026); both
are thin wrappers over the functions below, which hold the implementation.

A *mask unit* is the cell a mask decision is made for: a ViT patch, a 4x4-token block of Swin-MAE, a
32-pixel unit of ConvNeXt-MAE. Units are numbered row-major over the unit grid (last spatial axis
fastest), the same order as :func:`monai_ssl.networks.patching.patchify` and as MONAI's
``PatchEmbeddingBlock`` (``conv(x).flatten(2)``).

All generators run fully on the input's device: no host synchronisation, no Python loop over units or
samples, and randomness only through an optional ``torch.Generator`` (no global RNG state is touched
when one is given). They return the same triple:

- ``mask`` ``(B, L)`` float, exactly ``round(mask_ratio * L)`` ones per row (1 = masked, 0 = visible);
- ``ids_shuffle`` ``(B, L)`` long: unit indices, visible ones first (``ids_shuffle[:, :L - K]`` is the
  visible set the encoder keeps), masked ones last;
- ``ids_restore`` ``(B, L)`` long: inverse permutation of ``ids_shuffle`` (``argsort(ids_shuffle)``), used by
  decoders to put tokens back in grid order.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

__all__ = [
    "num_masked_units",
    "random_unit_mask",
    "unit_entropy",
    "entropy_guided_mask",
    "block_mask_to_tokens",
    "MaskGenerator",
    "RandomMasking",
    "EntropyGuidedMasking",
    "MASKING_MODES",
    "build_masking",
]


def num_masked_units(num_units: int, mask_ratio: float) -> int:
    """Number of masked units ``K = round(mask_ratio * num_units)`` (Python ``round``: half to even).

    Raises:
        ValueError: when ``mask_ratio`` is outside ``[0, 1]`` or ``num_units`` < 1.
    """
    if not 0.0 <= float(mask_ratio) <= 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}.")
    if int(num_units) < 1:
        raise ValueError(f"num_units must be >= 1, got {num_units}.")
    return int(round(float(mask_ratio) * int(num_units)))


def _rand(batch_size: int, num_units: int, device, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise; ``generator`` only passed when given (keeps ``torch.compile`` dynamic shapes
    working)."""
    if generator is None:
        return torch.rand(batch_size, num_units, device=device)
    return torch.rand(batch_size, num_units, device=device, generator=generator)


def _mask_from_shuffle(ids_shuffle: torch.Tensor, num_masked: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask ``(B, L)`` and ``ids_restore`` from a visible-first permutation."""
    batch_size, num_units = ids_shuffle.shape
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    # rank of each unit in the shuffle >= L - K  <=>  masked
    mask = (ids_restore >= num_units - num_masked).to(torch.float32)
    return mask, ids_restore


def random_unit_mask(
    batch_size: int,
    num_units: int,
    mask_ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uniform random mask: argsort of per-sample uniform noise (MAE).

    Args:
        batch_size: ``B``.
        num_units: ``L``, units per sample.
        mask_ratio: fraction of units masked per sample, in ``[0, 1]``; exactly ``round(r * L)`` per row.
        device: device of the outputs (defaults to the generator's device, else CPU).
        generator: optional ``torch.Generator`` on ``device`` for reproducible draws.

    Returns:
        ``(mask (B, L) float, ids_shuffle (B, L) long, ids_restore (B, L) long)``; see the module docstring.
    """
    num_masked = num_masked_units(num_units, mask_ratio)
    if device is None:
        device = generator.device if generator is not None else "cpu"
    noise = _rand(batch_size, num_units, device, generator)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: smallest noise kept
    mask, ids_restore = _mask_from_shuffle(ids_shuffle, num_masked)
    return mask, ids_shuffle, ids_restore


def _unit_grid(spatial: Sequence[int], unit_size: Sequence[int]) -> list[int]:
    grid = []
    for axis, (s, u) in enumerate(zip(spatial, unit_size)):
        if u < 1 or s % u != 0:
            raise ValueError(
                f"spatial size {tuple(spatial)} is not divisible by unit_size {tuple(unit_size)} (axis {axis})."
            )
        grid.append(s // u)
    return grid


def _unit_tuple(unit_size: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    usize = (int(unit_size),) * spatial_dims if isinstance(unit_size, int) else tuple(int(u) for u in unit_size)
    if len(usize) != spatial_dims:
        raise ValueError(f"unit_size {unit_size} does not match {spatial_dims} spatial dims.")
    return usize


def unit_entropy(
    image: torch.Tensor,
    unit_size: int | Sequence[int],
    bins: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Shannon entropy (bits) of the luminance histogram of every mask unit (entropy-guided masking, Florindo &
    Moura, arXiv:2605.21970).

    Luminance ``Y`` is the mean over channels, clipped to ``value_range`` and histogrammed into ``bins``
    equal bins (the bin index is computed arithmetically, which equals ``torch.bucketize`` on equal-width
    boundaries); counts per unit come from one ``scatter_add_``. ``0 <= H <= log2(bins)``; a constant unit
    has ``H = 0``. Computed in float32 whatever the input dtype.

    Args:
        image: ``(B, C, *spatial)`` with 2 or 3 spatial dims, each divisible by the unit size.
        unit_size: unit edge in pixels, an int or one per spatial dim.
        bins: number of histogram bins ``b``.
        value_range: ``(low, high)`` intensity range mapped onto the bins.

    Returns:
        ``(B, L)`` float32 entropies, units row-major over the unit grid.
    """
    if image.ndim not in (4, 5):
        raise ValueError(f"image must be (B, C, H, W) or (B, C, H, W, D), got shape {tuple(image.shape)}.")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}.")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"value_range must satisfy high > low, got {value_range}.")
    spatial = tuple(image.shape[2:])
    nd = len(spatial)
    usize = _unit_tuple(unit_size, nd)
    grid = _unit_grid(spatial, usize)

    lum = image.detach().float().mean(dim=1)  # (B, *spatial)
    idx = ((lum - low) * (bins / (high - low))).floor_().clamp_(0, bins - 1).to(torch.int64)
    b = idx.shape[0]
    # (B, g0, u0, g1, u1[, g2, u2]) -> (B, g0, g1[, g2], u0, u1[, u2]) -> (B, L, N)
    shape = [b]
    for g, u in zip(grid, usize):
        shape += [g, u]
    idx = idx.reshape(shape)
    perm = [0] + [1 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
    num_units = math.prod(grid)
    pix = math.prod(usize)
    idx = idx.permute(perm).reshape(b, num_units, pix)

    counts = torch.zeros(b, num_units, bins, device=image.device, dtype=torch.float32)
    counts.scatter_add_(2, idx, torch.ones_like(idx, dtype=torch.float32))
    p = counts / pix
    plogp = torch.where(p > 0, p * torch.log2(p.clamp_min(1e-30)), torch.zeros_like(p))
    return -plogp.sum(dim=-1)


def entropy_guided_mask(
    entropy: torch.Tensor,
    mask_ratio: float,
    beta: float = 1.0,
    lam: float = 0.5,
    generator: torch.Generator | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entropy-guided mask (Florindo & Moura, arXiv:2605.21970; the exact rule is not published, this is ours).

    Per image: ``Ĥ = (H - mean H) / (std H + eps)``, ``π = softmax(beta * Ĥ)``, ``K = round(r * L)``,
    ``K_e = round(lam * K)`` units drawn without replacement from ``π`` by Gumbel-top-k on
    ``log π + G``, the other ``K - K_e`` uniformly among the remaining units. ``beta > 0`` favours
    high-entropy units, ``beta < 0`` low-entropy ones, ``beta = 0`` (or ``lam = 0``) is uniform random
    masking. Constant units keep a non-zero probability for any finite ``beta``.

    Args:
        entropy: ``(B, L)`` per-unit scores, e.g. from :func:`unit_entropy`.
        mask_ratio: ``r`` in ``[0, 1]``.
        beta: softmax inverse temperature ``β``.
        lam: share ``λ`` in ``[0, 1]`` of masked units chosen by entropy.
        generator: optional ``torch.Generator`` on ``entropy.device``.
        eps: added to the per-image std.

    Returns:
        ``(mask (B, L) float, ids_shuffle (B, L) long, ids_restore (B, L) long)``, as
        :func:`random_unit_mask`.
    """
    if entropy.ndim != 2:
        raise ValueError(f"entropy must be (B, L), got shape {tuple(entropy.shape)}.")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}.")
    batch_size, num_units = entropy.shape
    num_masked = num_masked_units(num_units, mask_ratio)
    num_guided = int(round(float(lam) * num_masked))
    device = entropy.device

    # uniform keys in [0, 1) for the random share; guided units get +2 so they sort last (= masked)
    score = _rand(batch_size, num_units, device, generator)
    if num_guided > 0:
        h = entropy.detach().float()
        h_std = (h - h.mean(dim=1, keepdim=True)) / (h.std(dim=1, keepdim=True, unbiased=False) + eps)
        log_pi = torch.log_softmax(float(beta) * h_std, dim=1)
        u = _rand(batch_size, num_units, device, generator)
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        top = torch.topk(log_pi + gumbel, num_guided, dim=1).indices
        score = score.scatter_add(1, top, torch.full_like(top, 2, dtype=score.dtype))
    ids_shuffle = torch.argsort(score, dim=1)  # visible (lowest keys) first, guided masked last
    mask, ids_restore = _mask_from_shuffle(ids_shuffle, num_masked)
    return mask, ids_shuffle, ids_restore


def block_mask_to_tokens(mask: torch.Tensor, unit_grid: Sequence[int], block_size: int | Sequence[int]) -> torch.Tensor:
    """Expand a unit mask to the finer token grid it tiles (e.g. Swin-MAE: one unit = 4x4 tokens).

    Args:
        mask: ``(B, L_units)`` mask (any dtype), units row-major over ``unit_grid``.
        unit_grid: number of units per spatial dim, ``prod(unit_grid) == L_units``.
        block_size: tokens per unit along each dim (int or one per dim).

    Returns:
        ``(B, L_tokens)`` mask with the dtype of ``mask``, tokens row-major over the token grid
        ``unit_grid * block_size``.
    """
    grid = [int(g) for g in unit_grid]
    nd = len(grid)
    bs = (int(block_size),) * nd if isinstance(block_size, int) else tuple(int(b) for b in block_size)
    if len(bs) != nd:
        raise ValueError(f"block_size {block_size} does not match unit_grid {tuple(grid)}.")
    if mask.ndim != 2 or mask.shape[1] != math.prod(grid):
        raise ValueError(f"mask must be (B, {math.prod(grid)}) for unit_grid {tuple(grid)}, got {tuple(mask.shape)}.")
    b = mask.shape[0]
    # (B, g0, 1, g1, 1, ...) expanded to (B, g0, s0, g1, s1, ...)
    view_shape, expand_shape = [b], [b]
    for g, s in zip(grid, bs):
        view_shape += [g, 1]
        expand_shape += [g, s]
    return mask.reshape(view_shape).expand(expand_shape).reshape(b, -1)


class MaskGenerator(ABC):
    """Interface of the mask generators the masked autoencoders take (``masking=`` argument).

    A generator holds the masking rule and its default ratio; the network supplies the unit size (its patch, or
    its block of tokens) and, per call, an optional ``torch.Generator`` and a ratio override. Generators hold no
    tensors and no random state: every draw comes from ``generator`` (or the global RNG when it is ``None``).

    Args:
        mask_ratio: default share of units masked per sample, in ``[0, 1]``; exactly ``round(r * L)`` per row.

    Raises:
        ValueError: when ``mask_ratio`` is outside ``[0, 1]``.
    """

    #: short name, as the bundles' ``mask_mode`` key spells it (see :data:`MASKING_MODES`)
    mode: str = ""

    def __init__(self, mask_ratio: float = 0.75) -> None:
        if not 0.0 <= float(mask_ratio) <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}.")
        self.mask_ratio = float(mask_ratio)

    def __call__(
        self,
        images: torch.Tensor,
        unit_size: int | Sequence[int],
        generator: torch.Generator | None = None,
        mask_ratio: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw a unit mask for ``images``.

        Args:
            images: ``(B, C, *spatial)`` with 2 or 3 spatial dims, each divisible by the unit size.
            unit_size: mask-unit edge in pixels, an int or one per spatial dim; the unit grid is
                ``spatial // unit_size`` and ``L = prod(grid)``.
            generator: optional ``torch.Generator`` on ``images.device``.
            mask_ratio: overrides ``self.mask_ratio`` for this call.

        Returns:
            ``(mask (B, L) float, ids_shuffle (B, L) long, ids_restore (B, L) long)``, units row-major over the
            unit grid (see the module docstring).
        """
        if images.ndim not in (4, 5):
            raise ValueError(f"images must be (B, C, H, W) or (B, C, H, W, D), got shape {tuple(images.shape)}.")
        usize = _unit_tuple(unit_size, images.ndim - 2)
        grid = _unit_grid(images.shape[2:], usize)
        ratio = self.mask_ratio if mask_ratio is None else float(mask_ratio)
        return self._draw(images, usize, grid, ratio, generator)

    @abstractmethod
    def _draw(
        self,
        images: torch.Tensor,
        unit_size: tuple[int, ...],
        grid: list[int],
        mask_ratio: float,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rule itself: ``unit_size`` and ``grid`` are checked, one entry per spatial dim."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask_ratio={self.mask_ratio})"


class RandomMasking(MaskGenerator):
    """Uniform random masking: each sample masks ``round(r * L)`` units chosen uniformly (argsort of uniform
    noise), as MAE (He et al., CVPR 2022), FCMAE (Woo et al., ConvNeXt V2, CVPR 2023) and VIS-MAE's block masking
    (Liu et al., 2024). Implemented by :func:`random_unit_mask`.

    Args:
        mask_ratio: default share of units masked per sample, in ``[0, 1]``.

    Example::

        mask, ids_shuffle, ids_restore = RandomMasking(0.75)(images, unit_size=16)  # images (B, C, 64, 64) -> L = 16
    """

    mode = "random"

    def _draw(self, images, unit_size, grid, mask_ratio, generator):
        return random_unit_mask(images.shape[0], math.prod(grid), mask_ratio, device=images.device, generator=generator)


class EntropyGuidedMasking(MaskGenerator):
    """Entropy-guided masking (Florindo & Moura, arXiv:2605.21970, 2026): a share ``lam`` of the masked units is
    drawn with probability ``softmax(beta * standardised entropy)``, the rest uniformly. Entropy is that of each
    unit's luminance histogram (:func:`unit_entropy`); the draw is :func:`entropy_guided_mask`.

    Args:
        mask_ratio: default share of units masked per sample, in ``[0, 1]``.
        beta: softmax inverse temperature ``β`` (> 0 favours high-entropy units, 0 is uniform).
        lam: share ``λ`` in ``[0, 1]`` of the masked units chosen by entropy.
        bins: histogram bins.
        value_range: ``(low, high)`` intensity range mapped onto the bins.

    Raises:
        ValueError: ``lam`` outside ``[0, 1]``, ``bins < 1`` or ``high <= low``.
    """

    mode = "entropy"

    def __init__(
        self,
        mask_ratio: float = 0.75,
        beta: float = 1.0,
        lam: float = 0.5,
        bins: int = 32,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(mask_ratio)
        if not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}.")
        if int(bins) < 1:
            raise ValueError(f"bins must be >= 1, got {bins}.")
        if len(value_range) != 2 or not float(value_range[1]) > float(value_range[0]):
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
        self.beta, self.lam, self.bins = float(beta), float(lam), int(bins)
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def _draw(self, images, unit_size, grid, mask_ratio, generator):
        entropy = unit_entropy(images, unit_size, bins=self.bins, value_range=self.value_range)
        return entropy_guided_mask(entropy, mask_ratio, self.beta, self.lam, generator=generator)

    def __repr__(self) -> str:
        extra = f"beta={self.beta}, lam={self.lam}, bins={self.bins}, value_range={self.value_range}"
        return f"{type(self).__name__}(mask_ratio={self.mask_ratio}, {extra})"


#: mask generators by their ``mode`` name
MASKING_MODES: dict[str, type[MaskGenerator]] = {cls.mode: cls for cls in (RandomMasking, EntropyGuidedMasking)}


def build_masking(mask_mode: str = "random", mask_ratio: float = 0.75, **kwargs) -> MaskGenerator:
    """The mask generator named ``mask_mode`` (a key of :data:`MASKING_MODES`), for configs that pick it by name.

    Args:
        mask_mode: ``"random"`` (:class:`RandomMasking`) or ``"entropy"`` (:class:`EntropyGuidedMasking`).
        mask_ratio: default share of units masked per sample.
        kwargs: further arguments of that class (``beta``, ``lam``, ``bins``, ``value_range`` for ``"entropy"``).

    Raises:
        ValueError: unknown ``mask_mode``.
    """
    if mask_mode not in MASKING_MODES:
        raise ValueError(f"mask_mode must be one of {sorted(MASKING_MODES)}, got {mask_mode!r}.")
    return MASKING_MODES[mask_mode](mask_ratio, **kwargs)


def check_masking(masking: MaskGenerator | None, default_ratio: float) -> MaskGenerator:
    """``masking``, or :class:`RandomMasking` at ``default_ratio`` when ``None``; a clear error for anything else."""
    if masking is None:
        return RandomMasking(default_ratio)
    if not isinstance(masking, MaskGenerator):
        raise TypeError(
            f"masking must be a MaskGenerator such as RandomMasking(0.75) or EntropyGuidedMasking(0.75, beta=1.0) "
            f"(monai_ssl.networks.masking), got {type(masking).__name__}: {masking!r}."
        )
    return masking
